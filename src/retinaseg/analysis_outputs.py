"""What ``retinaseg analyze`` writes for one scan: :func:`write_analysis` and the headline :func:`summary`.

One output folder per scan, written atomically (:mod:`retinaseg.io.output`):
tables and arrays always, the report, the eyepy ``.eye`` volume and NIfTI
files as :class:`AnalysisOutputs` says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retinaseg.analysis.table_rows import as_records
from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.io.output import ANALYSIS
from retinaseg.io.records import strict_json, write_csv, write_json
from retinaseg.numeric import finite_mean

if TYPE_CHECKING:
    from retinaseg.analyze import AnalysisResult


def summary(result: AnalysisResult) -> dict[str, Any]:
    """Headline numbers of an analysis (also written as ``summary.json``)."""
    volume = result.volume
    n, height, width = volume.shape
    out: dict[str, Any] = {
        "source": volume.source,
        "scan_pattern": volume.scan_pattern_name,
        "laterality": volume.laterality,
        "shape_bscans_rows_ascans": [n, height, width],
        "axial_um": volume.axial_um,
        "lateral_um": volume.scale_x_mm * 1000.0,
        "model": result.model_name,
        "valid_ascan_fraction": result.valid_ascan_fraction,
        # strict_json: None (shown as absent), not NaN, where nothing was measured
        "mean_total_thickness_um": strict_json(finite_mean(result.segmentation.thickness_um[TOTAL_RETINA])),
        "notes": list(result.notes),
    }
    raster = result.raster
    if raster is not None and raster.fovea_xy_mm is not None:
        out["fovea_xy_mm"] = list(raster.fovea_xy_mm)
        out["fovea_source"] = raster.fovea_source
        central = [row for row in raster.etdrs if row.layer == TOTAL_RETINA and row.sector == "C0"]
        out["central_subfield_thickness_um"] = central[0].mean_um if central else None
    if result.circle is not None:
        out["rnfl_sectors_um"] = dict(result.circle.profile.sectors)
    if result.reference is not None:
        out["reference"] = result.reference.name
        out["boundary_mad_um"] = {row.boundary: row.mad_um for row in result.reference.boundary_agreement}
        total_rows = [row for row in raster.sector_agreement if row.layer == TOTAL_RETINA] if raster is not None else []
        if total_rows:
            out["total_thickness_sector_mad_um"] = strict_json(finite_mean([abs(row.difference_um) for row in total_rows]))
    return out


@dataclass(frozen=True)
class AnalysisOutputs:
    """Which of the optional outputs :func:`write_analysis` writes.

    Attributes
    ----------
    report
        ``report.html`` and ``figures/*.png``.
    eye
        ``<scan>.eye``: the eyepy volume with our layers (about 1.5 MB per
        B-scan of 496 x 768).
    nifti
        ``bscans.nii.gz`` and ``labels.nii.gz`` with the voxel spacing in the
        affine, for ITK-SNAP / 3D Slicer.
    """

    report: bool = True
    eye: bool = True
    nifti: bool = False


def write_analysis(
    result: AnalysisResult,
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    inputs: Sequence[str | Path] = (),
    outputs: AnalysisOutputs = AnalysisOutputs(),
    records: Mapping[str, Any] | None = None,
) -> Path:
    """Write every output of an analysis into ``out_dir`` atomically.

    Files: ``summary.json``; ``boundaries.npz`` (rows per A-scan, A-scan
    positions in mm, thickness per A-scan); for raster scans
    ``thickness_maps.npz`` (maps in µm on the grid ``x_mm``, ``y_mm``) and
    ``etdrs.csv``; agreement tables when the scan has a reference; and the
    optional ``outputs``. ``records`` are extra JSON files ``{file name:
    content}``. Returns the report path (``out_dir / "report.html"``, absent
    without a report). ``overwrite`` and ``inputs`` as for
    :func:`retinaseg.io.output.staged_output_dir`.
    """
    from retinaseg.io.output import staged_output_dir

    out_dir = Path(out_dir)
    stem = Path(result.volume.source).stem or "scan"
    segmentation, raster, reference = result.segmentation, result.raster, result.reference
    with staged_output_dir(out_dir, ANALYSIS, overwrite=overwrite, inputs=inputs) as staging:
        # Name -> array as one mapping: numpy's stubs would match a ** of arrays against allow_pickle too.
        boundary_arrays: dict[str, Any] = {
            "boundaries_px": segmentation.boundaries_px.astype(np.float32),
            "boundary_names": np.array(segmentation.boundary_names),
            "ascan_positions_mm": result.volume.ascan_positions_mm(),
            "axial_um": result.volume.axial_um,
            **{f"thickness_um/{name}": values.astype(np.float32) for name, values in segmentation.thickness_um.items()},
        }
        np.savez_compressed(staging / "boundaries.npz", **boundary_arrays)
        if raster is not None:
            map_arrays: dict[str, Any] = {"x_mm": raster.grid.x_mm, "y_mm": raster.grid.y_mm}
            if raster.fovea_xy_mm is not None:
                map_arrays["fovea_xy_mm"] = np.array(raster.fovea_xy_mm)
            map_arrays.update({name: values.astype(np.float32) for name, values in raster.maps_um.items()})
            np.savez_compressed(staging / "thickness_maps.npz", **map_arrays)
            if raster.etdrs:
                write_csv(staging / "etdrs.csv", as_records(raster.etdrs))
            if raster.sector_agreement:
                write_csv(staging / "etdrs_agreement.csv", as_records(raster.sector_agreement))
        if reference is not None and reference.boundary_agreement:
            write_csv(staging / "boundary_agreement.csv", as_records(reference.boundary_agreement))
        write_json(staging / "summary.json", summary(result))
        for name, content in (records or {}).items():
            write_json(staging / name, content)
        if outputs.eye:
            from retinaseg.io.eyepy_bridge import write_eye

            write_eye(result.volume, segmentation.boundaries_by_name(), staging / f"{stem}.eye")
        if outputs.nifti:
            from retinaseg.io.nifti import write_bscans_nifti, write_labels_nifti

            write_bscans_nifti(result.volume, staging / "bscans.nii.gz")
            write_labels_nifti(segmentation.labels, result.volume, staging / "labels.nii.gz", segmentation.class_names)
        if outputs.report:
            from retinaseg.report.volume_report import write_volume_report

            write_volume_report(result, staging)
    return out_dir / "report.html"

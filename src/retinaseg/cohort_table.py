"""``cohort.csv``: one row per scan, readable by pandas or R as it is.

One header row; column names are lower-case ``snake_case`` with their unit
(``etdrs_total_c0_um``, ``rnfl_global_um``); empty cells where nothing was
measured (a failed scan, a sector outside the scan, no stored segmentation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.io.records import write_csv
from retinaseg.numeric import finite_mean

if TYPE_CHECKING:
    from retinaseg.analyze import AnalysisResult
    from retinaseg.cohort_inputs import ScanEntry

DONE, FAILED = "done", "failed"
"""Values of the ``status`` column."""

#: Columns every row has, in this order; measurement columns follow.
IDENTITY_COLUMNS = (
    "id",
    "file",
    "checksum_sha256",
    "status",
    "error",
    "format",
    "scan_pattern",
    "laterality",
    "n_bscans",
    "rows",
    "ascans",
    "axial_um",
    "lateral_um",
    "device_quality_mean",
    "valid_ascan_fraction",
    "model",
    "fovea_x_mm",
    "fovea_y_mm",
    "fovea_source",
    "notes",
    "seconds",
)


def column_slug(name: str) -> str:
    """A layer, boundary or sector name as a column-name part: ``"GCL+IPL"`` -> ``"gcl_ipl"``."""
    if name == TOTAL_RETINA:
        return "total"
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _format(entry: ScanEntry) -> str:
    path = Path(entry.path)
    return "bscan folder" if path.is_dir() else path.suffix.lower().lstrip(".")


def failed_row(entry: ScanEntry, checksum: str | None, error: str, seconds: float) -> dict[str, Any]:
    """The row of a scan that could not be analysed; ``error`` is one line."""
    row: dict[str, Any] = dict.fromkeys(IDENTITY_COLUMNS)
    row.update(
        id=entry.id,
        file=str(entry.path),
        checksum_sha256=checksum,
        status=FAILED,
        error=error.splitlines()[0] if error else "failed",
        format=_format(entry),
        seconds=round(seconds, 3),
    )
    return row


def scan_row(entry: ScanEntry, checksum: str, result: AnalysisResult, seconds: float) -> dict[str, Any]:
    """The row of an analysed scan: identity, quality, ETDRS sectors, RNFL sectors, agreement."""
    volume = result.volume
    n, height, width = volume.shape
    raster, circle, reference = result.raster, result.circle, result.reference
    fovea = raster.fovea_xy_mm if raster is not None else None
    row: dict[str, Any] = {
        "id": entry.id,
        "file": str(entry.path),
        "checksum_sha256": checksum,
        "status": DONE,
        "error": None,
        "format": _format(entry),
        "scan_pattern": volume.scan_pattern_name,
        "laterality": volume.laterality,
        "n_bscans": n,
        "rows": height,
        "ascans": width,
        "axial_um": volume.axial_um,
        "lateral_um": volume.scale_x_mm * 1000.0,
        "device_quality_mean": finite_mean([geometry.quality for geometry in volume.bscan_geometry]),
        "valid_ascan_fraction": result.valid_ascan_fraction,
        "model": result.model_name,
        "fovea_x_mm": fovea[0] if fovea else None,
        "fovea_y_mm": fovea[1] if fovea else None,
        "fovea_source": raster.fovea_source if raster is not None else None,
        "notes": "; ".join(result.notes) or None,
        "seconds": round(seconds, 3),
    }
    if raster is not None:
        row.update({f"etdrs_{column_slug(r.layer)}_{column_slug(r.sector)}_um": r.mean_um for r in raster.etdrs})
    if circle is not None:
        row.update({f"rnfl_{column_slug(name)}_um": value for name, value in circle.profile.sectors.items()})
    if reference is not None:  # agreement with the segmentation stored in the file (or another reference)
        ref = column_slug(reference.name)
        mads = {f"{ref}_mad_{column_slug(r.boundary)}_um": r.mad_um for r in reference.boundary_agreement}
        row[f"{ref}_boundary_mad_mean_um"] = finite_mean(list(mads.values()))
        row.update(mads)
        sectors = raster.sector_agreement if raster is not None else []
        total = [abs(r.difference_um) for r in sectors if r.layer == TOTAL_RETINA]
        if total:
            row[f"{ref}_etdrs_total_mad_um"] = finite_mean(total)
    return row


def cohort_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """:data:`IDENTITY_COLUMNS`, then every other column in the order rows first have it."""
    columns = list(IDENTITY_COLUMNS)
    seen = set(columns)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                columns.append(key)
    return columns


def write_cohort_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` (any mix of analysed and failed scans) with one shared header, atomically."""
    columns = cohort_columns(rows)
    return write_csv(path, [{column: row.get(column) for column in columns} for row in rows])

"""``retinaseg analyze``: from an OCT scan to layer boundaries, thickness and a report.

:func:`analyze_volume` segments every B-scan, turns the class maps into
ordered layer boundaries, and measures: per-layer and total thickness per
A-scan (µm); for raster volumes, en-face thickness maps at the A-scans' true
fundus positions, the fovea and the ETDRS grid; for circle scans, the RNFL
profile along the circle. Where the scan carries a reference segmentation
(the device's own, or a phantom's ground truth) it measures the agreement.
:func:`write_analysis` writes everything into one output folder atomically.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retinaseg.analysis.agreement import boundary_agreement, sector_differences
from retinaseg.analysis.boundaries import DUKE_BOUNDARY_NAMES, DUKE_TO_DEVICE_LINES, layer_surfaces
from retinaseg.analysis.circle import CircleProfile, circle_profile
from retinaseg.analysis.enface import EnfaceGrid, enface_grid, enface_maps
from retinaseg.analysis.etdrs import etdrs_table, find_fovea
from retinaseg.analysis.thickness import TOTAL_RETINA, layer_thickness_um
from retinaseg.errors import InputError
from retinaseg.io.duke import DUKE_CLASS_NAMES
from retinaseg.io.model_files import DEFAULT_MODEL, resolve_model_file
from retinaseg.io.output import check_output_dir
from retinaseg.io.records import finite_mean, write_csv, write_json
from retinaseg.volume import CIRCLE_PATTERN, DEVICE_LINES_OUTSIDE_KEY, OctVolume

if TYPE_CHECKING:  # PyTorch and Lightning load only when a scan is segmented, after every check
    from retinaseg.training.module import SegmentationModule

#: Thinner columns than this (ILM to BM) show no retina.
MIN_RETINA_UM = 50.0

#: Inner retina (ILM to IPL/INL) thickness locates the fovea: unlike the total
#: thickness it stays minimal at the pit when oedema thickens the outer layers.
_FOVEA_LAYERS = ("RNFL", "GCL+IPL")

#: Macular scans are centred on the fovea; a fovea found farther than this
#: from the scan centre (mm) is flagged for checking.
_FOVEA_CHECK_MM = 0.5


@dataclass
class AnalysisResult:
    """Everything :func:`analyze_volume` measured on one scan.

    Attributes
    ----------
    volume
        The analysed scan.
    class_names
        The model's classes.
    labels
        ``(N, H, W)`` uint8 class maps.
    boundary_names, layer_names
        ``B`` boundaries top to bottom and the ``B - 1`` layers between them.
    boundaries_px
        ``(N, B, W)`` row of each boundary per A-scan, NaN where not seen.
    thickness_um
        ``{layer or TOTAL_RETINA: (N, W)}`` thickness per A-scan in µm.
    grid, maps_um
        Raster volumes: the en-face grid and ``{layer or TOTAL_RETINA: (ny, nx)}``
        thickness maps in µm; ``None`` / empty otherwise.
    fovea_xy_mm, fovea_source
        ETDRS centre in the SLO frame and how it was found (``"automatic"``,
        ``"given"``); ``None`` without a map.
    etdrs
        Rows of :func:`retinaseg.analysis.etdrs.etdrs_table`.
    circle
        RNFL profile of a circle scan, else ``None``.
    reference_name
        What the reference segmentation is (``"stored"``: the lines saved in
        the scan file; ``"phantom truth"`` ...), or ``None``.
    reference_px
        ``{our boundary name: (N, W)}`` reference boundaries.
    boundary_agreement, sector_agreement
        Rows of :func:`retinaseg.analysis.agreement.boundary_agreement` and
        :func:`~retinaseg.analysis.agreement.sector_differences`.
    reference_maps_um, reference_circle
        The reference's thickness maps / circle profile, for side-by-side plots.
    model_name
        Model used.
    notes
        What could not be measured on this scan, and why.
    """

    volume: OctVolume
    class_names: list[str]
    labels: np.ndarray
    boundary_names: list[str]
    layer_names: list[str]
    boundaries_px: np.ndarray
    thickness_um: dict[str, np.ndarray]
    model_name: str
    grid: EnfaceGrid | None = None
    maps_um: dict[str, np.ndarray] = field(default_factory=dict)
    fovea_xy_mm: tuple[float, float] | None = None
    fovea_source: str | None = None
    etdrs: list[dict[str, Any]] = field(default_factory=list)
    circle: CircleProfile | None = None
    reference_name: str | None = None
    reference_px: dict[str, np.ndarray] = field(default_factory=dict)
    boundary_agreement: list[dict[str, Any]] = field(default_factory=list)
    sector_agreement: list[dict[str, Any]] = field(default_factory=list)
    reference_maps_um: dict[str, np.ndarray] = field(default_factory=dict)
    reference_circle: CircleProfile | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_raster(self) -> bool:
        return self.grid is not None

    @property
    def valid_ascan_fraction(self) -> float:
        """Fraction of A-scans whose total retinal thickness was measured."""
        return float(np.isfinite(self.thickness_um[TOTAL_RETINA]).mean())


def model_layers(module: SegmentationModule) -> tuple[list[int], list[int], list[str], list[str]]:
    """Layer classes, fluid classes, boundary names and layer names of a layer model.

    Read from the model's training config (``evaluation.boundary_classes`` in
    top-to-bottom order, ``evaluation.fluid_classes``). Boundaries are named
    after the Duke DME convention when the classes are Duke's, else
    ``"top of <class>"``.
    """
    evaluation = module.config["evaluation"]
    layer_classes = [int(c) for c in evaluation.get("boundary_classes") or []]
    if len(layer_classes) < 2:
        raise InputError("--model", "this model has no layer order (evaluation.boundary_classes); analyze needs an OCT layer model")
    fluid_classes = [int(c) for c in evaluation.get("fluid_classes") or []]
    names = module.class_names
    if list(names) == list(DUKE_CLASS_NAMES) and layer_classes == list(range(1, 9)):
        boundary_names = list(DUKE_BOUNDARY_NAMES)
    else:
        boundary_names = [f"top of {names[c]}" for c in layer_classes]
    layer_names = [names[c] for c in layer_classes[:-1]]
    return layer_classes, fluid_classes, boundary_names, layer_names


def analyze_volume(
    volume: OctVolume,
    module: SegmentationModule,
    *,
    model_name: str = "",
    fovea_xy_mm: tuple[float, float] | None = None,
    reference_px: dict[str, np.ndarray] | None = None,
    reference_name: str = "stored",
    batch_size: int = 4,
    grid_spacing_mm: float = 0.02,
    progress: bool = True,
) -> AnalysisResult:
    """Segment and measure one scan.

    Parameters
    ----------
    volume
        The scan.
    module
        An OCT layer model (:func:`retinaseg.inference.checkpoint.load_model`).
    model_name
        How to name the model in outputs.
    fovea_xy_mm
        ETDRS centre ``(x, y)`` in mm in the SLO frame; default: found
        automatically as the thinnest point of the inner retina within 1 mm
        of the scan centre.
    reference_px
        Reference boundaries ``{our boundary name: (N, W)}``; default: the
        device's segmentation lines stored in the scan (matched by
        :data:`retinaseg.analysis.boundaries.DUKE_TO_DEVICE_LINES`).
    reference_name
        What the reference is, for the report.
    batch_size
        B-scans per forward pass.
    grid_spacing_mm
        Pixel size of the en-face maps.
    progress
        Show a progress bar while segmenting.
    """
    from retinaseg.inference.volume import segment_volume

    layer_classes, fluid_classes, boundary_names, layer_names = model_layers(module)
    labels = segment_volume(volume, module, batch_size=batch_size, progress=progress)
    boundaries = layer_surfaces(
        labels, layer_classes, fluid_classes, invalid=np.isnan(volume.reflectance), min_retina_px=MIN_RETINA_UM / volume.axial_um
    )
    ours = {name: boundaries[:, k] for k, name in enumerate(boundary_names)}
    result = AnalysisResult(
        volume=volume,
        class_names=list(module.class_names),
        labels=labels,
        boundary_names=boundary_names,
        layer_names=layer_names,
        boundaries_px=boundaries,
        thickness_um=_thickness(ours, boundary_names, layer_names, volume.axial_um),
        model_name=model_name,
    )
    if reference_px is None:
        reference_px = {
            name: volume.device_layers[DUKE_TO_DEVICE_LINES[name]]
            for name in boundary_names
            if DUKE_TO_DEVICE_LINES.get(name) in volume.device_layers
            and np.isfinite(volume.device_layers[DUKE_TO_DEVICE_LINES[name]]).any()
        }
    dropped = volume.metadata.get(DEVICE_LINES_OUTSIDE_KEY)
    if dropped:
        result.notes.append(
            f"{sum(dropped.values())} stored segmentation values lay outside the B-scan and were left out "
            f"({', '.join(f'{name} {count}' for name, count in dropped.items())})"
        )
    if reference_px:
        result.reference_name = reference_name
        result.reference_px = reference_px
        result.boundary_agreement = boundary_agreement(ours, reference_px, volume.axial_um)

    positions = volume.ascan_positions_mm()
    if volume.scan_pattern == CIRCLE_PATTERN or any(g.is_circle for g in volume.bscan_geometry):
        _measure_circle(result, positions)
    elif volume.shape[0] >= 2:
        try:
            _measure_raster(result, positions, fovea_xy_mm, grid_spacing_mm)
        except InputError as err:  # e.g. radial scans: B-scans not parallel
            if err.where != "positions":
                raise
            result.notes.append(f"no thickness maps or ETDRS grid: {err.problem}")
    else:
        result.notes.append("single B-scan: thickness along the B-scan only (no maps, no ETDRS grid)")
    return result


def _thickness(
    boundaries_px: dict[str, np.ndarray], boundary_names: list[str], layer_names: list[str], axial_um: float
) -> dict[str, np.ndarray]:
    """``{layer or TOTAL_RETINA: (N, W)}`` thickness in µm wherever both boundaries of a layer are given.

    Layer ``k`` lies between ``boundary_names[k]`` and ``boundary_names[k + 1]``.
    A-scans where the lower boundary lies above the upper one (crossing lines
    of a stored segmentation; ours never cross) have no thickness.
    """
    pairs = {layer: (boundary_names[k], boundary_names[k + 1]) for k, layer in enumerate(layer_names)}
    pairs[TOTAL_RETINA] = (boundary_names[0], boundary_names[-1])
    thickness = {}
    for layer, (upper, lower) in pairs.items():
        if upper in boundaries_px and lower in boundaries_px:
            pair = np.stack([boundaries_px[upper], boundaries_px[lower]], axis=1)
            crossed = pair[:, 1] < pair[:, 0]
            pair[np.broadcast_to(crossed[:, None], pair.shape)] = np.nan
            thickness[layer] = layer_thickness_um(pair, axial_um)[:, 0]
    return thickness


def _reference_thickness(result: AnalysisResult) -> dict[str, np.ndarray]:
    """Thickness of the reference wherever it has both boundaries of a layer."""
    return _thickness(result.reference_px, result.boundary_names, result.layer_names, result.volume.axial_um)


def _measure_raster(
    result: AnalysisResult, positions: np.ndarray, fovea_xy_mm: tuple[float, float] | None, spacing_mm: float
) -> None:
    volume = result.volume
    grid = enface_grid(positions, spacing_mm)
    names = list(result.thickness_um)
    stacked = enface_maps(np.stack([result.thickness_um[name] for name in names], axis=-1), positions, grid)
    result.grid = grid
    result.maps_um = dict(zip(names, stacked))
    if fovea_xy_mm is None:
        inner = [name for name in _FOVEA_LAYERS if name in result.maps_um]
        search = result.maps_um[TOTAL_RETINA] if not inner else np.sum([result.maps_um[name] for name in inner], axis=0)
        centre = tuple(float(v) for v in positions.reshape(-1, 2).mean(axis=0))
        try:
            result.fovea_xy_mm, result.fovea_source = find_fovea(search, grid, centre), "automatic"
        except InputError as err:
            result.notes.append(f"no ETDRS grid: the fovea could not be found ({err.problem}); give --fovea")
            return
        offset_mm = float(np.hypot(result.fovea_xy_mm[0] - centre[0], result.fovea_xy_mm[1] - centre[1]))
        if offset_mm > _FOVEA_CHECK_MM:
            result.notes.append(
                f"fovea found {offset_mm:.2f} mm from the scan centre: check the ETDRS grid on the map and give --fovea if it is off"
            )
    else:
        result.fovea_xy_mm, result.fovea_source = (float(fovea_xy_mm[0]), float(fovea_xy_mm[1])), "given"
    result.etdrs = etdrs_table(result.maps_um, grid, result.fovea_xy_mm, volume.laterality)
    reference = _reference_thickness(result)
    if reference:
        ref_names = list(reference)
        ref_maps = enface_maps(np.stack([reference[name] for name in ref_names], axis=-1), positions, grid)
        result.reference_maps_um = dict(zip(ref_names, ref_maps))
        ref_table = etdrs_table(result.reference_maps_um, grid, result.fovea_xy_mm, volume.laterality)
        result.sector_agreement = sector_differences(result.etdrs, ref_table)


def _measure_circle(result: AnalysisResult, positions: np.ndarray) -> None:
    volume = result.volume
    rnfl = result.layer_names[0]
    geometry = volume.bscan_geometry[0]
    centre = geometry.circle_centre_xy_mm or tuple(positions[0].mean(axis=0))
    result.circle = circle_profile(result.thickness_um[rnfl][0], positions[0], centre, volume.laterality)
    reference = _reference_thickness(result)
    if rnfl in reference:
        result.reference_circle = circle_profile(reference[rnfl][0], positions[0], centre, volume.laterality)


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
        "mean_total_thickness_um": finite_mean(result.thickness_um[TOTAL_RETINA]),
        "notes": list(result.notes),
    }
    if result.fovea_xy_mm is not None:
        out["fovea_xy_mm"] = list(result.fovea_xy_mm)
        out["fovea_source"] = result.fovea_source
        central = [row for row in result.etdrs if row["layer"] == TOTAL_RETINA and row["sector"] == "C0"]
        out["central_subfield_thickness_um"] = central[0]["mean_um"] if central else None
    if result.circle is not None:
        out["rnfl_sectors_um"] = dict(result.circle.sectors)
    if result.reference_name is not None:
        out["reference"] = result.reference_name
        out["boundary_mad_um"] = {row["boundary"]: row["mad_um"] for row in result.boundary_agreement}
        total_rows = [row for row in result.sector_agreement if row["layer"] == TOTAL_RETINA]
        if total_rows:
            out["total_thickness_sector_mad_um"] = finite_mean(np.array([abs(row["difference_um"]) for row in total_rows], dtype=float))
    return out


def write_analysis(
    result: AnalysisResult, out_dir: str | Path, *, overwrite: bool = False, inputs: Sequence[str | Path] = ()
) -> Path:
    """Write every output of an analysis into ``out_dir`` atomically.

    Files: ``report.html`` (self-contained) and ``figures/*.png``;
    ``etdrs.csv``; ``thickness_maps.npz`` (maps in µm on the grid ``x_mm``,
    ``y_mm``); ``boundaries.npz`` (rows per A-scan, A-scan positions in mm,
    thickness per A-scan); ``summary.json``; ``<scan>.eye`` (eyepy volume with
    our layers). Returns the report path. ``overwrite`` and ``inputs`` as for
    :func:`retinaseg.io.output.staged_output_dir`.
    """
    from retinaseg.io.oct_files import write_eye
    from retinaseg.io.output import staged_output_dir
    from retinaseg.report.volume_report import write_volume_report

    out_dir = Path(out_dir)
    stem = Path(result.volume.source).stem or "scan"
    with staged_output_dir(out_dir, overwrite=overwrite, inputs=inputs) as staging:
        np.savez_compressed(
            staging / "boundaries.npz",
            boundaries_px=result.boundaries_px.astype(np.float32),
            boundary_names=np.array(result.boundary_names),
            ascan_positions_mm=result.volume.ascan_positions_mm(),
            axial_um=result.volume.axial_um,
            **{f"thickness_um/{name}": values.astype(np.float32) for name, values in result.thickness_um.items()},
        )
        if result.grid is not None:
            fovea = {} if result.fovea_xy_mm is None else {"fovea_xy_mm": np.array(result.fovea_xy_mm)}
            np.savez_compressed(
                staging / "thickness_maps.npz",
                x_mm=result.grid.x_mm,
                y_mm=result.grid.y_mm,
                **fovea,
                **{name: values.astype(np.float32) for name, values in result.maps_um.items()},
            )
        if result.etdrs:
            write_csv(staging / "etdrs.csv", result.etdrs)
        if result.sector_agreement:
            write_csv(staging / "etdrs_agreement.csv", result.sector_agreement)
        if result.boundary_agreement:
            write_csv(staging / "boundary_agreement.csv", result.boundary_agreement)
        write_json(staging / "summary.json", summary(result))
        write_eye(result.volume, {name: result.boundaries_px[:, k] for k, name in enumerate(result.boundary_names)}, staging / f"{stem}.eye")
        write_volume_report(result, staging)
    return out_dir / "report.html"


#: Below this fraction of A-scans with retina measured, the summary says so.
_LOW_COVERAGE = 0.5

_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def _check_options(batch_size: int, device: str | None, fovea_xy_mm: tuple[float, float] | None) -> None:
    if batch_size < 1:
        raise InputError("--batch-size", f"must be at least 1, got {batch_size}")
    if device is not None and not _DEVICE.fullmatch(device):
        raise InputError("--device", f"unknown device {device!r}; use cpu, cuda, cuda:N or mps")
    if fovea_xy_mm is not None and not all(math.isfinite(v) for v in fovea_xy_mm):
        raise InputError("--fovea", f"must be two finite numbers in mm, got {fovea_xy_mm}")


def _check_fovea_in_scan(fovea_xy_mm: tuple[float, float], volume: OctVolume) -> None:
    """A given ETDRS centre must lie inside the scanned area, or every sector is empty."""
    positions = volume.ascan_positions_mm().reshape(-1, 2)
    low, high = positions.min(axis=0), positions.max(axis=0)
    if not all(low[k] <= fovea_xy_mm[k] <= high[k] for k in range(2)):
        raise InputError(
            "--fovea",
            f"{fovea_xy_mm[0]:g} {fovea_xy_mm[1]:g} mm lies outside the scanned area "
            f"(x {low[0]:.2f}..{high[0]:.2f}, y {low[1]:.2f}..{high[1]:.2f} mm on the SLO image)",
        )


def _torch_device(device: str | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device", "cuda was asked for but PyTorch sees no CUDA GPU")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InputError("--device", "mps was asked for but is not available")
    return device


def analyze_file(
    path: str | Path,
    out_dir: str | Path,
    *,
    model: str = DEFAULT_MODEL,
    fovea_xy_mm: tuple[float, float] | None = None,
    device: str | None = None,
    batch_size: int = 4,
    overwrite: bool = False,
    read_options: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Read a scan, analyse it and write the outputs; returns the report path and the summary.

    ``read_options`` go to :func:`retinaseg.io.oct_files.read_oct` (pixel
    sizes and spacing for folders of B-scan images). The output location,
    the options, the model name and the scan itself are checked before
    PyTorch is imported and before any segmentation, so a wrong call fails
    within a second; an existing ``out_dir`` is only replaced with
    ``overwrite`` (see :mod:`retinaseg.io.output`).
    """
    from retinaseg.io.oct_files import read_oct

    check_output_dir(out_dir, overwrite=overwrite, inputs=[path])
    _check_options(batch_size, device, fovea_xy_mm)
    model_file = resolve_model_file(model)
    volume = read_oct(path, **(read_options or {}))
    if fovea_xy_mm is not None:
        _check_fovea_in_scan(fovea_xy_mm, volume)

    from retinaseg.inference.checkpoint import load_model

    module = load_model(model_file, _torch_device(device))
    result = analyze_volume(volume, module, model_name=str(model), fovea_xy_mm=fovea_xy_mm, batch_size=batch_size)
    coverage = result.valid_ascan_fraction
    if coverage == 0:
        raise InputError(path, "no retina found in any B-scan: nothing to measure (is this an OCT scan of the retina?)")
    if coverage < _LOW_COVERAGE:
        result.notes.append(f"retina measured in only {100 * coverage:.0f}% of the A-scans: check the B-scan overlays")
    report = write_analysis(result, out_dir, overwrite=overwrite, inputs=[path])
    return report, summary(result)

"""``retinaseg analyze``: from an OCT scan to layer boundaries, thickness and a report.

:func:`analyze_volume` segments every B-scan, turns the class maps into
ordered layer boundaries, and measures: per-layer and total thickness per
A-scan (µm); for raster volumes, en-face thickness maps at the A-scans' true
fundus positions, the fovea and the ETDRS grid; for circle scans, the RNFL
profile along the circle. Where the scan carries a reference segmentation
(the device's own, or a phantom's ground truth) it measures the agreement.
Each step returns its part of the :class:`AnalysisResult` (segmentation,
reference agreement, raster or circle measures, notes), which is built once
from the parts. :func:`retinaseg.analysis_outputs.write_analysis` writes everything into one
output folder atomically.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retinaseg.analysis.agreement import (
    BoundaryAgreementRow,
    SectorDifferenceRow,
    boundary_agreement,
    sector_differences,
)
from retinaseg.analysis.boundaries import layer_surfaces
from retinaseg.analysis.circle import CircleProfile, circle_profile
from retinaseg.analysis.enface import (
    EnfaceGrid,
    NotARasterError,
    enface_grid,
    enface_maps,
)
from retinaseg.analysis.etdrs import EtdrsRow, etdrs_table, find_fovea
from retinaseg.analysis.thickness import TOTAL_RETINA, layer_thickness_um
from retinaseg.analysis_outputs import AnalysisOutputs, summary, write_analysis
from retinaseg.conventions import (
    DEFAULT_MODEL,
    DUKE_BOUNDARY_NAMES,
    DUKE_CLASS_NAMES,
    DUKE_LAYER_CLASSES,
    DUKE_TO_DEVICE_LINES,
    INFERENCE_CHOICES,
)
from retinaseg.errors import InputError, unknown_name
from retinaseg.io.model_files import resolve_model_file
from retinaseg.io.output import ANALYSIS, check_output_dir
from retinaseg.volume import CIRCLE_PATTERN, DEVICE_LINES_OUTSIDE_KEY, OctVolume

if TYPE_CHECKING:  # PyTorch loads only when a scan is segmented, after every check
    from retinaseg.models.trained import TrainedModel

#: Thinner columns than this (ILM to BM) show no retina.
MIN_RETINA_UM = 50.0

#: Inner retina (ILM to IPL/INL) thickness locates the fovea: unlike the total
#: thickness it stays minimal at the pit when oedema thickens the outer layers.
_FOVEA_LAYERS = ("RNFL", "GCL+IPL")

#: Macular scans are centred on the fovea; a fovea found farther than this
#: from the scan centre (mm) is flagged for checking.
_FOVEA_CHECK_MM = 0.5


@dataclass(frozen=True, eq=False)
class LayerSegmentation:
    """Our segmentation of a scan: class maps, layer boundaries and thickness per A-scan.

    Attributes
    ----------
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
    """

    class_names: list[str]
    labels: np.ndarray
    boundary_names: list[str]
    layer_names: list[str]
    boundaries_px: np.ndarray
    thickness_um: dict[str, np.ndarray]

    def boundaries_by_name(self) -> dict[str, np.ndarray]:
        """``{boundary name: (N, W)}`` rows in pixels (views of :attr:`boundaries_px`)."""
        return {name: self.boundaries_px[:, k] for k, name in enumerate(self.boundary_names)}


@dataclass(frozen=True, eq=False)
class ReferenceAgreement:
    """A reference segmentation of the scan and how our boundaries agree with it.

    Attributes
    ----------
    name
        What the reference is (``"stored"``: the lines saved in the scan
        file; ``"phantom truth"`` ...).
    boundaries_px
        ``{our boundary name: (N, W)}`` reference boundary rows in pixels.
    thickness_um
        ``{layer or TOTAL_RETINA: (N, W)}`` reference thickness in µm, for
        every layer whose two boundaries the reference has.
    boundary_agreement
        Rows of :func:`retinaseg.analysis.agreement.boundary_agreement`.
    """

    name: str
    boundaries_px: dict[str, np.ndarray]
    thickness_um: dict[str, np.ndarray]
    boundary_agreement: list[BoundaryAgreementRow]


@dataclass(frozen=True, eq=False)
class RasterMeasures:
    """En-face measurements of a raster scan: thickness maps, fovea and ETDRS grid.

    Attributes
    ----------
    grid
        The en-face grid in the SLO frame.
    maps_um
        ``{layer or TOTAL_RETINA: (ny, nx)}`` thickness maps in µm on ``grid``.
    fovea_xy_mm, fovea_source
        ETDRS centre ``(x, y)`` in mm in the SLO frame and how it was found
        (``"automatic"``, ``"given"``); ``None`` when it could not be found.
    etdrs
        Rows of :func:`retinaseg.analysis.etdrs.etdrs_table`; empty without
        a fovea.
    reference_maps_um
        The reference's thickness maps, for side-by-side plots; empty without
        a reference or a fovea.
    sector_agreement
        Rows of :func:`retinaseg.analysis.agreement.sector_differences`;
        empty without a reference or a fovea.
    """

    grid: EnfaceGrid
    maps_um: dict[str, np.ndarray]
    fovea_xy_mm: tuple[float, float] | None = None
    fovea_source: str | None = None
    etdrs: list[EtdrsRow] = field(default_factory=list)
    reference_maps_um: dict[str, np.ndarray] = field(default_factory=dict)
    sector_agreement: list[SectorDifferenceRow] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class CircleMeasures:
    """RNFL profile of a circle scan.

    Attributes
    ----------
    profile
        Our profile of the first layer (RNFL).
    reference
        The reference's profile, when it has both RNFL boundaries.
    """

    profile: CircleProfile
    reference: CircleProfile | None = None


@dataclass(frozen=True, eq=False)
class AnalysisResult:
    """Everything :func:`analyze_volume` measured on one scan, in parts.

    Attributes
    ----------
    volume
        The analysed scan.
    model_name
        Model used.
    segmentation
        Our class maps, boundaries and thickness per A-scan.
    reference
        The reference segmentation and our agreement with it; ``None``
        without one.
    raster
        Thickness maps, fovea and ETDRS grid of a raster scan; ``None`` for
        other scans.
    circle
        RNFL profile of a circle scan; ``None`` for other scans.
    notes
        What could not be measured on this scan, and why.
    """

    volume: OctVolume
    model_name: str
    segmentation: LayerSegmentation
    reference: ReferenceAgreement | None = None
    raster: RasterMeasures | None = None
    circle: CircleMeasures | None = None
    notes: tuple[str, ...] = ()

    @property
    def valid_ascan_fraction(self) -> float:
        """Fraction of A-scans whose total retinal thickness was measured."""
        return float(np.isfinite(self.segmentation.thickness_um[TOTAL_RETINA]).mean())


@dataclass(frozen=True)
class LayerModel:
    """What the measurements need to know of an OCT layer model, without its network.

    Small and picklable, so worker processes can measure class maps that the
    network made elsewhere.

    Attributes
    ----------
    class_names
        The model's classes.
    layer_classes
        Classes of the layers, top to bottom (``evaluation.boundary_classes``).
    fluid_classes
        Classes of fluid inside the retina (``evaluation.fluid_classes``).
    boundary_names, layer_names
        Names of the ``B`` boundaries (the top of each layer class, then the
        bottom of the last) and of the ``B - 1`` layers between them.
    """

    class_names: tuple[str, ...]
    layer_classes: tuple[int, ...]
    fluid_classes: tuple[int, ...]
    boundary_names: tuple[str, ...]
    layer_names: tuple[str, ...]


def layer_model(model: TrainedModel) -> LayerModel:
    """The layer order of a layer model, from its evaluation settings.

    Boundaries are named after the Duke DME convention when the classes are
    Duke's, else ``"top of <class>"``.

    Raises
    ------
    InputError
        The model has no layer order (fewer than 2 ``boundary_classes``).
    """
    layer_classes = list(model.evaluation.boundary_classes)
    if len(layer_classes) < 2:
        raise InputError(
            "--model", "this model has no layer order (evaluation.boundary_classes); analyze needs an OCT layer model"
        )
    names = model.class_names
    if list(names) == list(DUKE_CLASS_NAMES) and layer_classes == list(DUKE_LAYER_CLASSES):
        boundary_names = list(DUKE_BOUNDARY_NAMES)
    else:
        boundary_names = [f"top of {names[c]}" for c in layer_classes]
    return LayerModel(
        class_names=tuple(names),
        layer_classes=tuple(layer_classes),
        fluid_classes=tuple(model.evaluation.fluid_classes),
        boundary_names=tuple(boundary_names),
        layer_names=tuple(names[c] for c in layer_classes[:-1]),
    )


def analyze_volume(
    volume: OctVolume,
    module: TrainedModel,
    *,
    model_name: str = "",
    fovea_xy_mm: tuple[float, float] | None = None,
    reference_px: dict[str, np.ndarray] | None = None,
    reference_name: str = "stored",
    batch_size: int | None = None,
    grid_spacing_mm: float = 0.02,
    progress: bool = True,
    inference: str = "auto",
    retina_rows: bool = False,
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
    fovea_xy_mm, reference_px, reference_name, grid_spacing_mm
        As for :func:`measure_volume`.
    batch_size, inference, retina_rows
        B-scans per forward pass (default: per device), how the network
        runs and whether it sees only the rows around the retina after the
        first B-scan, as for :func:`retinaseg.inference.volume.segment_volume`.
    progress
        Show a progress bar while segmenting.
    """
    from retinaseg.inference.volume import segment_volume

    layers = layer_model(module)
    labels = segment_volume(
        volume, module, batch_size=batch_size, progress=progress, inference=inference, retina_rows=retina_rows
    )
    return measure_volume(
        volume,
        labels,
        layers,
        model_name=model_name,
        fovea_xy_mm=fovea_xy_mm,
        reference_px=reference_px,
        reference_name=reference_name,
        grid_spacing_mm=grid_spacing_mm,
    )


def measure_volume(
    volume: OctVolume,
    labels: np.ndarray,
    layers: LayerModel,
    *,
    model_name: str = "",
    fovea_xy_mm: tuple[float, float] | None = None,
    reference_px: dict[str, np.ndarray] | None = None,
    reference_name: str = "stored",
    grid_spacing_mm: float = 0.02,
) -> AnalysisResult:
    """Measure a segmented scan: boundaries, thickness, maps and ETDRS grid or RNFL profile, agreement.

    Parameters
    ----------
    volume
        The scan.
    labels
        ``(N, H, W)`` uint8 class maps of its B-scans
        (:func:`retinaseg.inference.volume.segment_volume`).
    layers
        The layer order of the model that made ``labels`` (:func:`layer_model`).
    model_name
        How to name the model in outputs.
    fovea_xy_mm
        ETDRS centre ``(x, y)`` in mm in the SLO frame; default: found
        automatically as the thinnest point of the inner retina within 1 mm
        of the scan centre.
    reference_px
        Reference boundaries ``{our boundary name: (N, W)}``; default: the
        device's segmentation lines stored in the scan (matched by
        :data:`retinaseg.conventions.DUKE_TO_DEVICE_LINES`).
    reference_name
        What the reference is, for the report.
    grid_spacing_mm
        Pixel size of the en-face maps.
    """
    segmentation = _layer_segmentation(volume, labels, layers)
    notes = _stored_line_notes(volume)
    if reference_px is None:
        reference_px = _stored_reference(volume, segmentation.boundary_names)
    reference = _compare_with_reference(segmentation, reference_px, reference_name, volume.axial_um) if reference_px else None

    positions = volume.ascan_positions_mm()
    raster: RasterMeasures | None = None
    circle: CircleMeasures | None = None
    if volume.scan_pattern == CIRCLE_PATTERN or any(g.is_circle for g in volume.bscan_geometry):
        circle = _measure_circle(volume, segmentation, reference, positions)
    elif volume.shape[0] >= 2:
        try:
            raster, raster_notes = _measure_raster(volume, segmentation, reference, positions, fovea_xy_mm, grid_spacing_mm)
        except NotARasterError as err:  # e.g. radial scans: B-scans not parallel
            raster_notes = [f"no thickness maps or ETDRS grid: {err.problem}"]
        notes += raster_notes
    else:
        notes.append("single B-scan: thickness along the B-scan only (no maps, no ETDRS grid)")
    return AnalysisResult(
        volume=volume,
        model_name=model_name,
        segmentation=segmentation,
        reference=reference,
        raster=raster,
        circle=circle,
        notes=tuple(notes),
    )


def _layer_segmentation(volume: OctVolume, labels: np.ndarray, layers: LayerModel) -> LayerSegmentation:
    """The layer boundaries of class maps, ordered top to bottom, and thickness per A-scan."""
    if labels.shape != volume.shape:
        raise ValueError(f"class maps of shape {labels.shape} do not match the volume's {volume.shape}")
    boundaries = layer_surfaces(
        labels,
        list(layers.layer_classes),
        list(layers.fluid_classes),
        invalid=np.isnan(volume.reflectance),
        min_retina_px=MIN_RETINA_UM / volume.axial_um,
    )
    boundary_names, layer_names = list(layers.boundary_names), list(layers.layer_names)
    ours = {name: boundaries[:, k] for k, name in enumerate(boundary_names)}
    return LayerSegmentation(
        class_names=list(layers.class_names),
        labels=labels,
        boundary_names=boundary_names,
        layer_names=layer_names,
        boundaries_px=boundaries,
        thickness_um=_thickness(ours, boundary_names, layer_names, volume.axial_um),
    )


def _stored_reference(volume: OctVolume, boundary_names: list[str]) -> dict[str, np.ndarray]:
    """The device lines stored in the scan that match our boundaries and hold any value, by our names."""
    return {
        name: volume.device_layers[DUKE_TO_DEVICE_LINES[name]]
        for name in boundary_names
        if DUKE_TO_DEVICE_LINES.get(name) in volume.device_layers
        and np.isfinite(volume.device_layers[DUKE_TO_DEVICE_LINES[name]]).any()
    }


def _stored_line_notes(volume: OctVolume) -> list[str]:
    """A note on stored segmentation values the reader left out, if there were any."""
    dropped = volume.metadata.get(DEVICE_LINES_OUTSIDE_KEY)
    if not dropped:
        return []
    counts = ", ".join(f"{name} {count}" for name, count in dropped.items())
    return [f"{sum(dropped.values())} stored segmentation values lay outside the B-scan and were left out ({counts})"]


def _compare_with_reference(
    segmentation: LayerSegmentation, reference_px: dict[str, np.ndarray], name: str, axial_um: float
) -> ReferenceAgreement:
    """The reference's thickness and the agreement of our boundaries with its."""
    return ReferenceAgreement(
        name=name,
        boundaries_px=reference_px,
        thickness_um=_thickness(reference_px, segmentation.boundary_names, segmentation.layer_names, axial_um),
        boundary_agreement=boundary_agreement(segmentation.boundaries_by_name(), reference_px, axial_um),
    )


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


def _enface(thickness_um: dict[str, np.ndarray], positions: np.ndarray, grid: EnfaceGrid) -> dict[str, np.ndarray]:
    """``{name: (ny, nx)}`` maps of ``{name: (N, W)}`` per-A-scan values, interpolated in one pass."""
    names = list(thickness_um)
    maps = enface_maps(np.stack([thickness_um[name] for name in names], axis=-1), positions, grid)
    return dict(zip(names, maps))


def _measure_raster(
    volume: OctVolume,
    segmentation: LayerSegmentation,
    reference: ReferenceAgreement | None,
    positions: np.ndarray,
    fovea_xy_mm: tuple[float, float] | None,
    spacing_mm: float,
) -> tuple[RasterMeasures, list[str]]:
    """Thickness maps, fovea, ETDRS table and sector agreement, and notes on what needs checking.

    Raises :class:`~retinaseg.analysis.enface.NotARasterError` when the
    B-scans are no raster.
    """
    grid = enface_grid(positions, spacing_mm)
    maps_um = _enface(segmentation.thickness_um, positions, grid)
    notes = []
    if fovea_xy_mm is None:
        inner = [name for name in _FOVEA_LAYERS if name in maps_um]
        search = maps_um[TOTAL_RETINA] if not inner else np.sum([maps_um[name] for name in inner], axis=0)
        centre_x, centre_y = positions.reshape(-1, 2).mean(axis=0)
        centre = (float(centre_x), float(centre_y))
        try:
            fovea, source = find_fovea(search, grid, centre), "automatic"
        except InputError as err:
            notes.append(f"no ETDRS grid: the fovea could not be found ({err.problem}); give --fovea")
            return RasterMeasures(grid=grid, maps_um=maps_um), notes
        offset_mm = float(np.hypot(fovea[0] - centre[0], fovea[1] - centre[1]))
        if offset_mm > _FOVEA_CHECK_MM:
            notes.append(
                f"fovea found {offset_mm:.2f} mm from the scan centre: check the ETDRS grid on the map and give --fovea if it is off"
            )
    else:
        fovea, source = (float(fovea_xy_mm[0]), float(fovea_xy_mm[1])), "given"
    etdrs = etdrs_table(maps_um, grid, fovea, volume.laterality)
    reference_maps_um: dict[str, np.ndarray] = {}
    sector_agreement: list[SectorDifferenceRow] = []
    if reference is not None and reference.thickness_um:
        reference_maps_um = _enface(reference.thickness_um, positions, grid)
        sector_agreement = sector_differences(etdrs, etdrs_table(reference_maps_um, grid, fovea, volume.laterality))
    measures = RasterMeasures(
        grid=grid,
        maps_um=maps_um,
        fovea_xy_mm=fovea,
        fovea_source=source,
        etdrs=etdrs,
        reference_maps_um=reference_maps_um,
        sector_agreement=sector_agreement,
    )
    return measures, notes


def _measure_circle(
    volume: OctVolume, segmentation: LayerSegmentation, reference: ReferenceAgreement | None, positions: np.ndarray
) -> CircleMeasures:
    """RNFL profile along the circle, ours and the reference's."""
    rnfl = segmentation.layer_names[0]
    centre = volume.bscan_geometry[0].circle_centre_xy_mm or tuple(positions[0].mean(axis=0))
    profile = circle_profile(segmentation.thickness_um[rnfl][0], positions[0], centre, volume.laterality)
    if reference is None or rnfl not in reference.thickness_um:
        return CircleMeasures(profile=profile)
    reference_profile = circle_profile(reference.thickness_um[rnfl][0], positions[0], centre, volume.laterality)
    return CircleMeasures(profile=profile, reference=reference_profile)


#: Below this fraction of A-scans with retina measured, the summary says so.
_LOW_COVERAGE = 0.5


def check_coverage(result: AnalysisResult, where: str | Path) -> AnalysisResult:
    """``result``, with a note when the retina was measured in few A-scans; ``where`` names the scan in errors.

    Raises
    ------
    InputError
        No retina was found in any B-scan: there is nothing to measure.
    """
    coverage = result.valid_ascan_fraction
    if coverage == 0:
        raise InputError(where, "no retina found in any B-scan: nothing to measure (is this an OCT scan of the retina?)")
    if coverage < _LOW_COVERAGE:
        note = f"retina measured in only {100 * coverage:.0f}% of the A-scans: check the B-scan overlays"
        return dataclasses.replace(result, notes=(*result.notes, note))
    return result


_DEVICE = re.compile(r"cpu|cuda(:\d+)?|mps")


def check_analysis_options(
    batch_size: int | None, device: str | None, fovea_xy_mm: tuple[float, float] | None, inference: str = "auto"
) -> None:
    """Refuse a batch size below 1, an unknown device or inference option, a fovea that is not two finite numbers."""
    if inference not in INFERENCE_CHOICES:
        raise InputError("--inference", unknown_name("inference option", inference, INFERENCE_CHOICES))
    if batch_size is not None and batch_size < 1:
        raise InputError("--batch-size", f"must be at least 1, got {batch_size}")
    if device is not None and not _DEVICE.fullmatch(device):
        raise InputError("--device", f"unknown device {device!r}; use cpu, cuda, cuda:N or mps")
    if fovea_xy_mm is not None and not all(math.isfinite(v) for v in fovea_xy_mm):
        raise InputError("--fovea", f"must be two finite numbers in mm, got {fovea_xy_mm}")


def check_fovea_in_scan(fovea_xy_mm: tuple[float, float], volume: OctVolume) -> None:
    """A given ETDRS centre must lie inside the scanned area, or every sector is empty."""
    positions = volume.ascan_positions_mm().reshape(-1, 2)
    low, high = positions.min(axis=0), positions.max(axis=0)
    if not all(low[k] <= fovea_xy_mm[k] <= high[k] for k in range(2)):
        raise InputError(
            "--fovea",
            f"{fovea_xy_mm[0]:g} {fovea_xy_mm[1]:g} mm lies outside the scanned area "
            f"(x {low[0]:.2f}..{high[0]:.2f}, y {low[1]:.2f}..{high[1]:.2f} mm on the SLO image)",
        )


def check_runtime_options(model_file: Path, device: str | None, inference: str) -> None:
    """Refuse a ``--device`` or ``--inference`` the model cannot run with, before any work.

    ONNX Runtime runs on the CPU here: an ``.onnx`` model runs as
    ``onnxruntime`` (``auto`` means the same for it), and
    ``--inference onnxruntime`` with another model needs the CPU too.
    """
    onnx_file = model_file.suffix == ".onnx"
    if onnx_file and inference not in ("auto", "onnxruntime"):
        raise InputError("--inference", f"{model_file} is an ONNX model: it runs as onnxruntime (or auto), not {inference}")
    if (onnx_file or inference == "onnxruntime") and device not in (None, "cpu"):
        raise InputError("--device", f"ONNX Runtime runs on the CPU here, not {device} (use another --inference on a GPU)")


def model_device(model_file: Path, device: str | None, inference: str) -> str:
    """Where the model in ``model_file`` runs: the CPU for ONNX Runtime, else :func:`torch_device`."""
    return "cpu" if model_file.suffix == ".onnx" or inference == "onnxruntime" else torch_device(device)


def torch_device(device: str | None) -> str:
    """The PyTorch device to run on: ``device`` if it is available, else refused; default: the best available."""
    import torch

    from retinaseg.inference.checkpoint import default_device

    if device is None:
        return default_device()
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
    batch_size: int | None = None,
    overwrite: bool = False,
    read_options: dict[str, Any] | None = None,
    outputs: AnalysisOutputs | None = None,
    inference: str = "auto",
    retina_rows: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Read a scan, analyse it and write the outputs; returns the report path and the summary.

    ``read_options`` go to :func:`retinaseg.io.oct_files.read_oct` (pixel
    sizes and spacing for folders of B-scan images); ``outputs`` chooses the
    optional outputs (default: all but NIfTI); ``batch_size``,
    ``inference`` and ``retina_rows`` as for :func:`analyze_volume`. The output location,
    the options, the model name and the scan itself are checked before
    PyTorch is imported and before any segmentation, so a wrong call fails
    within a second; an existing ``out_dir`` is only replaced with
    ``overwrite`` (see :mod:`retinaseg.io.output`).
    """
    from retinaseg.io.oct_files import read_oct

    check_analysis_options(batch_size, device, fovea_xy_mm, inference)
    model_file = resolve_model_file(model)
    check_runtime_options(model_file, device, inference)
    inputs = [path, model_file]  # the model may lie in an output folder of retinaseg, e.g. its training run
    check_output_dir(out_dir, ANALYSIS, overwrite=overwrite, inputs=inputs)
    volume = read_oct(path, **(read_options or {}))
    if fovea_xy_mm is not None:
        check_fovea_in_scan(fovea_xy_mm, volume)

    from retinaseg.inference.checkpoint import load_model

    module = load_model(model_file, model_device(model_file, device, inference))
    result = analyze_volume(
        volume,
        module,
        model_name=str(model),
        fovea_xy_mm=fovea_xy_mm,
        batch_size=batch_size,
        inference=inference,
        retina_rows=retina_rows,
    )
    result = check_coverage(result, path)
    report = write_analysis(result, out_dir, overwrite=overwrite, inputs=inputs, outputs=outputs or AnalysisOutputs())
    return report, summary(result)

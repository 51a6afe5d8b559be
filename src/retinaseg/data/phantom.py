"""Synthetic macular OCT B-scans with exact layer labels.

The phantom stands in for real data in tests and demos. It uses the Duke DME
10-class convention (:data:`~retinaseg.conventions.DUKE_CLASS_NAMES`, tabled in
:mod:`retinaseg.conventions`) and physical units: layer thicknesses are set in
micrometres and converted with the axial pixel spacing.

Model
-----
- Anatomy: Bruch's membrane (BM) is a gently tilted and curved line; the
  layers are stacked upwards from it with typical healthy macular
  thicknesses (RNFL ~25 um, thicker on the nasal side; GCL+IPL ~70 um;
  INL ~35; OPL ~25; ONL ~90; ISE ~20; OS-RPE ~35 um), varied per subject and
  smoothly along the B-scan. At the fovea the inner layers (RNFL to OPL)
  thin to zero in a flat-bottomed pit while ONL and OS-RPE thicken, so the
  foveal depression of the inner surface emerges from the layer thicknesses.
- Fluid (optional): intraretinal pockets of elliptic cross-section inside
  INL, OPL or ONL near the fovea; they thicken their layer (lifting the
  layers above), as cysts do in diabetic macular oedema.
- Appearance: a reflectivity per layer (RNFL, ISE and RPE bright, INL and
  ONL dark, vitreous near black, a faint external limiting membrane, choroid
  bright under BM fading with depth, with vessel texture), shadows under
  inner-retinal vessels, blur by the axial/lateral point-spread function,
  then speckle. Speckle is multiplicative on intensity (exponentially
  distributed, i.e. gamma with shape 1: fully developed), but the display
  compression of OCT exports turns it into noise of about the same spread
  in dark and bright layers, so its Rayleigh amplitude is added at a fixed
  grey-level spread, correlated over the resolution cell (spread and grain
  measured on the Duke Spectralis B-scans).

Boundaries are stored as float rows (0-based, ``(8, W)``): boundary ``k``
(1..8) is the upper edge of class ``k``; boundary 8 is BM.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from retinaseg.conventions import (
    DUKE_AXIAL_UM,
    DUKE_BOUNDARY_NAMES,
    DUKE_CLASS_NAMES,
    DUKE_FLUID_CLASS,
)
from retinaseg.errors import InputError
from retinaseg.io.display import reflectance_from_display
from retinaseg.io.duke import boundaries_to_labels
from retinaseg.types import Sample, SampleSet
from retinaseg.volume import BScanGeometry, Laterality, OctVolume

# Typical healthy macular thickness (um) of classes 1..7 away from the fovea.
_LAYER_UM = np.array([25.0, 70.0, 35.0, 25.0, 90.0, 20.0, 35.0])
# Extra thickness (um) at the foveal centre; the inner layers are removed
# separately by the pit, so only ONL (Henle fibres), ISE and cone OS grow.
_FOVEA_EXTRA_UM = np.array([0.0, 0.0, 0.0, 0.0, 60.0, 5.0, 15.0])
_INNER = np.array([True, True, True, True, False, False, False])
# The pit is a super-Gaussian exp(-(r / radius)**3 / 2) of the distance r from
# the foveal centre: a flat floor (foveola) and steep walls rather than a V.
_PIT_RADIUS_MM = 0.4
_FOVEA_BULGE_SIGMA_MM = 0.45
# The ganglion-cell ring is thickest about 0.9 mm from the foveal centre.
_RIM_RADIUS_MM, _RIM_SIGMA_MM, _RIM_GAIN = 0.9, 0.4, 0.2
_RNFL_NASAL_GAIN_UM, _RNFL_NASAL_SCALE_MM = 15.0, 1.5

# Mean display value (0-255) of each class and its change from the top to the
# bottom of the layer (RNFL brightest at the ILM, IPL brighter than GCL, RPE
# brighter than OS); choroid (8) is modelled separately.
_CLASS_LEVEL = np.array([26.0, 150.0, 105.0, 78.0, 115.0, 52.0, 170.0, 140.0, 0.0, 22.0], dtype=np.float32)
_CLASS_SLOPE = np.array([0.0, -30.0, 30.0, 0.0, 0.0, 0.0, 0.0, 90.0, 0.0, 0.0], dtype=np.float32)
_ELM_LEVEL, _ELM_ABOVE_ISE_UM = 35.0, 12.0
_CHOROID_TOP, _CHOROID_FLOOR, _CHOROID_DECAY_UM = 110.0, 18.0, 160.0
_CHOROID_BLOB_UM = (60.0, 150.0)
# Axial and lateral point-spread function (Gaussian sigma, um): about 7 um
# and 14 um full width at half maximum, as for Spectralis.
_PSF_SIGMA_UM = (3.0, 6.0)
# Speckle grain (Gaussian sigma of its correlation, um) and its spread in
# grey levels. Measured on Duke Spectralis exports: neighbour correlation
# about 0.6 axially and 0.5 laterally, spread about 15-20 grey levels in every
# layer, with a bright tail.
_SPECKLE_SIGMA_UM = (3.0, 7.0)
_SPECKLE_GREY = 16.0


@dataclass(frozen=True)
class _Anatomy:
    """Per-subject shape parameters shared by all B-scans of a volume."""

    thickness_scale: np.ndarray  # (7,) factor per layer
    nasal_sign: float  # +1: nasal side is to the right (larger columns)
    bm_frac: float  # BM row at the fovea, fraction of the height
    tilt_frac: float  # BM row change across the width, fraction of the height
    curvature_frac: float  # BM rise at the B-scan ends, fraction of the height
    wobble: np.ndarray  # (3, 3): amplitude (fraction), wavelength (mm), phase
    fovea_col: float  # foveal centre, column in pixels


@dataclass(frozen=True)
class _Pockets:
    """Fluid pockets (ellipsoids): centres and half-sizes in mm, heights in um, layer class."""

    x_mm: np.ndarray
    y_mm: np.ndarray
    half_width_mm: np.ndarray
    half_length_mm: np.ndarray
    height_um: np.ndarray
    layer: np.ndarray


@dataclass(frozen=True, eq=False)
class PhantomVolume:
    """A stack of phantom B-scans with their truth: what :func:`make_phantom_volume` returns.

    Attributes
    ----------
    images
        ``(N, H, W)`` uint8 B-scans (8-bit display images).
    labels
        ``(N, H, W)`` uint8 classes 0..9 (Duke convention).
    boundary_rows
        ``(N, 8, W)`` float64 0-based rows of the 8 layer boundaries (ILM ..
        BM), before fluid is drawn over the label maps.
    axial_um, lateral_um
        Pixel spacing along rows (depth) and columns, µm.
    bscan_spacing_um
        Distance between neighbouring B-scans, µm.
    fovea_bscan
        Fractional B-scan index of the foveal centre.
    fovea_col
        Column of the foveal centre, pixels.
    """

    images: np.ndarray
    labels: np.ndarray
    boundary_rows: np.ndarray
    axial_um: float
    lateral_um: float
    bscan_spacing_um: float
    fovea_bscan: float
    fovea_col: float


@dataclass(frozen=True, eq=False)
class PhantomTruth:
    """Ground truth of a phantom :class:`~retinaseg.volume.OctVolume` (:func:`make_phantom_oct_volume`).

    Attributes
    ----------
    boundary_rows
        ``(N, 8, W)`` float64 0-based rows of the 8 layer boundaries, ILM ..
        BM (:data:`~retinaseg.conventions.DUKE_BOUNDARY_NAMES`).
    labels
        ``(N, H, W)`` uint8 classes 0..9 (Duke convention).
    fovea_xy_mm
        Foveal centre ``(x, y)`` in mm in the fundus (SLO) frame.
    """

    boundary_rows: np.ndarray
    labels: np.ndarray
    fovea_xy_mm: tuple[float, float]


def labels_from_boundaries(boundary_rows: np.ndarray, height: int) -> np.ndarray:
    """Rasterise layer boundaries (0-based rows) into a class-index map.

    Parameters
    ----------
    boundary_rows
        ``(n, W)`` float rows, 0-based; boundary ``k`` (1..n) is the upper
        edge of class ``k``. ``NaN`` where unknown.
    height
        Number of rows ``H``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8: 0 above the first boundary, ``k`` between boundary
        ``k`` and ``k + 1``, ``n`` below the last. Row ``y`` is below a
        boundary ``b`` when ``y >= b``. Crossing boundaries are ordered as in
        :func:`retinaseg.io.duke.boundaries_to_labels`, which does the work
        (it takes MATLAB 1-based rows).
    """
    boundary_rows = np.asarray(boundary_rows, dtype=np.float64)
    if boundary_rows.ndim != 2 or not 1 <= boundary_rows.shape[0] <= 255:
        raise InputError("boundary_rows", f"expected an (n, W) array with 1 <= n <= 255, got shape {boundary_rows.shape}")
    if int(height) != height or height < 1:
        raise InputError("height", f"must be a positive integer, got {height!r}")
    return boundaries_to_labels(boundary_rows + 1.0, int(height))


def make_phantom_bscan(
    rng: np.random.Generator,
    height: int = 496,
    width: int = 512,
    *,
    fovea_offset_um: float = 0.0,
    fovea_col: float | None = None,
    with_fluid: bool = False,
    axial_um: float = DUKE_AXIAL_UM,
    lateral_um: float = 11.5,
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic macular B-scan and its label map.

    Parameters
    ----------
    rng
        Source of all randomness; the same state gives the same B-scan.
    height, width
        Size in pixels. The depth ``height * axial_um`` must be at least
        1 mm to hold the retina and some choroid.
    fovea_offset_um
        Distance of the B-scan plane from the foveal centre: 0 cuts through
        the deepest point of the pit (inner layers vanish there); beyond
        about 800 um the pit is gone.
    fovea_col
        Column of the foveal centre; ``None`` draws one near the middle.
    with_fluid
        Add one to four intraretinal fluid pockets (class 9) near the fovea.
    axial_um, lateral_um
        Pixel spacing along rows (depth) and columns, micrometres.

    Returns
    -------
    image : numpy.ndarray
        ``(H, W)`` uint8 B-scan.
    label : numpy.ndarray
        ``(H, W)`` uint8 classes 0..9 (Duke convention).
    """
    _check_size(height, width, axial_um, lateral_um)
    anatomy = _draw_anatomy(rng, width, lateral_um, fovea_col)
    pockets = _draw_pockets(rng, y_range_mm=(fovea_offset_um / 1000,) * 2) if with_fluid else None
    image, label, _ = _bscan(rng, anatomy, pockets, fovea_offset_um / 1000, height, width, axial_um, lateral_um)
    return image, label


def make_phantom_volume(
    rng: np.random.Generator,
    n_bscans: int = 11,
    height: int = 496,
    width: int = 512,
    *,
    bscan_spacing_um: float = 120.0,
    with_fluid: bool = False,
    axial_um: float = DUKE_AXIAL_UM,
    lateral_um: float = 11.5,
) -> PhantomVolume:
    """A stack of parallel B-scans through a macula with a 2-D foveal pit.

    The foveal centre lies in the central third of the stack; the pit and
    the fluid pockets are 2-D/3-D shapes, so B-scans through the centre are
    deepest. Anatomy (layer thicknesses, tilt, curvature) is shared by all
    B-scans; speckle is drawn independently for each.

    Parameters
    ----------
    rng
        Source of all randomness.
    n_bscans
        Number of B-scans ``N``.
    height, width
        B-scan size in pixels.
    bscan_spacing_um
        Distance between neighbouring B-scans, micrometres.
    with_fluid, axial_um, lateral_um
        As for :func:`make_phantom_bscan`.

    Returns
    -------
    PhantomVolume
        The B-scans, label maps and boundary rows, the spacings and where
        the foveal centre lies.
    """
    _check_size(height, width, axial_um, lateral_um)
    if int(n_bscans) != n_bscans or n_bscans < 1 or bscan_spacing_um <= 0:
        raise InputError("n_bscans", f"need n_bscans >= 1 and bscan_spacing_um > 0, got {n_bscans}, {bscan_spacing_um}")
    anatomy = _draw_anatomy(rng, width, lateral_um, None)
    fovea_bscan = (n_bscans - 1) / 2 + rng.uniform(-1, 1) * n_bscans / 6
    y_mm = (np.arange(n_bscans) - fovea_bscan) * bscan_spacing_um / 1000
    pockets = _draw_pockets(rng, y_range_mm=(-0.2, 0.2)) if with_fluid else None
    scans = [_bscan(rng, anatomy, pockets, y, height, width, axial_um, lateral_um) for y in y_mm]
    images, labels, boundaries = (np.stack(parts) for parts in zip(*scans))
    return PhantomVolume(
        images=images,
        labels=labels,
        boundary_rows=boundaries,
        axial_um=float(axial_um),
        lateral_um=float(lateral_um),
        bscan_spacing_um=float(bscan_spacing_um),
        fovea_bscan=float(fovea_bscan),
        fovea_col=float(anatomy.fovea_col),
    )


def make_phantom_set(
    n_subjects: int = 6,
    bscans_per_subject: int = 4,
    height: int = 496,
    width: int = 512,
    *,
    fluid_fraction: float = 0.5,
    bscan_spacing_um: float = 240.0,
    axial_um: float = DUKE_AXIAL_UM,
    lateral_um: float = 11.5,
    seed: int = 0,
) -> SampleSet:
    """A labelled OCT sample set of synthetic subjects.

    Subject ``i`` (ids ``"phantom_01"``, ``"phantom_02"``, ...) is a volume
    of ``bscans_per_subject`` B-scans around its fovea (see
    :func:`make_phantom_volume`), drawn from its own random stream so a
    subject does not change when ``n_subjects`` does. Subjects with fluid
    are spread evenly: subject ``i`` (0-based) has fluid when
    ``floor((i + 1) * f) > floor(i * f)``, ``f = fluid_fraction``.

    Returns
    -------
    SampleSet
        Multiclass OCT set with :data:`~retinaseg.conventions.DUKE_CLASS_NAMES`; samples
        ``"phantom_01_00"``, ... with ``spacing_um = (axial_um, lateral_um)``.
    """
    if int(n_subjects) != n_subjects or n_subjects < 1 or not 0.0 <= fluid_fraction <= 1.0:
        raise InputError("phantom", f"need n_subjects >= 1 and 0 <= fluid_fraction <= 1, got {n_subjects}, {fluid_fraction}")
    samples = []
    for i in range(int(n_subjects)):
        subject = f"phantom_{i + 1:02d}"
        volume = make_phantom_volume(
            np.random.default_rng((seed, i)),
            bscans_per_subject,
            height,
            width,
            bscan_spacing_um=bscan_spacing_um,
            with_fluid=np.floor((i + 1) * fluid_fraction) > np.floor(i * fluid_fraction),
            axial_um=axial_um,
            lateral_um=lateral_um,
        )
        samples += [
            Sample(
                id=f"{subject}_{j:02d}",
                subject=subject,
                image=image,
                label=label,
                spacing_um=(float(axial_um), float(lateral_um)),
                source=f"phantom seed {seed} subject {i + 1} B-scan {j}",
            )
            for j, (image, label) in enumerate(zip(volume.images, volume.labels))
        ]
    return SampleSet(
        samples=samples,
        class_names=list(DUKE_CLASS_NAMES),
        task="multiclass",
        modality="oct",
        name="phantom",
        extra={"seed": seed},
    )


def _check_size(height: int, width: int, axial_um: float, lateral_um: float) -> None:
    if int(height) != height or int(width) != width or height < 8 or width < 8:
        raise InputError("phantom size", f"height and width must be integers >= 8, got {height}x{width}")
    if axial_um <= 0 or lateral_um <= 0:
        raise InputError("phantom spacing", f"pixel spacing must be > 0, got {axial_um}, {lateral_um} um")
    if height * axial_um < 1000:
        raise InputError("phantom size", f"depth {height} x {axial_um} um is under 1 mm; raise height or axial_um")


def _draw_anatomy(rng: np.random.Generator, width: int, lateral_um: float, fovea_col: float | None) -> _Anatomy:
    if fovea_col is None:
        fovea_col = (width - 1) / 2 + rng.uniform(-0.1, 0.1) * width
    return _Anatomy(
        thickness_scale=np.clip(1 + 0.08 * rng.standard_normal(7), 0.8, 1.2),
        nasal_sign=float(rng.choice([-1.0, 1.0])),
        bm_frac=rng.uniform(0.55, 0.65),
        tilt_frac=rng.uniform(-0.08, 0.08),
        curvature_frac=rng.uniform(0.0, 0.06),
        wobble=np.stack([rng.uniform(0.0, 0.04, 3), rng.uniform(0.5, 3.0, 3), rng.uniform(0, 2 * np.pi, 3)]),
        fovea_col=float(fovea_col),
    )


def _draw_pockets(rng: np.random.Generator, y_range_mm: tuple[float, float]) -> _Pockets:
    n = int(rng.integers(1, 5))
    return _Pockets(
        x_mm=rng.uniform(-0.8, 0.8, n),
        y_mm=rng.uniform(*y_range_mm, n),
        half_width_mm=rng.uniform(0.1, 0.35, n),
        half_length_mm=rng.uniform(0.2, 0.4, n),
        height_um=rng.uniform(40.0, 180.0, n),
        layer=rng.choice([3, 4, 5], n, p=[0.4, 0.2, 0.4]),
    )


def _layer_thickness_um(anatomy: _Anatomy, x_mm: np.ndarray, y_mm: float) -> np.ndarray:
    """(7, W) thickness of classes 1..7 in micrometres along the B-scan at ``y_mm``."""
    r = np.hypot(x_mm, y_mm)
    pit = np.exp(-0.5 * (r / _PIT_RADIUS_MM) ** 3)
    bulge = np.exp(-0.5 * (r / _FOVEA_BULGE_SIGMA_MM) ** 2)
    rim = np.exp(-0.5 * ((r - _RIM_RADIUS_MM) / _RIM_SIGMA_MM) ** 2)
    amplitude, wavelength_mm, phase = anatomy.wobble
    wobble = 1 + (amplitude[:, None] * np.sin(2 * np.pi * x_mm / wavelength_mm[:, None] + phase[:, None])).sum(0)
    thickness = (_LAYER_UM * anatomy.thickness_scale)[:, None] + _FOVEA_EXTRA_UM[:, None] * bulge
    thickness[0] += _RNFL_NASAL_GAIN_UM * np.tanh(anatomy.nasal_sign * x_mm / _RNFL_NASAL_SCALE_MM)
    thickness[1:4] *= 1 + _RIM_GAIN * rim
    thickness[_INNER] *= 1 - pit
    return thickness * wobble


def _bscan(
    rng: np.random.Generator,
    anatomy: _Anatomy,
    pockets: _Pockets | None,
    y_mm: float,
    height: int,
    width: int,
    axial_um: float,
    lateral_um: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, label map and (8, W) boundary rows of the B-scan at ``y_mm`` from the fovea."""
    cols = np.arange(width, dtype=np.float64)
    x_mm = (cols - anatomy.fovea_col) * lateral_um / 1000
    thickness_px = _layer_thickness_um(anatomy, x_mm, y_mm) / axial_um
    layer_px = thickness_px.copy()
    if pockets is not None:
        # Cross-section of each ellipsoidal pocket with this B-scan's plane;
        # a pocket adds its height to the thickness of its layer.
        along = np.clip(1 - ((y_mm - pockets.y_mm) / pockets.half_length_mm) ** 2, 0, None)
        across = np.clip(1 - ((x_mm[None] - pockets.x_mm[:, None]) / pockets.half_width_mm[:, None]) ** 2, 0, None)
        fluid_px = (pockets.height_um * np.sqrt(along))[:, None] * np.sqrt(across) / axial_um
        np.add.at(layer_px, pockets.layer - 1, fluid_px)

    u = 2 * cols / (width - 1) - 1
    bm_row = height * (anatomy.bm_frac + anatomy.tilt_frac * u / 2 - anatomy.curvature_frac * u**2)
    above_bm = np.cumsum(layer_px[::-1], axis=0)[::-1]
    boundaries = np.vstack([bm_row - above_bm, bm_row])
    label = labels_from_boundaries(boundaries, height)

    fluid = np.zeros((height, width), dtype=bool)
    if pockets is not None:
        rows = np.arange(height, dtype=np.float64)[:, None]
        # Pockets sit mid-layer, stacked when several share a layer.
        stacked = np.zeros((len(DUKE_BOUNDARY_NAMES) + 1, width))  # fluid rows so far, per layer class
        for layer, height_px in zip(pockets.layer, fluid_px):
            top = boundaries[layer - 1] + thickness_px[layer - 1] / 2 + stacked[layer]
            fluid |= (rows >= top) & (rows < top + height_px)
            stacked[layer] += height_px
    image = _render(rng, label, fluid, boundaries, axial_um, lateral_um)
    label[fluid] = DUKE_FLUID_CLASS
    return image, label, boundaries


def _render(
    rng: np.random.Generator,
    label: np.ndarray,
    fluid: np.ndarray,
    boundaries: np.ndarray,
    axial_um: float,
    lateral_um: float,
) -> np.ndarray:
    """uint8 B-scan for a layer label map (without fluid) and a fluid mask."""
    height, width = label.shape
    rows = np.arange(height, dtype=np.float32)[:, None]
    cols = np.arange(width)[None, :]
    edges = np.vstack([np.zeros(width), boundaries, np.full(width, float(height))]).astype(np.float32)
    top, bottom = edges[label, cols], edges[label + 1, cols]
    depth_in_layer = np.clip((rows + 0.5 - top) / np.maximum(bottom - top, 1.0), 0, 1) - 0.5
    level = _CLASS_LEVEL[label] + _CLASS_SLOPE[label] * depth_in_layer

    elm_row = (boundaries[5] - _ELM_ABOVE_ISE_UM / axial_um).astype(np.float32)
    level += _ELM_LEVEL * np.exp(-0.5 * (rows - elm_row) ** 2)

    blobs = (
        max(round(height * axial_um / _CHOROID_BLOB_UM[0]), 2),
        max(round(width * lateral_um / _CHOROID_BLOB_UM[1]), 2),
    )
    texture = cv2.resize(rng.uniform(0.6, 1.25, blobs).astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    below_bm_um = (rows - boundaries[-1].astype(np.float32)) * axial_um
    choroid = _CHOROID_FLOOR + (_CHOROID_TOP - _CHOROID_FLOOR) * np.exp(-below_bm_um / _CHOROID_DECAY_UM) * texture
    level = np.where(label == 8, choroid, level)
    level[fluid] = _CLASS_LEVEL[DUKE_FLUID_CLASS]

    # Large inner-retinal vessels shadow everything beneath them.
    n_vessels = int(rng.integers(2, 6))
    centres = rng.uniform(0, width, n_vessels)
    sigma_px = rng.uniform(15.0, 40.0, n_vessels) / lateral_um
    strength = rng.uniform(0.15, 0.35, n_vessels)
    shadow = 1 - (strength[:, None] * np.exp(-0.5 * ((cols - centres[:, None]) / sigma_px[:, None]) ** 2)).sum(0)
    level = np.where(rows >= boundaries[1], level * np.clip(shadow, 0.3, 1).astype(np.float32), level)

    psf = (_PSF_SIGMA_UM[0] / axial_um, _PSF_SIGMA_UM[1] / lateral_um)
    level = cv2.GaussianBlur(level.astype(np.float32), (0, 0), sigmaX=psf[1], sigmaY=psf[0])

    # Fully developed speckle: exponential intensity, Rayleigh amplitude,
    # correlated over the resolution cell; the display compression makes its
    # spread about the same in dark and bright layers, so it is added.
    speckle = np.sqrt(rng.standard_exponential((height, width), dtype=np.float32))
    grain = (_SPECKLE_SIGMA_UM[0] / axial_um, _SPECKLE_SIGMA_UM[1] / lateral_um)
    speckle = cv2.GaussianBlur(speckle, (0, 0), sigmaX=grain[1], sigmaY=grain[0])
    speckle = (speckle - speckle.mean()) * (_SPECKLE_GREY / speckle.std())
    return np.clip(np.rint(level + speckle), 0, 255).astype(np.uint8)


def make_phantom_oct_volume(
    seed: int = 0,
    n_bscans: int = 25,
    height: int = 144,
    width: int = 128,
    *,
    bscan_spacing_um: float = 240.0,
    axial_um: float = 7.74,
    lateral_um: float = 46.0,
    with_fluid: bool = True,
    laterality: Laterality = "OD",
) -> tuple[OctVolume, PhantomTruth]:
    """A phantom raster volume with its scan geometry, as a device would store it.

    The B-scans of :func:`make_phantom_volume` become an :class:`OctVolume`:
    linear reflectance ``(u / 255) ** (1 / gamma)`` with the Spectralis display
    exponent :data:`~retinaseg.conventions.SPECTRALIS_DISPLAY_GAMMA` (so the
    display gives the 8-bit images back), horizontal B-scans ``bscan_spacing_um``
    apart on a fundus frame with its origin 1 mm above and left of the scan,
    the first B-scan the inferior-most, as in Spectralis rasters. The
    defaults make a 2x2-binned 25-B-scan macular cube (5.9 x 5.8 mm).

    Returns
    -------
    tuple of OctVolume and PhantomTruth
        The volume and its ground truth: boundary rows, label maps and the
        foveal centre in the fundus frame.
    """
    rng = np.random.default_rng(seed)
    phantom = make_phantom_volume(
        rng,
        n_bscans,
        height,
        width,
        bscan_spacing_um=bscan_spacing_um,
        with_fluid=with_fluid,
        axial_um=axial_um,
        lateral_um=lateral_um,
    )
    origin_mm, lateral_mm, spacing_mm = 1.0, lateral_um / 1000, bscan_spacing_um / 1000
    y_mm = origin_mm + (n_bscans - 1 - np.arange(n_bscans)) * spacing_mm
    geometry = [
        BScanGeometry(start_xy_mm=(origin_mm, float(y)), end_xy_mm=(origin_mm + width * lateral_mm, float(y)), quality=np.nan)
        for y in y_mm
    ]
    volume = OctVolume(
        reflectance=reflectance_from_display(phantom.images),
        scale_x_mm=lateral_mm,
        scale_z_mm=axial_um / 1000,
        bscan_geometry=geometry,
        scan_pattern=3,
        laterality=laterality,
        metadata={"phantom_seed": seed},
        source=f"phantom_volume_seed{seed}",
    )
    fovea_xy_mm = (
        origin_mm + phantom.fovea_col * lateral_mm,
        origin_mm + (n_bscans - 1 - phantom.fovea_bscan) * spacing_mm,
    )
    return volume, PhantomTruth(boundary_rows=phantom.boundary_rows, labels=phantom.labels, fovea_xy_mm=fovea_xy_mm)

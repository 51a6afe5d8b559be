"""OCT volumes with their physical geometry.

:class:`OctVolume` holds the B-scans of one OCT acquisition together with
everything needed to measure on them in physical units: axial and lateral
pixel sizes, where every A-scan lies on the fundus (SLO) image, the laterality
and the device's own layer segmentation. Readers (e.g.
:func:`retinaseg.io.heidelberg.read_vol`) build it; analysis code only uses it.

Coordinate conventions
----------------------
- B-scan arrays are ``(N, H, W)``: ``N`` B-scans in file order, ``H`` rows
  along depth (row 0 at the top, the vitreous side), ``W`` A-scans.
- Fundus positions are ``(x, y)`` in millimetres in the SLO image frame, as
  the device stores them: origin at the top-left corner of the SLO image,
  ``x`` to the right, ``y`` downwards. SLO pixel ``(row, col)`` covers
  ``(x, y) = (col * slo_scale_xy_mm[0], row * slo_scale_xy_mm[1])``.
- A-scan ``c`` of a straight B-scan lies at fraction ``c / W`` of the way from
  its start point to its end point, so neighbouring A-scans are exactly
  ``scale_x_mm`` apart (genuine Spectralis line scans store
  ``|end - start| = W * scale_x_mm``). eyepy and RETIMAT spread the A-scans
  over ``W - 1`` steps instead; the two differ by at most one A-scan pitch at
  the end of the line.

Circle scans (scan pattern 2)
-----------------------------
For circle scans the Spectralis ``.vol`` export stores the circle, not a
line: the end point is the circle centre and the start point is the first
A-scan on the circle (eyepy's format description: "for circle scans, this is
the X-Coordinate of the circle's center point"; RETIMAT ``read_vol.m`` uses
``radius = |start - end|`` around ``end``). The genuine files confirm it:
``2 * pi * |start - end|`` equals ``W * scale_x_mm`` to 0.13 % or better.

The circle runs temporal -> superior -> nasal -> inferior (TSNIT) from the
start point, as in RETIMAT (``theta = linspace(pi, -pi)`` for OD,
``linspace(0, 2 pi)`` for OS, with y pointing up). In the y-down SLO frame
used here that is clockwise on screen for OD and counter-clockwise for OS:
A-scan ``c`` sits at angle ``phi_0 + s * 2 pi c / W`` (``s = +1`` OD,
``-1`` OS, ``phi_0`` the angle of the start point seen from the centre), so
the last A-scan is one pitch short of the first.

Device segmentation lines
-------------------------
:attr:`OctVolume.device_layers` holds the device's own lines, named by
:data:`retinaseg.conventions.DEVICE_LINE_NAMES` (table there). Each line is a
boundary, named after the layer it closes.

Plausibility
------------
:class:`OctVolume` refuses, with :class:`~retinaseg.errors.InputError`, what
no OCT scan of one eye can be: sizes above
:func:`retinaseg.io.limits.check_oct_size`, pixel sizes and B-scan spacings
outside :data:`AXIAL_PIXEL_RANGE_MM`, :data:`LATERAL_PIXEL_RANGE_MM` and
:data:`BSCAN_SPACING_RANGE_MM`, unknown scan-pattern codes, circle geometry
that is not a circle of the B-scan's A-scans, A-scan positions outside a
:data:`MAX_FUNDUS_EXTENT_MM` field. Device line values outside the B-scan
become NaN. Readers run the same checks (:func:`check_scale`,
:func:`check_scan_pattern`, :func:`check_geometry`) on header values before
they decode any pixel, and refuse B-scans without signal
(:func:`check_signal`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from retinaseg.conventions import SPECTRALIS_DISPLAY_GAMMA
from retinaseg.errors import InputError
from retinaseg.io.limits import check_oct_size

logger = logging.getLogger(__name__)

Laterality = Literal["OD", "OS"]

SCAN_PATTERN_NAMES: dict[int, str] = {
    0: "unknown",
    1: "line",
    2: "circle",
    3: "volume",
    4: "fast volume",
    5: "radial",
}
"""Spectralis ``ScanPattern`` codes, the only ones accepted.

As in the HSF-OCT-103 description and eyepy: 0 unknown pattern (B-scans
placed as straight lines), 1 single line scan, 2 circular scan, 3 volume
scan in ART mode, 4 fast volume scan, 5 radial scan (star pattern).
"""

CIRCLE_PATTERN = 2

AXIAL_PIXEL_RANGE_MM = (0.0005, 0.02)
"""Plausible axial pixel size ``scale_z_mm``: above 0.5 µm, at most 20 µm.

Devices: Cirrus and PLEX Elite 1.95-2.0 µm, Topcon Triton 2.6 µm, Optovue
3.0 µm, Topcon 3D OCT 3.5 µm, Spectralis 3.87 µm (7.7 µm binned 2x). Finer
pixels are far below the axial resolution of any ophthalmic OCT (~1 µm at
best); coarser ones leave fewer than 10 rows across a 0.2 mm retina.
"""

LATERAL_PIXEL_RANGE_MM = (0.0005, 0.25)
"""Plausible lateral pixel size (A-scan pitch ``scale_x_mm``, SLO pixel): above 0.5 µm, at most 0.25 mm.

Devices: Spectralis 5.7-11.5 µm (wide-field ~21 µm), Cirrus 11.7 µm (512 x 128
cube) to 30 µm (200 x 200 cube), OCTA cubes 6-30 µm, 23 mm wide-field lines
with 512 A-scans 45 µm. At 0.25 mm only 4 A-scans cross the 1 mm central
ETDRS subfield: no thickness measured on a coarser grid means anything.
"""

BSCAN_SPACING_RANGE_MM = (0.0005, 2.0)
"""Plausible distance between neighbouring raster B-scans: above 0.5 µm, at most 2 mm.

Devices: 5.7 µm (dense OCTA cubes) to 0.25 mm (Cirrus 5-line raster, sparse
Spectralis rasters); the Duke DME subsets here are 0.24-0.6 mm apart. Beyond
2 mm an en-face map would interpolate across twice the 1 mm central ETDRS
subfield. A header distance of 0 means "not given" (single B-scans) and is
accepted.
"""

MAX_FUNDUS_EXTENT_MM = 40.0
"""Largest span of one volume's A-scan positions along x or y, and largest
``|x|`` or ``|y|`` of any position, mm. Spectralis fields are up to 55°
(about 16 mm), the widest single OCT scans about 23 mm; 40 mm (~140°) is
more than any scan of one eye."""

CIRCLE_CIRCUMFERENCE_TOLERANCE = 0.02
"""Largest relative difference between a circle scan's stored circumference
``2 pi r`` and its length ``W * scale_x_mm``; genuine Spectralis circles
agree to 0.13 % or better."""

DEVICE_LINES_OUTSIDE_KEY = "device_line_values_outside_bscan"
"""``OctVolume.metadata`` key: ``{line name: count}`` of device segmentation
values that lay outside the B-scan (rows ``[0, H]``) and were set to NaN."""

_SCALE_KINDS: dict[str, tuple[str, tuple[float, float]]] = {
    "scale_x_mm": ("A-scan pitch", LATERAL_PIXEL_RANGE_MM),
    "scale_z_mm": ("axial pixel size", AXIAL_PIXEL_RANGE_MM),
    "slo_pixel_mm": ("SLO pixel size", LATERAL_PIXEL_RANGE_MM),
    "bscan_spacing_mm": ("B-scan spacing", BSCAN_SPACING_RANGE_MM),
}
ScaleKind = Literal["scale_x_mm", "scale_z_mm", "slo_pixel_mm", "bscan_spacing_mm"]


@dataclass(frozen=True)
class BScanGeometry:
    """Where one B-scan lies on the fundus (SLO) image.

    Attributes
    ----------
    start_xy_mm, end_xy_mm
        Start and end point ``(x, y)`` in mm in the SLO frame, as stored by
        the device. For circle scans ``end_xy_mm`` is the circle centre.
    quality
        Device image-quality value (Spectralis: dB-like score), NaN if absent.
    circle_centre_xy_mm
        Circle centre ``(x, y)`` in mm for circle scans, else ``None``.
    circle_radius_mm
        Circle radius ``|start - centre|`` in mm for circle scans, else ``None``.
    shift_ascans
        Device field ``Shift``: horizontal shift, in A-scans, of its normative
        classification band against the segmentation lines (circle scans only;
        0 otherwise). Stored as read, not applied.
    """

    start_xy_mm: tuple[float, float]
    end_xy_mm: tuple[float, float]
    quality: float
    circle_centre_xy_mm: tuple[float, float] | None = None
    circle_radius_mm: float | None = None
    shift_ascans: int = 0

    @property
    def is_circle(self) -> bool:
        return self.circle_centre_xy_mm is not None


# --- plausibility checks shared by OctVolume and the readers --------------------------------------
# Readers call them on header values before decoding pixels; OctVolume calls them again, so a
# volume from any source (and one built by hand) holds to the same rules.


def check_scale(value: float, kind: ScaleKind, where: str | os.PathLike[str], name: str | None = None) -> float:
    """Return a pixel size or spacing in mm as ``float`` if physically plausible, else raise.

    Parameters
    ----------
    value
        The size in mm.
    kind
        Which size: ``"scale_x_mm"`` (A-scan pitch) and ``"slo_pixel_mm"``
        within :data:`LATERAL_PIXEL_RANGE_MM`, ``"scale_z_mm"`` within
        :data:`AXIAL_PIXEL_RANGE_MM`, ``"bscan_spacing_mm"`` within
        :data:`BSCAN_SPACING_RANGE_MM`.
    where
        File or key named in the message.
    name
        The value's name in the message (e.g. the header field); default ``kind``.

    Raises
    ------
    InputError
        ``value`` is not a number in ``(low, high]`` of its range (NaN, 0,
        denormals, 1e300 and micrometres given as millimetres included).
    """
    what, (low, high) = _SCALE_KINDS[kind]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InputError(where, f"{name or kind} = {value!r} is not a number of millimetres") from None
    if not low < value <= high:  # False for NaN
        # a pixel size of 1 mm or more read as micrometres would be plausible: say so
        hint = " (micrometres given as millimetres?)" if value >= 1.0 and low < value / 1000.0 <= high else ""
        raise InputError(where, f"{name or kind} = {value:g} mm is not in ({low:g}, {high:g}] mm, the plausible {what}{hint}")
    return value


def check_scan_pattern(code: object, where: str | os.PathLike[str]) -> int:
    """Return a scan-pattern code as ``int`` if it is one of :data:`SCAN_PATTERN_NAMES`.

    Raises
    ------
    InputError
        Any other code, or a value that is not an integer (``"2"``, 2.0, ``True``).
    """
    if isinstance(code, (int, np.integer)) and not isinstance(code, bool) and int(code) in SCAN_PATTERN_NAMES:
        return int(code)
    known = ", ".join(f"{k} {name}" for k, name in SCAN_PATTERN_NAMES.items())
    raise InputError(where, f"unknown scan pattern {code!r}; known codes: {known}")


def check_geometry(
    geometry: Sequence[BScanGeometry],
    width: int,
    scale_x_mm: float,
    scan_pattern: int,
    where: str | os.PathLike[str],
) -> None:
    """Refuse B-scan geometry that no scan of one eye can have.

    Parameters
    ----------
    geometry
        One :class:`BScanGeometry` per B-scan.
    width
        A-scans per B-scan, ``W``.
    scale_x_mm
        A-scan pitch in mm (already checked with :func:`check_scale`).
    scan_pattern
        Scan-pattern code (already checked with :func:`check_scan_pattern`).
    where
        File named in the message.

    Raises
    ------
    InputError
        Non-finite points; circle geometry on a scan that is not a circle
        (pattern 2), or a circle scan without it; a circle whose radius is
        not positive or not ``|start - centre|``, or whose circumference
        differs from ``W * scale_x_mm`` by more than
        :data:`CIRCLE_CIRCUMFERENCE_TOLERANCE`; A-scan positions spanning
        more than :data:`MAX_FUNDUS_EXTENT_MM` or farther than that from the
        SLO origin.
    """
    start = np.array([g.start_xy_mm for g in geometry], dtype=np.float64).reshape(-1, 2)
    end = np.array([g.end_xy_mm for g in geometry], dtype=np.float64).reshape(-1, 2)
    if not (np.isfinite(start).all() and np.isfinite(end).all()):
        raise InputError(where, "B-scan start/end positions are not finite")
    circle = np.array([g.is_circle for g in geometry], dtype=bool)
    if scan_pattern == CIRCLE_PATTERN and not circle.all():
        raise InputError(where, f"circle scan (pattern 2) but B-scan {int(np.argmin(circle))} has no circle geometry")
    if scan_pattern != CIRCLE_PATTERN and circle.any():
        raise InputError(
            where,
            f"B-scan {int(np.argmax(circle))} has circle geometry but the scan pattern is "
            f"{scan_pattern} ({SCAN_PATTERN_NAMES[scan_pattern]}), not a circle",
        )
    # A straight B-scan's A-scans lie between its start and end point.
    low = np.minimum(start, end).min(axis=0)
    high = np.maximum(start, end).max(axis=0)
    if circle.any():
        index = np.flatnonzero(circle)
        centre = np.array([geometry[int(i)].circle_centre_xy_mm for i in index], dtype=np.float64)
        radius = np.array([geometry[int(i)].circle_radius_mm for i in index], dtype=np.float64)
        if not (np.isfinite(centre).all() and np.isfinite(radius).all() and (radius > 0).all()):
            raise InputError(where, "circle scan with a zero or non-finite radius (start point equals centre?)")
        stored = np.hypot(*(start[index] - centre).T)
        if (np.abs(stored - radius) > 1e-6 * radius).any():
            raise InputError(where, "circle radius differs from the distance of the start point to the centre")
        length = width * scale_x_mm
        off = np.abs(2.0 * np.pi * radius - length) > CIRCLE_CIRCUMFERENCE_TOLERANCE * length
        if off.any():
            k = int(np.argmax(off))
            raise InputError(
                where,
                f"circle B-scan {index[k]} has a circumference of {2.0 * np.pi * radius[k]:.4g} mm (radius "
                f"{radius[k]:.4g} mm) but its {width} A-scans x {scale_x_mm:.4g} mm span {length:.4g} mm: "
                "not a circle scan, or a wrong A-scan pitch",
            )
        low = np.minimum(low, (centre - radius[:, None]).min(axis=0))
        high = np.maximum(high, (centre + radius[:, None]).max(axis=0))
    if (high - low).max() > MAX_FUNDUS_EXTENT_MM or max(np.abs(low).max(), np.abs(high).max()) > MAX_FUNDUS_EXTENT_MM:
        raise InputError(
            where,
            f"A-scan positions span x {low[0]:.4g}..{high[0]:.4g} mm, y {low[1]:.4g}..{high[1]:.4g} mm; a scan of "
            f"one eye spans at most {MAX_FUNDUS_EXTENT_MM:g} mm, within {MAX_FUNDUS_EXTENT_MM:g} mm of the SLO origin",
        )


def check_reflectance_range(reflectance: np.ndarray, where: str | os.PathLike[str], context: str = "") -> None:
    """Refuse linear reflectance outside ``[0, 1]`` (NaN, the invalid marker, is allowed).

    Parameters
    ----------
    reflectance
        Reflectance of any shape.
    where
        File named in the message; ``context`` (e.g. ``"B-scan 3: "``) is put before the problem.
    """
    outside = (reflectance < 0) | (reflectance > 1)  # NaN compares False
    if outside.any():
        raise InputError(
            where,
            f"{context}{int(outside.sum())} pixel values outside [0, 1] (min {np.nanmin(reflectance):.4g}, "
            f"max {np.nanmax(reflectance):.4g}); not raw reflectance",
        )


def check_signal(reflectance: np.ndarray, where: str | os.PathLike[str]) -> None:
    """Refuse B-scans with nothing to segment: no valid pixel, or every valid pixel 0 or every one 1.

    Parameters
    ----------
    reflectance
        ``(N, H, W)`` reflectance in ``[0, 1]``, NaN invalid.
    where
        File or folder named in the message.
    """
    # fmin/fmax skip NaN without copying the volume; NaN only when every pixel is NaN.
    high = float(np.fmax.reduce(reflectance, axis=None))
    if math.isnan(high):
        raise InputError(where, "holds no valid pixel (every value is marked invalid): no signal to segment")
    if high <= 0.0:
        raise InputError(where, "every valid pixel is 0 (black): no signal to segment")
    if float(np.fmin.reduce(reflectance, axis=None)) >= 1.0:
        raise InputError(where, "every valid pixel is 1 (saturated): no signal to segment")


@dataclass
class OctVolume:
    """B-scans of one OCT acquisition with their physical geometry.

    Attributes
    ----------
    reflectance
        ``(N, H, W)`` float32 linear reflectance in ``[0, 1]``; NaN where the
        device marked the pixel invalid (outside the imaged area).
    scale_x_mm
        Lateral distance between neighbouring A-scans, mm (for circle scans
        along the circle).
    scale_z_mm
        Axial pixel size, mm (optical depth in tissue).
    bscan_geometry
        ``N`` :class:`BScanGeometry`, one per B-scan, in file order.
    scan_pattern
        Device scan-pattern code, see :data:`SCAN_PATTERN_NAMES`.
    laterality
        ``"OD"`` (right eye) or ``"OS"`` (left eye).
    slo
        ``(Hs, Ws)`` uint8 fundus (SLO / infrared) image, or ``None``.
    slo_scale_xy_mm
        SLO pixel size ``(x, y)`` in mm, or ``None`` without an SLO.
    device_layers
        Device segmentation lines, ``{name: (N, W) float32}`` row positions in
        pixels (sub-pixel, row 0 = top of the B-scan), NaN where not
        segmented. Names from :data:`~retinaseg.conventions.DEVICE_LINE_NAMES`.
    metadata
        Non-patient acquisition details (format version, dates, scan ids,
        SLO field size, header ``Distance`` as ``header_distance_mm``);
        contents depend on the reader. :data:`DEVICE_LINES_OUTSIDE_KEY`
        counts device line values that were dropped (see Raises).
    source
        File the volume was read from, for messages.

    Raises
    ------
    InputError
        On construction, unless the volume is physically plausible: size
        within :func:`retinaseg.io.limits.check_oct_size`, scales by
        :func:`check_scale` (header distance only when non-zero), a known
        scan pattern, OD/OS, geometry by :func:`check_geometry`. Device line
        values outside ``[0, H]`` are not refused but set to NaN and counted
        in ``metadata``. Readers also call :func:`check_signal`; it is not
        applied here, so blank volumes can be built for tests and demos.
    ValueError
        Parts that do not fit together (shapes, number of geometries).
    """

    reflectance: np.ndarray
    scale_x_mm: float
    scale_z_mm: float
    bscan_geometry: list[BScanGeometry]
    scan_pattern: int
    laterality: Laterality
    slo: np.ndarray | None = None
    slo_scale_xy_mm: tuple[float, float] | None = None
    device_layers: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if self.reflectance.ndim != 3:
            raise ValueError(f"reflectance must be (N, H, W), got shape {self.reflectance.shape}")
        n, height, width = self.reflectance.shape
        if len(self.bscan_geometry) != n:
            raise ValueError(f"{len(self.bscan_geometry)} B-scan geometries for {n} B-scans")
        for name, rows in self.device_layers.items():
            if rows.shape != (n, width):
                raise ValueError(f"device layer {name!r} has shape {rows.shape}, expected {(n, width)}")
        where = self.source or "OCT volume"
        check_oct_size(n, height, width, where)
        self.scale_x_mm = check_scale(self.scale_x_mm, "scale_x_mm", where)
        self.scale_z_mm = check_scale(self.scale_z_mm, "scale_z_mm", where)
        if self.slo_scale_xy_mm is not None:
            for axis, value in zip("xy", self.slo_scale_xy_mm):
                check_scale(value, "slo_pixel_mm", where, f"SLO pixel size {axis}")
        distance = self.metadata.get("header_distance_mm")
        if distance:  # 0 or None: not given
            check_scale(distance, "bscan_spacing_mm", where, "header B-scan distance")
        self.scan_pattern = check_scan_pattern(self.scan_pattern, where)
        if self.laterality not in ("OD", "OS"):
            raise InputError(where, f"laterality {self.laterality!r} is neither 'OD' nor 'OS'")
        check_geometry(self.bscan_geometry, width, self.scale_x_mm, self.scan_pattern, where)
        self._drop_device_values_outside(height)

    def _drop_device_values_outside(self, height: int) -> None:
        """Set device line values outside the B-scan (rows ``[0, H]``) to NaN, counting them in the metadata.

        The format's invalid marker is NaN already (readers convert it);
        anything else outside the image is a corrupt value that would
        otherwise be plotted and measured as a boundary.
        """
        counts = {}
        for name, rows in self.device_layers.items():
            outside = np.isinf(rows) | (rows < 0) | (rows > height)  # NaN compares False
            if outside.any():
                counts[name] = int(outside.sum())
                self.device_layers[name] = np.where(outside, np.float32(np.nan), rows).astype(np.float32)
        if counts:
            logger.warning(
                "%s: %d device segmentation values outside the %d-row B-scans set to NaN (%s)",
                self.source or "OCT volume",
                sum(counts.values()),
                height,
                ", ".join(f"{name} {count}" for name, count in counts.items()),
            )
            previous = self.metadata.get(DEVICE_LINES_OUTSIDE_KEY, {})
            self.metadata = {**self.metadata, DEVICE_LINES_OUTSIDE_KEY: {**previous, **counts}}

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(N, H, W)``: B-scans, rows, A-scans."""
        n, height, width = self.reflectance.shape
        return n, height, width

    @property
    def axial_um(self) -> float:
        """Axial pixel size in micrometres."""
        return self.scale_z_mm * 1000.0

    @property
    def scan_pattern_name(self) -> str:
        """Readable scan pattern (``"line"``, ``"circle"``, ``"volume"`` ...)."""
        return SCAN_PATTERN_NAMES.get(self.scan_pattern, "unknown")

    def display_bscans(self, gamma: float = SPECTRALIS_DISPLAY_GAMMA, bscans: slice = slice(None)) -> np.ndarray:
        """8-bit display images ``round(255 * r ** gamma)``.

        Parameters
        ----------
        gamma
            Display exponent, > 0. The default,
            :data:`~retinaseg.conventions.SPECTRALIS_DISPLAY_GAMMA` (fourth
            root), matches the usual Spectralis display (and gives back the
            8-bit Duke DME B-scans exactly from their ``.vol`` files).
        bscans
            The B-scans to convert (default: all).

        Returns
        -------
        numpy.ndarray
            ``(n, H, W)`` uint8; invalid (NaN) pixels are 0. Reflectance is
            clipped to ``[0, 1]`` first.
        """
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        r = np.clip(np.nan_to_num(self.reflectance[bscans], nan=0.0), 0.0, 1.0)
        return np.round(255.0 * r ** np.float32(gamma)).astype(np.uint8)

    def ascan_positions_mm(self) -> np.ndarray:
        """Fundus position of every A-scan.

        Returns
        -------
        numpy.ndarray
            ``(N, W, 2)`` float64 ``(x, y)`` in mm in the SLO frame. Straight
            B-scans: A-scan ``c`` at ``start + (end - start) * c / W``. Circle
            B-scans: on the circle, starting at the start point, clockwise on
            screen for OD and counter-clockwise for OS (module docstring).
        """
        width = self.shape[2]
        fraction = np.arange(width) / width
        start = np.array([g.start_xy_mm for g in self.bscan_geometry], dtype=np.float64)
        end = np.array([g.end_xy_mm for g in self.bscan_geometry], dtype=np.float64)
        positions = start[:, None, :] + (end - start)[:, None, :] * fraction[None, :, None]

        circle = np.array([g.is_circle for g in self.bscan_geometry], dtype=bool)
        if circle.any():
            centre = np.array([g.circle_centre_xy_mm for g in self.bscan_geometry if g.is_circle])
            radius = np.array([g.circle_radius_mm for g in self.bscan_geometry if g.is_circle])
            offset = start[circle] - centre
            phi0 = np.arctan2(offset[:, 1], offset[:, 0])
            turn = 1.0 if self.laterality == "OD" else -1.0
            phi = phi0[:, None] + turn * 2.0 * np.pi * fraction[None, :]
            positions[circle] = centre[:, None, :] + radius[:, None, None] * np.stack([np.cos(phi), np.sin(phi)], axis=-1)
        return positions

    def bscan_spacing_mm(self) -> np.ndarray:
        """Distance between consecutive B-scans, from their fundus positions.

        Returns
        -------
        numpy.ndarray
            ``(N - 1,)`` float64 distances in mm between the centres (mean
            A-scan positions) of B-scans ``i`` and ``i + 1``; empty for one
            B-scan. For rasters this is the true, possibly non-uniform pitch,
            unlike a header's nominal B-scan distance.
        """
        centres = self.ascan_positions_mm().mean(axis=1)
        return np.linalg.norm(np.diff(centres, axis=0), axis=1)

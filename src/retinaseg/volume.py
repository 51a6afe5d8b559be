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
:data:`DEVICE_LINE_NAMES` names the lines by their index in the file, as the
HSF-OCT-103 description and eyepy (``SEG_MAPPING``) do. Each line is a
boundary, named after the layer it closes:

=====  ======  ===========================================
index  name    boundary
=====  ======  ===========================================
0      ILM     inner limiting membrane (vitreous / RNFL)
1      BM      Bruch's membrane (RPE / choroid)
2      RNFL    outer RNFL boundary (RNFL / GCL)
3      GCL     GCL / IPL
4      IPL     IPL / INL
5      INL     INL / OPL
6      OPL     OPL / ONL
7      ONL     ONL / ELM
8      ELM     external limiting membrane
14     PR1     myoid / ellipsoid zone (EZ)
15     PR2     outer segments / interdigitation zone (IZ)
16     RPE     IZ / RPE
17-18  IPL+/-  OCTA slab boundaries
=====  ======  ===========================================

Lines 9-13 (``IOS``, ``OPT``, ``CHO``, ``VIT``, ``ANT``) are rarely filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Laterality = Literal["OD", "OS"]

SCAN_PATTERN_NAMES: dict[int, str] = {
    0: "unknown",
    1: "line",
    2: "circle",
    3: "volume",
    4: "fast volume",
    5: "radial",
}
"""Spectralis ``ScanPattern`` codes (3 = volume in ART mode, 5 = star pattern)."""

CIRCLE_PATTERN = 2

SPECTRALIS_DISPLAY_GAMMA = 0.25
"""Exponent of the Spectralis display ``u = 255 * r ** gamma`` of linear reflectance ``r``.

The Duke DME B-scans (and so the shipped models' training images) are
8-bit exports under this transform.
"""

DEVICE_LINE_NAMES: tuple[str, ...] = (
    "ILM", "BM", "RNFL", "GCL", "IPL", "INL", "OPL", "ONL", "ELM", "IOS",
    "OPT", "CHO", "VIT", "ANT", "PR1", "PR2", "RPE", "IPL+", "IPL-",
)
"""Name of segmentation line ``i`` of a Spectralis export (see module table)."""


def device_line_name(index: int) -> str:
    """Name of device segmentation line ``index``; ``"LINE<i>"`` past the known ones."""
    return DEVICE_LINE_NAMES[index] if index < len(DEVICE_LINE_NAMES) else f"LINE{index}"


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
        segmented. Names from :data:`DEVICE_LINE_NAMES`.
    metadata
        Non-patient acquisition details (format version, dates, scan ids,
        SLO field size, header ``Distance``); contents depend on the reader.
    source
        File the volume was read from, for messages.
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
        n, _, width = self.reflectance.shape
        if len(self.bscan_geometry) != n:
            raise ValueError(f"{len(self.bscan_geometry)} B-scan geometries for {n} B-scans")
        for name, rows in self.device_layers.items():
            if rows.shape != (n, width):
                raise ValueError(f"device layer {name!r} has shape {rows.shape}, expected {(n, width)}")

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

    def display_bscans(self, gamma: float = SPECTRALIS_DISPLAY_GAMMA) -> np.ndarray:
        """8-bit display images ``round(255 * r ** gamma)``.

        Parameters
        ----------
        gamma
            Display exponent, > 0. The default fourth root matches the usual
            Spectralis display (and gives back the 8-bit Duke DME B-scans
            exactly from their ``.vol`` files).

        Returns
        -------
        numpy.ndarray
            ``(N, H, W)`` uint8; invalid (NaN) pixels are 0. Reflectance is
            clipped to ``[0, 1]`` first.
        """
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, got {gamma}")
        r = np.clip(np.nan_to_num(self.reflectance, nan=0.0), 0.0, 1.0)
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
        n, _, width = self.shape
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
            positions[circle] = centre[:, None, :] + radius[:, None, None] * np.stack(
                [np.cos(phi), np.sin(phi)], axis=-1
            )
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

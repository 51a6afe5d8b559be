"""Peripapillary circle scans: thickness profile, sectors and clock hours.

A circle scan around the optic disc samples the RNFL on a circle (3.4-3.5 mm
diameter on Spectralis). Its thickness is reported as a TSNIT profile,
angle 0° temporal, 90° superior, 180° nasal, 270° inferior, with sector
means: the global mean, the four quadrants and the six Spectralis sectors
(the superior and inferior quadrants split in two). Positions are in the SLO
frame (``x`` right, ``y`` down): superior is towards smaller ``y``, nasal is
``+x`` for a right eye (OD) and ``-x`` for a left eye (OS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retinaseg.analysis.etdrs import nasal_sign
from retinaseg.errors import InputError
from retinaseg.numeric import finite_mean

# Largest spread (max - min) of the A-scans' distances from the centre, as a fraction of
# their mean, for a circle: float rounding is far below it, a line or an off-centre
# circle far above it.
_ROUND_TOLERANCE = 0.01

#: Sector name -> (start, end) TSNIT angle in degrees; a sector holds the
#: angles ``start <= angle < end``, wrapping through 0° when ``start > end``.
#: "T" and "N" are both quadrants and Spectralis sectors; "S" and "I" are the
#: quadrants that the Spectralis sectors TS + NS and NI + TI split.
CIRCLE_SECTORS: dict[str, tuple[float, float]] = {
    "global": (0.0, 360.0),
    "T": (315.0, 45.0),
    "TS": (45.0, 90.0),
    "NS": (90.0, 135.0),
    "N": (135.0, 225.0),
    "NI": (225.0, 270.0),
    "TI": (270.0, 315.0),
    "S": (45.0, 135.0),
    "I": (225.0, 315.0),
}


def in_sector(angle_deg: np.ndarray, start_deg: float, end_deg: float) -> np.ndarray:
    """Which angles lie in the sector ``start_deg <= angle < end_deg``.

    Parameters
    ----------
    angle_deg
        TSNIT angles in degrees in ``[0, 360)``, any shape.
    start_deg, end_deg
        Sector bounds in degrees, as in :data:`CIRCLE_SECTORS`; the sector
        wraps through 0° when ``start_deg > end_deg``.

    Returns
    -------
    numpy.ndarray
        bool, the shape of ``angle_deg``.
    """
    angle = np.asarray(angle_deg)
    if start_deg < end_deg:
        return (angle >= start_deg) & (angle < end_deg)
    return (angle >= start_deg) | (angle < end_deg)


def sector_segments(start_deg: float, end_deg: float) -> list[tuple[float, float]]:
    """``(start, end)`` pieces in degrees of a sector on the 0-360° axis; a sector wrapping through 0° gives two."""
    if start_deg < end_deg:
        return [(start_deg, end_deg)]
    return [(start_deg, 360.0), (0.0, end_deg)]


def finest_sectors(names: Sequence[str]) -> list[str]:
    """The sectors of :data:`CIRCLE_SECTORS` among ``names`` that contain no other of them.

    E.g. the six Spectralis sectors of all nine, not ``"S"`` (= TS + NS) or
    ``"global"``; names not in :data:`CIRCLE_SECTORS` are left out. Kept in
    ``names`` order.
    """
    known = [name for name in names if name in CIRCLE_SECTORS]
    # Coverage on 1° bins (centres 0.5 .. 359.5): every sector bound is a whole degree.
    bins = np.arange(360) + 0.5
    cover = {name: in_sector(bins, *CIRCLE_SECTORS[name]) for name in known}
    return [name for name in known if not any(other != name and not (cover[other] & ~cover[name]).any() for other in known)]


@dataclass(frozen=True, eq=False)
class CircleProfile:
    """Thickness around a circle scan in TSNIT order.

    Attributes
    ----------
    angle_deg
        ``(W,)`` float64 TSNIT angle of each A-scan in degrees, ascending in
        ``[0, 360)``: 0 temporal, 90 superior, 180 nasal, 270 inferior.
    thickness_um
        ``(W,)`` float64 thickness in µm at ``angle_deg``; NaN where unknown.
    sectors
        Mean thickness in µm per sector of :data:`CIRCLE_SECTORS` (same keys
        and order), over the valid A-scans in it; NaN if there are none.
    clock_hours
        ``(12,)`` float64 mean thickness in µm per clock hour, ``clock_hours[h - 1]``
        for hour ``h``, read on the fundus image as the examiner sees it:
        12 o'clock superior, 3 o'clock on the right of the image (nasal for
        OD, temporal for OS). Hour ``h`` spans ±15° around its direction.
    """

    angle_deg: np.ndarray
    thickness_um: np.ndarray
    sectors: dict[str, float]
    clock_hours: np.ndarray


def circle_profile(
    thickness_um: np.ndarray,
    positions_mm: np.ndarray,
    centre_xy_mm: tuple[float, float],
    laterality: str,
) -> CircleProfile:
    """TSNIT profile and sector means of a circle scan.

    Parameters
    ----------
    thickness_um
        ``(W,)`` thickness in µm of each A-scan (e.g. RNFL: ILM to the outer
        RNFL boundary), NaN where unknown.
    positions_mm
        ``(W, 2)`` A-scan positions ``(x, y)`` in mm in the SLO frame
        (one B-scan of :meth:`retinaseg.volume.OctVolume.ascan_positions_mm`).
    centre_xy_mm
        Circle centre ``(x, y)`` in mm (``BScanGeometry.circle_centre_xy_mm``).
    laterality
        ``"OD"`` or ``"OS"``.

    Returns
    -------
    CircleProfile
        Profile sorted by TSNIT angle, sector means and clock-hour means.

    Raises
    ------
    InputError
        Shapes that do not match; positions not finite or on the centre; A-scans
        whose distances from the centre differ by more than 1 % (not a circle
        around it); laterality other than OD/OS.

    Notes
    -----
    Means are plain means over the A-scans, which sample the circle at equal
    angular steps, so they are means over angle.
    """
    thickness = np.asarray(thickness_um, dtype=np.float64)
    positions = np.asarray(positions_mm, dtype=np.float64)
    if thickness.ndim != 1 or positions.shape != (thickness.size, 2):
        raise InputError(
            "positions_mm",
            f"need (W,) thickness and (W, 2) positions, got {thickness.shape} and {positions.shape}",
        )
    side = nasal_sign(laterality)
    cx, cy = (float(v) for v in centre_xy_mm)
    dx, dy = positions[:, 0] - cx, positions[:, 1] - cy
    radius = np.hypot(dx, dy)
    if not np.isfinite(radius).all() or (radius == 0).any():
        raise InputError("positions_mm", "A-scan positions must be finite and off the circle centre")
    if radius.max() - radius.min() > _ROUND_TOLERANCE * radius.mean():
        raise InputError(
            "positions_mm",
            f"A-scans lie {radius.min():.4g}-{radius.max():.4g} mm from the centre: not a circle scan around it",
        )
    # Temporal is -nasal; superior is -y.
    angle = _degrees_0_360(np.arctan2(-dy, -side * dx))
    # Clock angle on the image: clockwise from "up" (-y).
    clock = _degrees_0_360(np.arctan2(dx, -dy))

    order = np.argsort(angle, kind="stable")
    sectors = {name: finite_mean(thickness[in_sector(angle, *bounds)]) for name, bounds in CIRCLE_SECTORS.items()}
    # Hour h covers clock angles [30 h - 15, 30 h + 15); index h - 1, 12 o'clock last.
    hour_index = (np.floor((clock + 15.0) / 30.0).astype(np.int64) - 1) % 12
    clock_hours = np.array([finite_mean(thickness[hour_index == i]) for i in range(12)])
    return CircleProfile(
        angle_deg=angle[order],
        thickness_um=thickness[order],
        sectors=sectors,
        clock_hours=clock_hours,
    )


def _degrees_0_360(radians: np.ndarray) -> np.ndarray:
    degrees = np.mod(np.rad2deg(radians), 360.0)
    # np.mod of a tiny negative angle rounds to exactly 360.
    return np.where(degrees >= 360.0, 0.0, degrees)

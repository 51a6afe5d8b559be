"""ETDRS grid: sector map, foveal centre and sector thickness table.

The Early Treatment Diabetic Retinopathy Study grid divides the macula into a
central subfield (1 mm diameter), an inner ring (1-3 mm) and an outer ring
(3-6 mm), the rings split into superior, nasal, inferior and temporal
quadrants by the 45° diagonals. It is centred on the fovea. Maps are on an
:class:`~retinaseg.analysis.enface.EnfaceGrid` in the SLO frame (``x``
right, ``y`` down), so superior is towards smaller ``y`` and nasal is ``+x``
for a right eye (OD) and ``-x`` for a left eye (OS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from retinaseg.analysis.enface import EnfaceGrid
from retinaseg.analysis.table_rows import TableRow
from retinaseg.errors import InputError
from retinaseg.io.limits import MAX_ENFACE_CELLS
from retinaseg.volume import MAX_FUNDUS_EXTENT_MM

#: Sector names, index = value in :func:`etdrs_sector_map`.
ETDRS_SECTORS: tuple[str, ...] = ("C0", "S1", "N1", "I1", "T1", "S2", "N2", "I2", "T2")

ETDRS_SECTOR_DESCRIPTIONS: dict[str, str] = {
    "C0": "central subfield",
    "S1": "inner superior",
    "N1": "inner nasal",
    "I1": "inner inferior",
    "T1": "inner temporal",
    "S2": "outer superior",
    "N2": "outer nasal",
    "I2": "outer inferior",
    "T2": "outer temporal",
}

#: Diameters (mm) of the ETDRS grid's centre circle, inner ring and outer ring.
ETDRS_DIAMETERS_MM = (1.0, 3.0, 6.0)


@dataclass(frozen=True)
class EtdrsRow(TableRow):
    """Thickness of one layer in one ETDRS sector: a row of :func:`etdrs_table` (and ``etdrs.csv``).

    Attributes
    ----------
    layer
        Layer name (a key of the thickness maps).
    sector
        Sector name, one of :data:`ETDRS_SECTORS`.
    mean_um
        Mean thickness in µm over the valid cells of the sector; NaN if none.
    volume_mm3
        ``mean_um / 1000`` times the exact sector area, mm³.
    coverage
        Fraction (0..1) of the sector's cells that have a valid value,
        counting also the cells of the sector outside the map's grid.
    n_cells
        Number of valid cells the mean is over.
    """

    layer: str
    sector: str
    mean_um: float
    volume_mm3: float
    coverage: float
    n_cells: int


def nasal_sign(laterality: str) -> float:
    """``+1`` if nasal is ``+x`` in the SLO frame (``"OD"``), ``-1`` for ``"OS"``."""
    if laterality == "OD":
        return 1.0
    if laterality == "OS":
        return -1.0
    raise InputError("laterality", f"must be 'OD' or 'OS', got {laterality!r}")


def etdrs_sector_map(
    grid: EnfaceGrid,
    centre_xy_mm: tuple[float, float],
    laterality: str,
    diameters_mm: tuple[float, float, float] = ETDRS_DIAMETERS_MM,
) -> np.ndarray:
    """ETDRS sector of every grid cell.

    Parameters
    ----------
    grid
        En-face grid in the SLO frame.
    centre_xy_mm
        Grid centre ``(x, y)`` in mm, normally the fovea (:func:`find_fovea`).
    laterality
        ``"OD"`` or ``"OS"``; decides which side is nasal.
    diameters_mm
        Diameters of the central subfield, the inner ring and the outer ring.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` int8 index into :data:`ETDRS_SECTORS`, -1 outside the
        outer circle.

    Notes
    -----
    A cell belongs to the sector containing its centre. A centre exactly on a
    circle belongs to the inner sector. On a 45° diagonal it belongs to the
    quadrant that follows counter-clockwise in the (nasal, superior) plane:
    the half-open angle ranges are N [-45°, 45°), S [45°, 135°),
    T [135°, 225°), I [225°, 315°) measured from nasal towards superior.
    """
    side = nasal_sign(laterality)
    radii = _radii(diameters_mm)
    cx, cy = _centre(centre_xy_mm)
    x, y = grid.mesh()
    nasal = side * (x - cx)
    superior = cy - y
    r = np.hypot(nasal, superior)
    # Quadrant 0..3 = S, N, I, T (the order of ETDRS_SECTORS within a ring).
    quadrant = np.select(
        [
            (superior >= nasal) & (superior > -nasal),
            (nasal >= -superior) & (nasal > superior),
            (superior <= nasal) & (superior < -nasal),
        ],
        [0, 1, 2],
        default=3,
    )
    ring = np.searchsorted(np.asarray(radii), r, side="left")  # 0 centre, 1 inner, 2 outer, 3 outside
    sector = np.where(ring == 0, 0, 1 + 4 * (ring - 1) + quadrant)
    return np.where(ring > 2, -1, sector).astype(np.int8)


def etdrs_sector_areas_mm2(diameters_mm: tuple[float, float, float] = ETDRS_DIAMETERS_MM) -> dict[str, float]:
    """Exact area in mm² of every ETDRS sector, in :data:`ETDRS_SECTORS` order."""
    r0, r1, r2 = _radii(diameters_mm)
    inner = math.pi * (r1**2 - r0**2) / 4.0
    outer = math.pi * (r2**2 - r1**2) / 4.0
    return {name: math.pi * r0**2 if name == "C0" else inner if name[1] == "1" else outer for name in ETDRS_SECTORS}


def find_fovea(
    thickness_um: np.ndarray,
    grid: EnfaceGrid,
    search_centre_xy_mm: tuple[float, float],
    search_radius_mm: float = 1.0,
    smooth_mm: float = 0.1,
) -> tuple[float, float]:
    """Foveal centre: the thinnest point of a smoothed thickness map.

    Parameters
    ----------
    thickness_um
        ``(ny, nx)`` thickness map on ``grid``, NaN where unknown. Pass the
        inner-retina thickness (ILM to IPL/INL, i.e. RNFL + GCL + IPL) when
        it is available: the inner layers are displaced from the foveal pit
        in every eye, whereas in macular oedema the total retinal thickness
        is often not minimal at the fovea (a central cyst makes it maximal).
    grid
        Grid of the map.
    search_centre_xy_mm
        Centre ``(x, y)`` in mm of the search disc, e.g. the scan centre.
    search_radius_mm
        Radius of the search disc in mm.
    smooth_mm
        Standard deviation in mm of the Gaussian smoothing, which keeps a
        single noisy cell from being taken for the pit; 0 for none.

    Returns
    -------
    tuple of float
        ``(x, y)`` in mm of the centre of the grid cell with the smallest
        smoothed value among the cells inside the search disc that have a
        valid (non-NaN) thickness.

    Raises
    ------
    InputError
        If no cell inside the search disc has a valid thickness.

    Notes
    -----
    NaN cells are left out of the smoothing by normalised convolution: the
    map with NaN set to 0 and the validity mask are smoothed alike and
    divided, so a missing cell neither pulls the value towards 0 nor spreads
    NaN.
    """
    values = np.asarray(thickness_um, dtype=np.float64)
    if values.shape != grid.shape:
        raise InputError("thickness_um", f"map shape {values.shape} does not match the grid {grid.shape}")
    if not (np.isfinite(smooth_mm) and smooth_mm >= 0):
        raise InputError("smooth_mm", f"must be >= 0, got {smooth_mm}")
    if not (np.isfinite(search_radius_mm) and search_radius_mm > 0):
        raise InputError("search_radius_mm", f"must be a positive number of millimetres, got {search_radius_mm}")
    sx, sy = _centre(search_centre_xy_mm)
    valid = np.isfinite(values)
    sigma = smooth_mm / grid.spacing_mm
    # A kernel wider than the map adds only zeros (mode="constant") and its normalisation cancels in
    # total / weight, so it is cut at the map size: a huge sigma costs no memory.
    truncate = min(4.0, (max(values.shape) + 1) / sigma) if sigma > 0 else 4.0
    weight = gaussian_filter(valid.astype(np.float64), sigma, mode="constant", truncate=truncate)
    total = gaussian_filter(np.where(valid, values, 0.0), sigma, mode="constant", truncate=truncate)
    x, y = grid.mesh()
    candidates = valid & (np.hypot(x - sx, y - sy) <= search_radius_mm)
    if not candidates.any():
        raise InputError(
            "thickness_um",
            f"no valid thickness within {search_radius_mm} mm of ({sx:.3f}, {sy:.3f}) mm to find the fovea in",
        )
    smoothed = np.where(candidates, total / np.where(candidates, weight, 1.0), np.inf)
    row, col = np.unravel_index(np.argmin(smoothed), smoothed.shape)
    return float(grid.x_mm[col]), float(grid.y_mm[row])


def etdrs_table(
    maps_um: Mapping[str, np.ndarray],
    grid: EnfaceGrid,
    centre_xy_mm: tuple[float, float],
    laterality: str,
    *,
    diameters_mm: tuple[float, float, float] = ETDRS_DIAMETERS_MM,
) -> list[EtdrsRow]:
    """Mean thickness and volume of every layer in every ETDRS sector.

    Parameters
    ----------
    maps_um
        ``{layer name: (ny, nx) thickness map in µm}`` on ``grid``, NaN where
        unknown (e.g. from :func:`retinaseg.analysis.enface.enface_maps`).
    grid, centre_xy_mm, laterality, diameters_mm
        As for :func:`etdrs_sector_map`.

    Returns
    -------
    list of EtdrsRow
        One row per layer (in ``maps_um`` order) and sector (in
        :data:`ETDRS_SECTORS` order). The coverage counts also the cells of
        the sector that lie outside ``grid`` (on the same cell lattice), so a
        sector only partly inside the scanned area shows coverage < 1.

    Notes
    -----
    The volume is defined as on Heidelberg Spectralis thickness-map reports:
    mean sector thickness times sector area. Where coverage is below 1 it
    assumes the unscanned part of the sector has the mean thickness of the
    scanned part.
    """
    radii = _radii(diameters_mm)
    sectors = etdrs_sector_map(grid, centre_xy_mm, laterality, diameters_mm)
    n_sector = len(ETDRS_SECTORS)
    cells_per_sector = _lattice_sector_counts(grid, centre_xy_mm, laterality, diameters_mm, radii[-1])
    areas = etdrs_sector_areas_mm2(diameters_mm)
    inside = sectors >= 0
    rows = []
    for layer, thickness in maps_um.items():
        values = np.asarray(thickness, dtype=np.float64)
        if values.shape != grid.shape:
            raise InputError(f"maps_um[{layer!r}]", f"map shape {values.shape} does not match the grid {grid.shape}")
        valid = inside & np.isfinite(values)
        n_valid = np.bincount(sectors[valid], minlength=n_sector)
        total = np.bincount(sectors[valid], weights=values[valid], minlength=n_sector)
        for index, name in enumerate(ETDRS_SECTORS):
            mean_um = total[index] / n_valid[index] if n_valid[index] else math.nan
            rows.append(
                EtdrsRow(
                    layer=layer,
                    sector=name,
                    mean_um=float(mean_um),
                    volume_mm3=float(mean_um / 1000.0 * areas[name]),
                    coverage=float(n_valid[index] / cells_per_sector[index]) if cells_per_sector[index] else 0.0,
                    n_cells=int(n_valid[index]),
                )
            )
    return rows


def _lattice_sector_counts(
    grid: EnfaceGrid,
    centre_xy_mm: tuple[float, float],
    laterality: str,
    diameters_mm: tuple[float, float, float],
    radius_mm: float,
) -> np.ndarray:
    """Number of cells per sector on ``grid``'s lattice extended beyond its edges.

    The grid of a volume covers only the scanned area, so counting the
    sector's cells on it alone would call a sector that sticks out of the
    scan fully covered.
    """
    cx, cy = _centre(centre_xy_mm)
    step = grid.spacing_mm
    side = 2.0 * (radius_mm + step) / step + 1.0
    if side * side > MAX_ENFACE_CELLS:
        raise InputError(
            "grid",
            f"cells of {step:g} mm put {side:.4g} x {side:.4g} cells on the ETDRS grid; at most {MAX_ENFACE_CELLS}",
        )
    disc = EnfaceGrid(
        x_mm=_lattice_within(grid.x_mm, step, cx - radius_mm - step, cx + radius_mm + step),
        y_mm=_lattice_within(grid.y_mm, step, cy - radius_mm - step, cy + radius_mm + step),
    )
    sectors = etdrs_sector_map(disc, centre_xy_mm, laterality, diameters_mm)
    return np.bincount(sectors[sectors >= 0], minlength=len(ETDRS_SECTORS))


def _lattice_within(axis_mm: np.ndarray, step: float, low: float, high: float) -> np.ndarray:
    """Points ``axis_mm[0] + k * step`` (any integer ``k``) in ``[low, high]``.

    Where ``k`` indexes ``axis_mm`` its own value is used, so cells inside
    the grid are classified exactly as on the grid.
    """
    k = np.arange(math.ceil((low - axis_mm[0]) / step), math.floor((high - axis_mm[0]) / step) + 1)
    own = (k >= 0) & (k < axis_mm.size)
    return np.where(own, axis_mm[np.clip(k, 0, axis_mm.size - 1)], axis_mm[0] + k * step)


def _radii(diameters_mm: tuple[float, float, float]) -> tuple[float, float, float]:
    d = tuple(float(v) for v in diameters_mm)
    if len(d) != 3 or not all(math.isfinite(v) for v in d) or not 0 < d[0] < d[1] < d[2]:
        raise InputError("diameters_mm", f"need three increasing positive diameters, got {diameters_mm}")
    return d[0] / 2.0, d[1] / 2.0, d[2] / 2.0


def _centre(centre_xy_mm: tuple[float, float]) -> tuple[float, float]:
    """``(x, y)`` as floats, within the fundus field every A-scan position lies in."""
    cx, cy = (float(v) for v in centre_xy_mm)
    if not (abs(cx) <= MAX_FUNDUS_EXTENT_MM and abs(cy) <= MAX_FUNDUS_EXTENT_MM):  # False for NaN
        raise InputError(
            "centre_xy_mm",
            f"must be a finite (x, y) within {MAX_FUNDUS_EXTENT_MM:g} mm of the SLO origin, got {centre_xy_mm}",
        )
    return cx, cy

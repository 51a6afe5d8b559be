"""En-face maps on a regular millimetre grid from a raster of B-scans.

A raster volume samples the fundus along parallel straight lines (B-scans),
densely along each line and sparsely across them; Spectralis rasters may be
unevenly spaced and store the inferior-most B-scan first. To map a per-A-scan
value (e.g. a layer thickness) on the fundus, the B-scans are placed at their
true positions (:meth:`retinaseg.volume.OctVolume.ascan_positions_mm`) and
the values are interpolated onto a regular grid in the SLO frame (``x``
right, ``y`` down, mm), so maps of different volumes and the ETDRS grid
(:mod:`retinaseg.analysis.etdrs`) share one coordinate system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.limits import MAX_ENFACE_CELLS

# Largest deviation, as a fraction of the A-scan pitch, of an A-scan from its
# B-scan's line that still counts as straight and parallel: float rounding of
# the stored start/end points is orders of magnitude below it, while a circle
# scan or a tilted B-scan exceeds it by far.
_LINE_TOLERANCE = 0.01


class NotARasterError(InputError):
    """The A-scans are not a raster of two or more straight, parallel B-scans at distinct positions.

    Raised by :func:`enface_maps` (and :func:`enface_grid`) for circle,
    radial, line and single-B-scan scans, which have no en-face map;
    ``where`` is ``"positions"``.
    """


@dataclass(frozen=True, eq=False)
class EnfaceGrid:
    """Regular grid of square cells in the SLO frame.

    Attributes
    ----------
    x_mm
        ``(nx,)`` cell-centre ``x`` in mm, increasing (to the right).
    y_mm
        ``(ny,)`` cell-centre ``y`` in mm, increasing (downwards, so row 0 of
        a map is the most superior row).

    Both axes share one step; at least one axis has two or more cells. The
    arrays are stored as read-only copies. Grids compare by identity.
    """

    x_mm: np.ndarray
    y_mm: np.ndarray

    def __post_init__(self) -> None:
        x = np.asarray(self.x_mm, dtype=np.float64)
        y = np.asarray(self.y_mm, dtype=np.float64)
        if x.ndim != 1 or y.ndim != 1 or x.size == 0 or y.size == 0:
            raise InputError("grid", f"x_mm and y_mm must be non-empty 1-D arrays, got {x.shape} and {y.shape}")
        if x.size < 2 and y.size < 2:
            raise InputError("grid", "needs two or more cells along x or y to know its spacing")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise InputError("grid", "cell coordinates must be finite")
        steps = np.concatenate([np.diff(x), np.diff(y)])
        if steps.min() <= 0 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0.0):
            raise InputError("grid", "x_mm and y_mm must increase in one common step")
        # Own read-only copies: a frozen grid whose coordinates could be edited in place would not be frozen.
        for name, axis in (("x_mm", x), ("y_mm", y)):
            axis = axis.copy()
            axis.flags.writeable = False
            object.__setattr__(self, name, axis)

    @property
    def spacing_mm(self) -> float:
        """Cell size (distance between neighbouring cell centres), mm."""
        axis = self.x_mm if self.x_mm.size > 1 else self.y_mm
        return float((axis[-1] - axis[0]) / (axis.size - 1))

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``: shape of a map on this grid."""
        return self.y_mm.size, self.x_mm.size

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """``(left, right, bottom, top)`` cell edges in mm, for ``imshow(extent=...)``.

        With matplotlib's default ``origin="upper"`` row 0 is drawn at the
        top and the ``y`` axis increases downwards, as on the SLO image.
        """
        half = self.spacing_mm / 2.0
        return (
            float(self.x_mm[0] - half),
            float(self.x_mm[-1] + half),
            float(self.y_mm[-1] + half),
            float(self.y_mm[0] - half),
        )

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates ``(X, Y)``, each ``(ny, nx)`` float64 mm."""
        return np.meshgrid(self.x_mm, self.y_mm, indexing="xy")


def enface_grid(positions_mm: np.ndarray, spacing_mm: float = 0.02) -> EnfaceGrid:
    """Grid covering all A-scan positions, on multiples of the spacing.

    Parameters
    ----------
    positions_mm
        ``(N, W, 2)`` A-scan positions ``(x, y)`` in mm in the SLO frame
        (:meth:`retinaseg.volume.OctVolume.ascan_positions_mm`).
    spacing_mm
        Cell size in mm.

    Returns
    -------
    EnfaceGrid
        Cell centres at integer multiples of ``spacing_mm`` (so the grids of
        two volumes with the same spacing line up cell for cell), from the
        multiple nearest the smallest coordinate to the one nearest the
        largest: the cells cover the bounding box of the positions.

    Raises
    ------
    NotARasterError
        B-scans of one A-scan (``W < 2``).
    InputError
        Positions that are not ``(N, W, 2)`` finite values; a spacing that is
        not a positive number; a grid of more than
        :data:`~retinaseg.io.limits.MAX_ENFACE_CELLS` cells (positions spread
        too far, or cells too small), refused before it is built.
    """
    positions = _positions(positions_mm)
    if not (np.isfinite(spacing_mm) and spacing_mm > 0):
        raise InputError("spacing_mm", f"must be a positive number of millimetres, got {spacing_mm}")
    low, high = positions.reshape(-1, 2).min(axis=0), positions.reshape(-1, 2).max(axis=0)
    first, last = np.round(low / spacing_mm), np.round(high / spacing_mm)
    nx, ny = last - first + 1  # float64: no integer overflow for absurd spans
    if max(nx, ny) > MAX_ENFACE_CELLS or nx * ny > MAX_ENFACE_CELLS:
        raise InputError(
            "grid",
            f"{nx:.4g} x {ny:.4g} cells of {spacing_mm:g} mm to cover positions spanning "
            f"{high[0] - low[0]:.4g} x {high[1] - low[1]:.4g} mm; at most {MAX_ENFACE_CELLS} cells",
        )
    x_mm, y_mm = (np.arange(lo, hi + 1) * spacing_mm for lo, hi in zip(first, last))
    return EnfaceGrid(x_mm=x_mm, y_mm=y_mm)


def enface_maps(values: np.ndarray, positions_mm: np.ndarray, grid: EnfaceGrid) -> np.ndarray:
    """Interpolate per-A-scan values of a raster onto an en-face grid.

    Parameters
    ----------
    values
        ``(N, W)`` or ``(N, W, K)`` values of the ``W`` A-scans of ``N``
        B-scans (e.g. thickness in µm of ``K`` layers); NaN = invalid.
    positions_mm
        ``(N, W, 2)`` A-scan positions ``(x, y)`` in mm in the SLO frame
        (:meth:`retinaseg.volume.OctVolume.ascan_positions_mm`).
    grid
        Target grid, e.g. from :func:`enface_grid`.

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` or ``(K, ny, nx)`` float64 maps; NaN where the value is
        not known.

    Raises
    ------
    NotARasterError
        If the B-scans are not a raster of two or more straight, parallel
        B-scans of two or more A-scans at distinct positions (e.g. a circle
        scan or a single line).
    InputError
        If the shapes do not match or a position is not finite.

    Notes
    -----
    The raster's own axes are used: ``u`` along the B-scans (from the first
    to the last A-scan of the first B-scan in file order) and ``v`` across
    them. Each B-scan lies at one ``v``; the B-scans are sorted by ``v``, so
    uneven spacing and any storage order (Spectralis stores the
    inferior-most first) are handled. A grid cell centre ``(u, v)`` gets:

    1. along each of the two B-scans enclosing it in ``v``, the value
       interpolated linearly in ``u`` between its two neighbouring A-scans
       (an A-scan's own value exactly at its position; NaN outside that
       B-scan's ``u``-range or if either neighbour is NaN);
    2. the linear interpolation in ``v`` of those two values; NaN if either
       is NaN, except exactly on a B-scan, where that B-scan's value is used.

    Cells beyond the first or last B-scan are NaN: nothing is extrapolated.
    Across the raster the result is only as detailed as the B-scan spacing
    allows (0.24-0.6 mm in the Duke volumes).
    """
    positions = _positions(positions_mm)
    n, width, _ = positions.shape
    data = np.asarray(values, dtype=np.float64)
    if data.shape[:2] != (n, width) or data.ndim not in (2, 3):
        raise InputError("values", f"must be (N, W) or (N, W, K) with (N, W) = {(n, width)}, got {data.shape}")
    stacked = data.reshape(n, width, -1)
    if n < 2:
        raise NotARasterError("positions", "thickness maps need a raster of 2+ parallel B-scans; got 1 B-scan")

    u_axis, v_axis = _raster_axes(positions)
    u = positions @ u_axis  # (N, W)
    v = positions @ v_axis
    v_scan = np.median(v, axis=1)
    pitch = np.median(np.abs(np.diff(u, axis=1)))
    if not pitch > 0 or np.abs(v - v_scan[:, None]).max() > _LINE_TOLERANCE * pitch:
        raise NotARasterError(
            "positions",
            "thickness maps need a raster of 2+ parallel B-scans; these B-scans are not straight and "
            "parallel (a circle, radial or line scan?)",
        )
    step = np.diff(u, axis=1)
    if not ((step > 0).all(axis=1) | (step < 0).all(axis=1)).all():
        raise NotARasterError("positions", "the A-scans of every B-scan must be in order along it, without repeats")
    # A-scans in increasing u within each B-scan, B-scans in increasing v.
    reverse = step[:, 0] < 0
    u = np.where(reverse[:, None], u[:, ::-1], u)
    stacked = np.where(reverse[:, None, None], stacked[:, ::-1], stacked)
    order = np.argsort(v_scan, kind="stable")
    u, stacked, v_scan = u[order], stacked[order], v_scan[order]
    if (np.diff(v_scan) <= _LINE_TOLERANCE * pitch).any():
        raise NotARasterError("positions", "two B-scans lie on the same line; thickness maps need distinct B-scans")

    gx, gy = grid.mesh()
    gu = (gx * u_axis[0] + gy * u_axis[1]).ravel()
    gv = (gx * v_axis[0] + gy * v_axis[1]).ravel()
    out = np.full((gu.size, stacked.shape[2]), np.nan)
    # Interval j holds v_scan[j] <= v < v_scan[j + 1]; the last B-scan itself is interval n - 1.
    interval = np.searchsorted(v_scan, gv, side="right") - 1
    on_last = gv == v_scan[-1]
    out[on_last] = _along_scan(u[-1], stacked[-1], gu[on_last])
    # Cells grouped by interval once, so the loop over B-scans does not scan every cell each time.
    by_interval = np.argsort(interval, kind="stable")
    group_start = np.searchsorted(interval[by_interval], np.arange(n))
    for j in range(n - 1):
        cells = by_interval[group_start[j] : group_start[j + 1]]
        lower = _along_scan(u[j], stacked[j], gu[cells])
        upper = _along_scan(u[j + 1], stacked[j + 1], gu[cells])
        t = ((gv[cells] - v_scan[j]) / (v_scan[j + 1] - v_scan[j]))[:, None]
        out[cells] = np.where(t == 0.0, lower, (1.0 - t) * lower + t * upper)
    maps = np.moveaxis(out.reshape(*grid.shape, -1), -1, 0)
    return maps[0] if data.ndim == 2 else maps


def _positions(positions_mm: np.ndarray) -> np.ndarray:
    positions = np.asarray(positions_mm, dtype=np.float64)
    problem = f"must be (N, W, 2) A-scan positions with W >= 2, got shape {positions.shape}"
    if positions.ndim != 3 or positions.shape[2] != 2:
        raise InputError("positions", problem)
    if positions.shape[1] < 2:  # B-scans of one A-scan have no direction: no raster
        raise NotARasterError("positions", problem)
    if not np.isfinite(positions).all():
        raise InputError("positions", "A-scan positions must be finite")
    return positions


def _raster_axes(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along (first to last A-scan of B-scan 0) and across the B-scans."""
    along = positions[0, -1] - positions[0, 0]
    length = math.hypot(*along)
    if length == 0:
        raise NotARasterError("positions", "the first B-scan has zero length")
    u_axis = along / length
    return u_axis, np.array([-u_axis[1], u_axis[0]])


def _along_scan(u: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``(W, K)`` values at increasing ``u`` to positions ``at``.

    An A-scan's own value is returned exactly at its position even if a
    neighbour is NaN; between two A-scans the result is NaN if either is;
    outside ``[u[0], u[-1]]`` it is NaN.
    """
    k = np.clip(np.searchsorted(u, at, side="right") - 1, 0, u.size - 2)
    t = ((at - u[k]) / (u[k + 1] - u[k]))[:, None]
    left, right = values[k], values[k + 1]
    blend = np.where(t == 0.0, left, np.where(t == 1.0, right, (1.0 - t) * left + t * right))
    inside = ((at >= u[0]) & (at <= u[-1]))[:, None]
    return np.where(inside, blend, np.nan)

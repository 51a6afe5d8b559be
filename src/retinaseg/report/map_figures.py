"""Thickness-map figures: an en-face map over the SLO image with the ETDRS grid.

Positions on the fundus are in mm in the SLO frame (origin at the top-left
corner of the SLO image, x to the right, y *down*, so superior = smaller y;
nasal = +x for a right eye (OD) and -x for a left eye (OS)). PNGs are written
with the helpers of :mod:`retinaseg.report.plots`.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.patches import Circle

from retinaseg.analysis.etdrs import ETDRS_DIAMETERS_MM, nasal_sign
from retinaseg.errors import InputError
from retinaseg.report.figure_style import OUTLINE, THIN_OUTLINE
from retinaseg.report.palette import to_rgb8
from retinaseg.report.plots import new_figure, save_figure


def _etdrs_label_positions(
    centre_xy_mm: tuple[float, float], laterality: str | None, radius_mm: float
) -> dict[str, tuple[float, float]]:
    """Where to write S/N/I/T around the grid (SLO frame, y down: superior = -y)."""
    cx, cy = centre_xy_mm
    positions = {"S": (cx, cy - radius_mm), "I": (cx, cy + radius_mm)}
    if laterality is not None:
        nasal = nasal_sign(laterality)
        positions["N"] = (cx + nasal * radius_mm, cy)
        positions["T"] = (cx - nasal * radius_mm, cy)
    return positions


def plot_thickness_map(
    map_um: np.ndarray,
    extent_mm: tuple[float, float, float, float],
    path: str | os.PathLike[str],
    *,
    slo: np.ndarray | None = None,
    slo_scale_xy_mm: tuple[float, float] | None = None,
    etdrs_centre_xy_mm: tuple[float, float] | None = None,
    laterality: str | None = None,
    title: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    colorbar_label: str = "Thickness (µm)",
    map_alpha: float = 0.85,
) -> Path:
    """Thickness map over the SLO image, with the ETDRS grid.

    Parameters
    ----------
    map_um
        ``(ny, nx)`` thickness in µm; NaN (not scanned / unknown) is
        transparent.
    extent_mm
        ``(left, right, bottom, top)`` in mm in the SLO frame, as for
        :meth:`matplotlib.axes.Axes.imshow`: ``map_um[0, 0]`` is drawn at
        the corner ``(left, top)`` and ``map_um[-1, -1]`` at
        ``(right, bottom)``. The y axis points down, so when row 0 is the
        most superior row, ``top < bottom``.
    path
        Output PNG file.
    slo
        ``(H, W)`` grey or ``(H, W, 3)`` RGB fundus (SLO) image drawn below
        the map; pixel ``(row, col)`` covers ``x = col * sx .. (col + 1) * sx``,
        ``y = row * sy .. (row + 1) * sy``. The view then shows the whole SLO.
    slo_scale_xy_mm
        ``(sx, sy)`` mm per SLO pixel; required with ``slo``.
    etdrs_centre_xy_mm
        Centre ``(x, y)`` in mm of the ETDRS grid (fovea): circles of 1, 3
        and 6 mm diameter and the diagonals between the 1 and 6 mm circles.
        ``None`` draws no grid.
    laterality
        ``"OD"`` or ``"OS"``: places N (nasal) and T (temporal) around the
        grid; otherwise only S and I are written.
    title
        Figure title.
    vmin, vmax
        Colour range in µm; default the map's finite minimum and maximum.
    cmap
        Matplotlib colour map of the thickness (e.g. ``"RdBu_r"`` with
        symmetric ``vmin``/``vmax`` for a difference map).
    colorbar_label
        Label of the colour bar.
    map_alpha
        Opacity of the thickness colours over the SLO.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    values = np.asarray(map_um, dtype=np.float64)
    if values.ndim != 2:
        raise InputError("map_um", f"must be a (ny, nx) map, got shape {values.shape}")
    if len(extent_mm) != 4:
        raise InputError("extent_mm", f"must be (left, right, bottom, top), got {extent_mm!r}")
    if slo is not None and slo_scale_xy_mm is None:
        raise InputError("slo_scale_xy_mm", "is required to place the SLO image")
    if laterality not in (None, "OD", "OS"):
        raise InputError("laterality", f"must be 'OD', 'OS' or None, got {laterality!r}")
    left, right, bottom, top = map(float, extent_mm)
    finite = values[np.isfinite(values)]
    if vmin is None:
        vmin = float(finite.min()) if finite.size else 0.0
    if vmax is None:
        vmax = float(finite.max()) if finite.size else 1.0
    if vmax <= vmin:
        vmax = vmin + 1.0  # a flat map still gets a usable colour bar

    fig = new_figure(6.8, 5.8)
    ax = fig.add_subplot()
    if slo is not None:
        assert slo_scale_xy_mm is not None  # refused above
        sx, sy = slo_scale_xy_mm
        slo_rgb = to_rgb8(slo)
        slo_extent = (0.0, slo_rgb.shape[1] * sx, slo_rgb.shape[0] * sy, 0.0)
        ax.imshow(slo_rgb, extent=slo_extent, interpolation="bilinear")
        view = slo_extent
    else:
        xs, ys = [left, right], [bottom, top]
        if etdrs_centre_xy_mm is not None:
            half = ETDRS_DIAMETERS_MM[-1] / 2 + 0.6  # room for the sector letters
            xs += [etdrs_centre_xy_mm[0] - half, etdrs_centre_xy_mm[0] + half]
            ys += [etdrs_centre_xy_mm[1] - half, etdrs_centre_xy_mm[1] + half]
        view = (min(xs), max(xs), max(ys), min(ys))
    colour_map = matplotlib.colormaps[cmap].with_extremes(bad=(0, 0, 0, 0))
    image = ax.imshow(
        np.ma.masked_invalid(values),
        extent=(left, right, bottom, top),
        origin="upper",
        cmap=colour_map,
        vmin=vmin,
        vmax=vmax,
        alpha=map_alpha,
        interpolation="nearest",
        aspect="equal",
    )
    fig.colorbar(image, ax=ax, label=colorbar_label, shrink=0.85)
    if not finite.size:
        ax.text(0.5, 0.5, "no thickness values", transform=ax.transAxes, ha="center", color="0.3")

    if etdrs_centre_xy_mm is not None:
        cx, cy = map(float, etdrs_centre_xy_mm)
        radii = [d / 2 for d in ETDRS_DIAMETERS_MM]
        for radius in radii:
            ax.add_patch(Circle((cx, cy), radius, fill=False, edgecolor="white", linewidth=1.1, path_effects=THIN_OUTLINE))
        angles = np.deg2rad([45.0, 135.0, 225.0, 315.0])
        for a in angles:
            ax.plot(
                [cx + radii[0] * np.cos(a), cx + radii[-1] * np.cos(a)],
                [cy + radii[0] * np.sin(a), cy + radii[-1] * np.sin(a)],
                color="white",
                linewidth=1.1,
                path_effects=THIN_OUTLINE,
            )
        for letter, (x, y) in _etdrs_label_positions((cx, cy), laterality, radii[-1] + 0.35).items():
            ax.text(
                x,
                y,
                letter,
                ha="center",
                va="center",
                fontsize=10,
                fontweight="bold",
                color="white",
                path_effects=OUTLINE,
                clip_on=True,
            )

    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[2], view[3])  # y grows downwards, as in the SLO image
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm, down = inferior)")
    eye = {"OD": "right eye (OD)", "OS": "left eye (OS)"}.get(laterality or "", "laterality unknown")
    ax.set_title(f"{title}\n{eye}" if title else eye, fontsize=10)
    return save_figure(fig, path)

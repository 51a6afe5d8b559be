"""Thickness-map figures: an en-face map over the SLO image with the ETDRS grid.

Positions on the fundus are in mm in the SLO frame (origin at the top-left
corner of the SLO image, x to the right, y *down*, so superior = smaller y;
nasal = +x for a right eye (OD) and -x for a left eye (OS)).

A report draws several maps over the same fundus (one per layer, a
difference map): :class:`ThicknessMapFigure` builds the figure once, with
fixed margins instead of a layout engine, and redraws only what changes, at
:data:`~retinaseg.report.plots.REPORT_DPI`. :func:`plot_thickness_map` is
the one-map shortcut.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.patches import Circle

from retinaseg.analysis.etdrs import ETDRS_DIAMETERS_MM, nasal_sign
from retinaseg.errors import InputError
from retinaseg.report.encoding import png_bytes, write_bytes_atomic
from retinaseg.report.figure_style import OUTLINE, THIN_OUTLINE
from retinaseg.report.palette import to_rgb8
from retinaseg.report.plots import REPORT_DPI, figure_rgb, new_figure

# Fixed layout in inches: margins around the map axes and the colour bar right of it.
_AXES_WIDTH_IN = 4.6
_LEFT_IN, _BOTTOM_IN, _TOP_IN = 0.75, 0.55, 0.62  # y label + ticks; x label + ticks; two-line title
_GAP_IN, _COLORBAR_IN, _RIGHT_IN = 0.15, 0.18, 0.95  # colour bar, then its ticks and label
# the axes box follows the view's height / width within these bounds (beyond them the map shrinks inside the box)
_MIN_ASPECT, _MAX_ASPECT = 0.25, 2.0


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


class ThicknessMapFigure:
    """A figure of en-face maps over one fundus, redrawn for each map.

    Parameters
    ----------
    extent_mm
        ``(left, right, bottom, top)`` in mm in the SLO frame of every map,
        as for :meth:`matplotlib.axes.Axes.imshow`: ``map[0, 0]`` is drawn
        at the corner ``(left, top)`` and ``map[-1, -1]`` at
        ``(right, bottom)``. The y axis points down, so when row 0 is the
        most superior row, ``top < bottom``.
    slo
        ``(H, W)`` grey or ``(H, W, 3)`` RGB fundus (SLO) image drawn below
        the maps; pixel ``(row, col)`` covers ``x = col * sx .. (col + 1) * sx``,
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
    map_alpha
        Opacity of the map colours over the SLO.
    dpi
        Pixels per inch of the rendered figure.
    """

    def __init__(
        self,
        extent_mm: tuple[float, float, float, float],
        *,
        slo: np.ndarray | None = None,
        slo_scale_xy_mm: tuple[float, float] | None = None,
        etdrs_centre_xy_mm: tuple[float, float] | None = None,
        laterality: str | None = None,
        map_alpha: float = 0.85,
        dpi: float = REPORT_DPI,
    ) -> None:
        if len(extent_mm) != 4:
            raise InputError("extent_mm", f"must be (left, right, bottom, top), got {extent_mm!r}")
        if slo is not None and slo_scale_xy_mm is None:
            raise InputError("slo_scale_xy_mm", "is required to place the SLO image")
        if laterality not in (None, "OD", "OS"):
            raise InputError("laterality", f"must be 'OD', 'OS' or None, got {laterality!r}")
        left, right, bottom, top = map(float, extent_mm)
        slo_rgb = None
        if slo is not None:
            assert slo_scale_xy_mm is not None  # refused above
            sx, sy = slo_scale_xy_mm
            slo_rgb = to_rgb8(slo)
            view = (0.0, slo_rgb.shape[1] * sx, slo_rgb.shape[0] * sy, 0.0)
        else:
            xs, ys = [left, right], [bottom, top]
            if etdrs_centre_xy_mm is not None:
                half = ETDRS_DIAMETERS_MM[-1] / 2 + 0.6  # room for the sector letters
                xs += [etdrs_centre_xy_mm[0] - half, etdrs_centre_xy_mm[0] + half]
                ys += [etdrs_centre_xy_mm[1] - half, etdrs_centre_xy_mm[1] + half]
            view = (min(xs), max(xs), max(ys), min(ys))

        view_w, view_h = abs(view[1] - view[0]), abs(view[2] - view[3])
        aspect = min(max(view_h / view_w if view_w > 0 else 1.0, _MIN_ASPECT), _MAX_ASPECT)
        axes_h = _AXES_WIDTH_IN * aspect
        fig_w = _LEFT_IN + _AXES_WIDTH_IN + _GAP_IN + _COLORBAR_IN + _RIGHT_IN
        fig_h = _BOTTOM_IN + axes_h + _TOP_IN
        fig = new_figure(fig_w, fig_h, dpi=dpi, layout=None)
        ax = fig.add_axes((_LEFT_IN / fig_w, _BOTTOM_IN / fig_h, _AXES_WIDTH_IN / fig_w, axes_h / fig_h))
        cax = fig.add_axes(
            (
                (_LEFT_IN + _AXES_WIDTH_IN + _GAP_IN) / fig_w,
                (_BOTTOM_IN + 0.075 * axes_h) / fig_h,
                _COLORBAR_IN / fig_w,
                0.85 * axes_h / fig_h,
            )
        )
        if slo_rgb is not None:
            ax.imshow(slo_rgb, extent=view, interpolation="bilinear")
        self._image = ax.imshow(
            np.full((1, 1), np.nan),
            extent=(left, right, bottom, top),
            origin="upper",
            alpha=map_alpha,
            interpolation="nearest",
            aspect="equal",
        )
        self._colorbar = fig.colorbar(self._image, cax=cax)
        self._empty_note = ax.text(0.5, 0.5, "no thickness values", transform=ax.transAxes, ha="center", color="0.3")

        if etdrs_centre_xy_mm is not None:
            cx, cy = map(float, etdrs_centre_xy_mm)
            radii = [d / 2 for d in ETDRS_DIAMETERS_MM]
            for radius in radii:
                ax.add_patch(Circle((cx, cy), radius, fill=False, edgecolor="white", linewidth=1.1, path_effects=THIN_OUTLINE))
            for a in np.deg2rad([45.0, 135.0, 225.0, 315.0]):
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
        self._eye = {"OD": "right eye (OD)", "OS": "left eye (OS)"}.get(laterality or "", "laterality unknown")
        self._fig, self._ax = fig, ax

    def render(
        self,
        map_um: np.ndarray,
        *,
        title: str = "",
        vmin: float | None = None,
        vmax: float | None = None,
        cmap: str = "viridis",
        colorbar_label: str = "Thickness (µm)",
    ) -> np.ndarray:
        """The figure with one map: ``(H, W, 3)`` uint8 RGB.

        Parameters
        ----------
        map_um
            ``(ny, nx)`` values in µm over the extent of the figure; NaN
            (not scanned / unknown) is transparent.
        title
            Figure title (the eye is written below it).
        vmin, vmax
            Colour range in µm; default the map's finite minimum and maximum.
        cmap
            Matplotlib colour map (e.g. ``"RdBu_r"`` with symmetric
            ``vmin``/``vmax`` for a difference map).
        colorbar_label
            Label of the colour bar.
        """
        values = np.asarray(map_um, dtype=np.float64)
        if values.ndim != 2:
            raise InputError("map_um", f"must be a (ny, nx) map, got shape {values.shape}")
        finite = values[np.isfinite(values)]
        if vmin is None:
            vmin = float(finite.min()) if finite.size else 0.0
        if vmax is None:
            vmax = float(finite.max()) if finite.size else 1.0
        if vmax <= vmin:
            vmax = vmin + 1.0  # a flat map still gets a usable colour bar
        self._image.set_data(np.ma.masked_invalid(values))
        self._image.set_cmap(matplotlib.colormaps[cmap].with_extremes(bad=(0, 0, 0, 0)))
        self._image.set_clim(vmin, vmax)
        self._colorbar.set_label(colorbar_label)
        self._empty_note.set_visible(not finite.size)
        self._ax.set_title(f"{title}\n{self._eye}" if title else self._eye, fontsize=10)
        return figure_rgb(self._fig)


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
    """Thickness map over the SLO image, with the ETDRS grid, as a PNG file.

    Parameters
    ----------
    map_um
        ``(ny, nx)`` thickness in µm; NaN (not scanned / unknown) is
        transparent.
    extent_mm, slo, slo_scale_xy_mm, etdrs_centre_xy_mm, laterality, map_alpha
        As for :class:`ThicknessMapFigure`.
    path
        Output PNG file.
    title, vmin, vmax, cmap, colorbar_label
        As for :meth:`ThicknessMapFigure.render`.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    values = np.asarray(map_um)
    if values.ndim != 2:
        raise InputError("map_um", f"must be a (ny, nx) map, got shape {values.shape}")
    figure = ThicknessMapFigure(
        extent_mm,
        slo=slo,
        slo_scale_xy_mm=slo_scale_xy_mm,
        etdrs_centre_xy_mm=etdrs_centre_xy_mm,
        laterality=laterality,
        map_alpha=map_alpha,
    )
    rgb = figure.render(values, title=title, vmin=vmin, vmax=vmax, cmap=cmap, colorbar_label=colorbar_label)
    return write_bytes_atomic(path, png_bytes(rgb))

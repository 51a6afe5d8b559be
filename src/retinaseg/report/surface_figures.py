"""3D figures of layer surfaces: an interactive plotly view and its PNG twin.

Positions on the fundus are in mm in the SLO frame (x to the right, y
*down*); depth is in mm below the top of the scan, growing downwards. The
interactive view is an HTML fragment, to be placed in a page that loads
plotly.js once (:func:`retinaseg.report.html.render_report`); the PNG is
written with the helpers of :mod:`retinaseg.report.plots`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
import plotly.graph_objects as go
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Patch

from retinaseg.errors import InputError
from retinaseg.report.plots import REPORT_DPI, new_figure, save_figure


def _span(values: np.ndarray) -> float:
    """Range of the finite values (a small positive number when they are all equal, 1 when there is none)."""
    finite = values[np.isfinite(values)]
    return max(float(finite.max() - finite.min()), 1e-6) if finite.size else 1.0


def _surface_inputs(
    surfaces_mm: Mapping[str, np.ndarray],
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    colour_by_um: np.ndarray | None,
    depth_exaggeration: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], tuple[float, float, float]]:
    """Checked ``(ny, nx)`` grids ``X``, ``Y``, the surfaces, and the x : y : z display aspect."""
    if not surfaces_mm:
        raise InputError("surfaces_mm", "needs at least one surface")
    x = np.asarray(x_mm, dtype=np.float64)
    y = np.asarray(y_mm, dtype=np.float64)
    if x.ndim == 1 and y.ndim == 1:
        x, y = np.meshgrid(x, y, indexing="xy")
    if x.ndim != 2 or x.shape != y.shape:
        raise InputError("x_mm", f"x_mm {np.shape(x_mm)} and y_mm {np.shape(y_mm)} must be (nx,) and (ny,) or both (ny, nx)")
    surfaces = {name: np.asarray(depth, dtype=np.float64) for name, depth in surfaces_mm.items()}
    bad = {name: depth.shape for name, depth in surfaces.items() if depth.shape != x.shape}
    if bad:
        raise InputError("surfaces_mm", f"shapes {bad} must match the (ny, nx) = {x.shape} grid")
    if colour_by_um is not None and np.shape(colour_by_um) != x.shape:
        raise InputError("colour_by_um", f"shape {np.shape(colour_by_um)} must match the {x.shape} grid")
    if not depth_exaggeration > 0:
        raise InputError("depth_exaggeration", f"must be > 0, got {depth_exaggeration}")
    spans = (_span(x), _span(y), _span(np.concatenate([d.ravel() for d in surfaces.values()])) * depth_exaggeration)
    largest = max(spans)
    return x, y, surfaces, (spans[0] / largest, spans[1] / largest, spans[2] / largest)


# Plain surfaces (all but a thickness-coloured first one): Okabe-Ito colours.
_SURFACE_COLOURS = ("#CC79A7", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#F0E442")


def surface_figure_html(
    surfaces_mm: Mapping[str, np.ndarray],
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    *,
    colour_by_um: np.ndarray | None = None,
    title: str = "",
    depth_exaggeration: float = 5.0,
    height_px: int = 560,
) -> str:
    """Interactive 3D view of layer surfaces, as an HTML fragment.

    Parameters
    ----------
    surfaces_mm
        ``{name: (ny, nx) depth in mm below the top of the scan}``, top
        surface first, e.g. ``{"ILM": ..., "BM": ...}``; NaN = not scanned
        (a hole).
    x_mm, y_mm
        ``(nx,)`` and ``(ny,)`` positions (or both ``(ny, nx)`` grids) in mm
        in the SLO frame (y down).
    colour_by_um
        ``(ny, nx)`` values in µm (e.g. retinal thickness) colouring the
        first surface; the others have one plain colour each.
    title
        Figure title; the depth stretch is appended.
    depth_exaggeration
        Depth is drawn this many times larger than lateral distances (the
        retina is ~0.3 mm thick over several mm).
    height_px
        Height of the figure in the page.

    Returns
    -------
    str
        A ``<div>`` with the figure and the script drawing it. It does not
        contain plotly.js: the page must load it first (once), as
        :func:`retinaseg.report.html.render_report` does.

    Notes
    -----
    The z axis is depth, pointing down, and the y axis points down as in
    the SLO, so the view from above shows the fundus the right way up.
    Surfaces are opaque: WebGL draws overlapping translucent surfaces in
    the wrong order.
    """
    x, y, surfaces, aspect = _surface_inputs(surfaces_mm, x_mm, y_mm, colour_by_um, depth_exaggeration)
    if np.ndim(x_mm) == 1 and np.ndim(y_mm) == 1:
        x, y = np.asarray(x_mm, dtype=np.float64), np.asarray(y_mm, dtype=np.float64)  # a grid: its axes suffice
    # single precision is plenty for a view (0.1 µm at 10 mm) and halves the data in the page
    x, y = x.astype(np.float32), y.astype(np.float32)
    fig = go.Figure()
    where = "x %{x:.2f} mm<br>y %{y:.2f} mm<br>depth %{z:.3f} mm"
    for k, (name, depth) in enumerate(surfaces.items()):
        if k == 0 and colour_by_um is not None:
            style = {
                "surfacecolor": np.asarray(colour_by_um, dtype=np.float32),
                "colorscale": "Viridis",
                "colorbar": {"title": {"text": "thickness (µm)"}, "len": 0.7},
                "showscale": True,
            }
            hover = f"{where}<br>%{{surfacecolor:.0f}} µm"
        else:
            colour = _SURFACE_COLOURS[k % len(_SURFACE_COLOURS)]
            style = {"colorscale": [[0, colour], [1, colour]], "showscale": False}
            hover = where
        fig.add_trace(
            go.Surface(
                x=x,
                y=y,
                z=depth.astype(np.float32),
                name=name,
                showlegend=True,
                hovertemplate=f"{name}<br>{hover}<extra></extra>",
                **style,
            )
        )
    stretch_note = f"depth ×{depth_exaggeration:g}"
    fig.update_layout(
        title={"text": f"{title} ({stretch_note})" if title else stretch_note},
        height=height_px,
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        legend={"x": 0.0, "y": 1.0},
        scene={
            "xaxis": {"title": {"text": "x (mm)"}},
            "yaxis": {"title": {"text": "y (mm, down)"}, "autorange": "reversed"},
            "zaxis": {"title": {"text": "depth (mm)"}, "autorange": "reversed"},
            "aspectmode": "manual",
            "aspectratio": dict(zip("xyz", aspect)),
        },
    )
    return fig.to_html(include_plotlyjs=False, full_html=False, config={"displaylogo": False, "responsive": True})


def plot_surfaces_png(
    surfaces_mm: Mapping[str, np.ndarray],
    x_mm: np.ndarray,
    y_mm: np.ndarray,
    path: str | os.PathLike[str],
    *,
    colour_by_um: np.ndarray | None = None,
    title: str = "",
    depth_exaggeration: float = 5.0,
) -> Path:
    """Still 3D view of layer surfaces (the PNG twin of :func:`surface_figure_html`).

    Parameters
    ----------
    surfaces_mm, x_mm, y_mm, colour_by_um, title, depth_exaggeration
        As for :func:`surface_figure_html`.
    path
        Output PNG file.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    x, y, surfaces, aspect = _surface_inputs(surfaces_mm, x_mm, y_mm, colour_by_um, depth_exaggeration)
    fig = new_figure(7.5, 5.5, dpi=REPORT_DPI)
    ax = fig.add_subplot(projection="3d")
    handles = []
    colours = None
    if colour_by_um is not None:
        values = np.asarray(colour_by_um, dtype=np.float64)
        finite = values[np.isfinite(values)]
        vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        mapper = ScalarMappable(norm=Normalize(vmin, vmax), cmap="viridis")
        colours = mapper.to_rgba(np.nan_to_num(values, nan=vmin))
        fig.colorbar(mapper, ax=ax, label="Thickness (µm)", shrink=0.6)
    for k, (name, depth) in enumerate(surfaces.items()):
        if k == 0 and colours is not None:
            # polygons with a NaN corner are left out, so NaN (not scanned) stays a hole
            ax.plot_surface(x, y, depth, facecolors=colours, linewidth=0, antialiased=False, shade=False)
            handles.append(Patch(facecolor=matplotlib.colormaps["viridis"](0.6), label=name))
        else:
            colour = _SURFACE_COLOURS[k % len(_SURFACE_COLOURS)]
            ax.plot_surface(x, y, depth, color=colour, linewidth=0, antialiased=False)
            handles.append(Patch(facecolor=colour, label=name))
    ax.set_box_aspect(aspect)
    ax.invert_yaxis()  # y down, as in the SLO
    ax.invert_zaxis()  # depth down
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm, down)")
    ax.set_zlabel("depth (mm)")
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    stretch_note = f"depth ×{depth_exaggeration:g}"
    ax.set_title(f"{title} ({stretch_note})" if title else stretch_note, fontsize=10)
    return save_figure(fig, path)

"""Figures of an analysed OCT volume: B-scans with layers, thickness maps, circle profiles.

The PNG figures use the helpers of :mod:`retinaseg.report.plots` (Agg
figure without ``pyplot``, atomic PNG write). The 3D view of the layer
surfaces is a plotly figure returned as an HTML fragment, to be placed in
a page that loads plotly.js once (:func:`retinaseg.report.html.render_report`).

Coordinates follow :class:`retinaseg.volume.OctVolume`: positions on the
fundus are in mm in the SLO frame (origin at the top-left corner of the SLO
image, x to the right, y *down*, so superior = smaller y; nasal = +x for a
right eye (OD) and -x for a left eye (OS)); depth is in mm or pixels below
the top of the scan, growing downwards.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import plotly.graph_objects as go
from matplotlib import patheffects
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_hex
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch

from retinaseg.analysis.boundaries import DUKE_BOUNDARY_NAMES, DUKE_LAYER_CLASSES
from retinaseg.analysis.circle import CIRCLE_SECTORS
from retinaseg.analysis.etdrs import ETDRS_DIAMETERS_MM, nasal_sign
from retinaseg.errors import InputError
from retinaseg.io.duke import DUKE_CLASS_NAMES
from retinaseg.report.palette import LAYER_PALETTE, legend_handles, overlay, palette_for, to_rgb8
from retinaseg.report.plots import new_figure, save_figure


# A B-scan shown flatter than this (height / width) is stretched in depth:
# the retina is ~0.3 mm thick on a 6-10 mm wide scan and its layers would
# be a few pixels high in the figure.
_MIN_BSCAN_ASPECT = 1.0 / 3.0

# dark edges around light lines and letters: visible on bright and dark pixels alike
_OUTLINE = [patheffects.withStroke(linewidth=2.6, foreground="black")]
_THIN_OUTLINE = [patheffects.withStroke(linewidth=2.2, foreground="black")]


def _boundary_colours(boundary_names: Sequence[str], class_names: Sequence[str], palette: np.ndarray) -> list[str]:
    """Colour of each boundary line: the colour of the layer whose upper edge it is
    (Duke boundary names whose layer is among ``class_names``), so that lines, overlay
    and legend agree; distinct colours otherwise."""
    layer_of = {b: DUKE_CLASS_NAMES[c] for b, c in zip(DUKE_BOUNDARY_NAMES, DUKE_LAYER_CLASSES)}
    if all(layer_of.get(name) in class_names for name in boundary_names):
        rgb = [palette[list(class_names).index(layer_of[name])] for name in boundary_names]
    else:
        rgb = palette_for(["-", *boundary_names])[1:]
    return [to_hex(np.asarray(c) / 255.0) for c in rgb]


def _stretch_and_note(
    height_px: int, width_px: int, axial_um: float | None, lateral_um: float | None,
    depth_exaggeration: float | None,
) -> tuple[float | None, str]:
    """Depth stretch factor (``None`` = no physical scale) and the words saying so."""
    if axial_um is None or lateral_um is None:
        return None, "square pixels, scale unknown"
    if depth_exaggeration is None:
        ratio = (height_px * axial_um) / (width_px * lateral_um)
        depth_exaggeration = float(max(1, math.ceil(_MIN_BSCAN_ASPECT / ratio))) if ratio > 0 else 1.0
    if depth_exaggeration == 1:
        return 1.0, "physical aspect 1:1"
    return float(depth_exaggeration), f"depth stretched ×{depth_exaggeration:g} for readability"


def plot_bscan_overlay(
    image_u8: np.ndarray,
    labels: np.ndarray | None,
    boundaries_px: np.ndarray,
    boundary_names: list[str],
    path: str | os.PathLike[str],
    *,
    reference_px: np.ndarray | None = None,
    title: str = "",
    axial_um: float | None = None,
    lateral_um: float | None = None,
    depth_exaggeration: float | None = None,
    class_names: Sequence[str] = DUKE_CLASS_NAMES,
    palette: np.ndarray = LAYER_PALETTE,
    alpha: float = 0.3,
    reference_label: str = "reference",
) -> Path:
    """One B-scan with its label map, layer boundaries and reference boundaries.

    Parameters
    ----------
    image_u8
        ``(H, W)`` B-scan for display (any dtype; non-uint8 is stretched,
        see :func:`retinaseg.report.palette.to_rgb8`), row 0 at the top.
    labels
        ``(H, W)`` integer class-index map drawn as translucent class
        colours (class 0 uncoloured), or ``None``.
    boundaries_px
        ``(B, W)`` row position (pixels, 0 = centre of the top row) of each
        boundary in each A-scan; NaN where unknown (the line has a gap).
    boundary_names
        ``B`` names for the legend. Duke boundary names
        (:data:`retinaseg.analysis.boundaries.DUKE_BOUNDARY_NAMES`) are drawn
        in the colour of the layer below them when that layer is one of
        ``class_names``.
    path
        Output PNG file.
    reference_px
        ``(R, W)`` reference boundaries (device or manual), any number of
        rows, drawn as dashed black-and-white lines; NaN = gap.
    title
        Figure title; the display aspect is appended in brackets.
    axial_um, lateral_um
        Pixel height and A-scan spacing in µm. With both, the axes are in
        mm and a pixel shows its physical shape (depth stretched when
        ``depth_exaggeration`` says so); without, pixels are drawn square
        and the axes count pixels.
    depth_exaggeration
        Depth stretch factor when both scales are given. ``None`` picks 1
        unless the scan would be drawn flatter than 1:3 (height:width), then
        the smallest integer that reaches 1:3.
    class_names, palette
        Name and ``(K, 3)`` uint8 colour of each label value.
    alpha
        Opacity of the label colours.
    reference_label
        Legend entry of the reference lines, e.g. ``"device"``.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    image = np.asarray(image_u8)
    if image.ndim != 2:
        raise InputError("image_u8", f"must be a (H, W) B-scan, got shape {image.shape}")
    height, width = image.shape
    boundaries = np.asarray(boundaries_px, dtype=np.float64)
    if boundaries.ndim != 2 or boundaries.shape != (len(boundary_names), width):
        raise InputError(
            "boundaries_px", f"shape {boundaries.shape} must be ({len(boundary_names)} names, {width} A-scans)"
        )
    reference = None if reference_px is None else np.asarray(reference_px, dtype=np.float64)
    if reference is not None and (reference.ndim != 2 or reference.shape[1] != width):
        raise InputError("reference_px", f"shape {reference.shape} must be (R, {width} A-scans)")
    palette = np.asarray(palette, dtype=np.uint8)
    rgb = to_rgb8(image) if labels is None else overlay(image, labels, palette, alpha)

    stretch, aspect_note = _stretch_and_note(height, width, axial_um, lateral_um, depth_exaggeration)
    if stretch is None:
        x_scale = z_scale = 1.0
        shown_ratio = height / width
        xlabel, ylabel = "A-scan", "Row (px)"
    else:
        x_scale, z_scale = lateral_um / 1000.0, axial_um / 1000.0
        shown_ratio = stretch * height * z_scale / (width * x_scale)
        xlabel, ylabel = "Lateral position (mm)", "Depth (mm)"
    # pixel centres at index * scale, so boundary rows map straight onto the axes
    extent = (-0.5 * x_scale, (width - 0.5) * x_scale, (height - 0.5) * z_scale, -0.5 * z_scale)

    width_in = 9.0
    n_entries = len(boundary_names) + (reference is not None) + (0 if labels is None else len(np.unique(labels)))
    # image height at the axes' width (~0.9 in of labels) + title, x label and legend rows
    height_in = (width_in - 0.9) * min(max(shown_ratio, 0.15), 1.5) + 1.1 + 0.2 * math.ceil(n_entries / 6)
    fig = new_figure(width_in, height_in)
    ax = fig.add_subplot()
    ax.imshow(rgb, extent=extent, interpolation="nearest", aspect=1.0 if stretch is None else stretch)
    x = np.arange(width) * x_scale
    handles: list = []
    names: list[str] = []
    for name, colour, rows in zip(boundary_names, _boundary_colours(boundary_names, class_names, palette), boundaries):
        (line,) = ax.plot(x, rows * z_scale, color=colour, linewidth=1.2, path_effects=_OUTLINE)
        handles.append(line)
        names.append(name)
    if reference is not None and reference.size:
        dash = {"color": "white", "linewidth": 1.0, "linestyle": (0, (3, 3))}
        for rows in reference:
            # white dashes over a black line: visible on dark and bright pixels alike
            ax.plot(x, rows * z_scale, color="black", linewidth=1.4)
            ax.plot(x, rows * z_scale, **dash)
        handles.append((Line2D([], [], color="black", linewidth=1.4), Line2D([], [], **dash)))
        names.append(reference_label)
    if labels is not None:
        present = [int(k) for k in np.unique(labels) if 0 < k < len(class_names)]
        handles += legend_handles(class_names, palette, present)
        names += [class_names[k] for k in present]
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} ({aspect_note})" if title else aspect_note.capitalize(), fontsize=10)
    if handles:
        fig.legend(handles=handles, labels=names, loc="outside lower center",
                   ncol=min(len(handles), 6), fontsize=7, frameon=False)
    return save_figure(fig, path)


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
    image = ax.imshow(np.ma.masked_invalid(values), extent=(left, right, bottom, top), origin="upper",
                      cmap=colour_map, vmin=vmin, vmax=vmax, alpha=map_alpha, interpolation="nearest",
                      aspect="equal")
    fig.colorbar(image, ax=ax, label=colorbar_label, shrink=0.85)
    if not finite.size:
        ax.text(0.5, 0.5, "no thickness values", transform=ax.transAxes, ha="center", color="0.3")

    if etdrs_centre_xy_mm is not None:
        cx, cy = map(float, etdrs_centre_xy_mm)
        radii = [d / 2 for d in ETDRS_DIAMETERS_MM]
        for radius in radii:
            ax.add_patch(Circle((cx, cy), radius, fill=False, edgecolor="white", linewidth=1.1,
                                path_effects=_THIN_OUTLINE))
        angles = np.deg2rad([45.0, 135.0, 225.0, 315.0])
        for a in angles:
            ax.plot([cx + radii[0] * np.cos(a), cx + radii[-1] * np.cos(a)],
                    [cy + radii[0] * np.sin(a), cy + radii[-1] * np.sin(a)],
                    color="white", linewidth=1.1, path_effects=_THIN_OUTLINE)
        for letter, (x, y) in _etdrs_label_positions((cx, cy), laterality, radii[-1] + 0.35).items():
            ax.text(x, y, letter, ha="center", va="center", fontsize=10, fontweight="bold", color="white",
                    path_effects=_OUTLINE, clip_on=True)

    ax.set_xlim(view[0], view[1])
    ax.set_ylim(view[2], view[3])  # y grows downwards, as in the SLO image
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm, down = inferior)")
    eye = {"OD": "right eye (OD)", "OS": "left eye (OS)"}.get(laterality or "", "laterality unknown")
    ax.set_title(f"{title}\n{eye}" if title else eye, fontsize=10)
    return save_figure(fig, path)


def _sector_degrees(start_deg: float, end_deg: float) -> np.ndarray:
    """``(360,)`` bool: which 1-degree bins (centres 0.5 .. 359.5) a sector covers, wrapping through 0."""
    centres = np.arange(360) + 0.5
    if start_deg < end_deg:
        return (centres >= start_deg) & (centres < end_deg)
    return (centres >= start_deg) | (centres < end_deg)


def _sector_segments(start_deg: float, end_deg: float) -> list[tuple[float, float]]:
    """``[start, end]`` pieces of a sector on the 0-360 axis (a sector crossing 0 gives two)."""
    if start_deg < end_deg:
        return [(start_deg, end_deg)]
    return [(start_deg, 360.0), (0.0, end_deg)]


def _finest_sectors(names: Sequence[str]) -> list[str]:
    """The named sectors that contain no other named sector (e.g. TS and NS, not S or global)."""
    known = [name for name in names if name in CIRCLE_SECTORS]
    cover = {name: _sector_degrees(*CIRCLE_SECTORS[name]) for name in known}
    return [
        name for name in known
        if not any(other != name and not (cover[other] & ~cover[name]).any() for other in known)
    ]


def plot_circle_profile(
    angle_deg: np.ndarray,
    thickness_um: np.ndarray,
    path: str | os.PathLike[str],
    *,
    reference_um: np.ndarray | None = None,
    sectors: Mapping[str, float] | None = None,
    title: str = "",
    label: str = "retinaseg",
    reference_label: str = "device",
) -> Path:
    """Thickness along a circle scan in TSNIT order.

    Parameters
    ----------
    angle_deg
        ``(n,)`` position of each A-scan on the circle, degrees on the
        TSNIT axis: 0 = temporal, 90 = superior, 180 = nasal,
        270 = inferior (any value; taken modulo 360 and sorted).
    thickness_um
        ``(n,)`` thickness in µm; NaN = unknown (a gap in the curve).
    path
        Output PNG file.
    reference_um
        ``(n,)`` reference thickness (e.g. the device's) at the same angles.
    sectors
        ``{name: mean thickness in µm}`` with names of
        :data:`retinaseg.analysis.circle.CIRCLE_SECTORS`. The finest sectors
        given (those containing no other given sector, e.g. the six
        Spectralis sectors) are drawn as a level over their angular range
        with the value written above it; the others (``"global"``, the S and
        I quadrants when TS/NS/NI/TI are given, unknown names) are listed
        under the title. NaN shows as "–".
    title
        Figure title.
    label, reference_label
        Legend entries of the two curves.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    angle = np.asarray(angle_deg, dtype=np.float64)
    thickness = np.asarray(thickness_um, dtype=np.float64)
    if angle.ndim != 1 or thickness.shape != angle.shape:
        raise InputError("thickness_um", f"shape {thickness.shape} must be 1-D and match angle_deg {angle.shape}")
    reference = None if reference_um is None else np.asarray(reference_um, dtype=np.float64)
    if reference is not None and reference.shape != angle.shape:
        raise InputError("reference_um", f"shape {reference.shape} must match angle_deg {angle.shape}")
    sectors = dict(sectors or {})
    wrapped = np.mod(angle, 360.0)
    order = np.argsort(wrapped, kind="stable")

    fig = new_figure(8.5, 4.2)
    ax = fig.add_subplot()
    ax.plot(wrapped[order], thickness[order], color="#0072B2", linewidth=1.6, label=label)
    if reference is not None:
        ax.plot(wrapped[order], reference[order], color="0.25", linewidth=1.2, linestyle="--",
                label=reference_label)
    drawn = _finest_sectors(list(sectors))
    for name in drawn:
        value = float(sectors[name])
        pieces = _sector_segments(*CIRCLE_SECTORS[name])
        if np.isfinite(value):
            for lo, hi in pieces:
                ax.plot([lo, hi], [value, value], color="#D55E00", linewidth=2.0, alpha=0.8)
        # the label goes on the widest piece, above the level (at the bottom when unknown)
        lo, hi = max(pieces, key=lambda piece: piece[1] - piece[0])
        ax.annotate(f"{name} {value:.0f}" if np.isfinite(value) else f"{name} –",
                    xy=((lo + hi) / 2, value if np.isfinite(value) else 0.0), xytext=(0, 4),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8, color="#A04000")
    listed = [f"{name} {value:.0f} µm" if np.isfinite(value) else f"{name} –"
              for name, value in sectors.items() if name not in drawn]
    levels = np.concatenate([thickness, [] if reference is None else reference,
                             np.asarray(list(sectors.values()), dtype=np.float64)])
    top = float(np.nanmax(levels)) if np.isfinite(levels).any() else 0.0
    ax.set_ylim(0.0, 1.15 * top if top > 0 else 1.0)  # room for the sector labels above their levels
    for boundary in (45.0, 135.0, 225.0, 315.0):
        ax.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlim(0.0, 360.0)
    ax.set_xticks([0, 90, 180, 270, 360], labels=["T", "S", "N", "I", "T"])
    ax.set_xlabel("Position on the circle (TSNIT)")
    ax.set_ylabel("Thickness (µm)")
    ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
    ax.legend(loc="lower left", fontsize=8)
    heading = "\n".join(part for part in (title, "   ".join(listed)) if part)
    if heading:
        ax.set_title(heading, fontsize=10)
    return save_figure(fig, path)


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
    fig = go.Figure()
    where = "x %{x:.2f} mm<br>y %{y:.2f} mm<br>depth %{z:.3f} mm"
    for k, (name, depth) in enumerate(surfaces.items()):
        if k == 0 and colour_by_um is not None:
            style = {"surfacecolor": np.asarray(colour_by_um, dtype=np.float64), "colorscale": "Viridis",
                     "colorbar": {"title": {"text": "thickness (µm)"}, "len": 0.7}, "showscale": True}
            hover = f"{where}<br>%{{surfacecolor:.0f}} µm"
        else:
            colour = _SURFACE_COLOURS[k % len(_SURFACE_COLOURS)]
            style = {"colorscale": [[0, colour], [1, colour]], "showscale": False}
            hover = where
        fig.add_trace(go.Surface(x=x, y=y, z=depth, name=name, showlegend=True,
                                 hovertemplate=f"{name}<br>{hover}<extra></extra>", **style))
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
    fig = new_figure(7.5, 5.5)
    ax = fig.add_subplot(projection="3d")
    handles = []
    colours = None
    if colour_by_um is not None:
        values = np.asarray(colour_by_um, dtype=np.float64)
        finite = values[np.isfinite(values)]
        norm = Normalize(*(finite.min(), finite.max()) if finite.size else (0.0, 1.0))
        mapper = ScalarMappable(norm=norm, cmap="viridis")
        colours = mapper.to_rgba(np.nan_to_num(values, nan=norm.vmin))
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

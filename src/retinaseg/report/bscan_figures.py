"""B-scan figures: one B-scan with its label map, layer boundaries and reference boundaries.

Rows grow downwards from the top of the scan; with physical scales the axes
are in mm (:func:`plot_bscan_overlay`). PNGs are written with the helpers of
:mod:`retinaseg.report.plots` (Agg figure without ``pyplot``, atomic write).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D

from retinaseg.conventions import (
    DUKE_BOUNDARY_NAMES,
    DUKE_CLASS_NAMES,
    DUKE_LAYER_CLASSES,
)
from retinaseg.errors import InputError
from retinaseg.report.figure_style import OUTLINE
from retinaseg.report.palette import (
    LAYER_PALETTE,
    legend_handles,
    overlay,
    palette_for,
    to_rgb8,
)
from retinaseg.report.plots import new_figure, save_figure

# A B-scan shown flatter than this (height / width) is stretched in depth:
# the retina is ~0.3 mm thick on a 6-10 mm wide scan and its layers would
# be a few pixels high in the figure.
_MIN_BSCAN_ASPECT = 1.0 / 3.0


class _LineStyle(TypedDict):
    """Keyword arguments of ``Axes.plot`` / ``Line2D`` for one line style."""

    color: str
    linewidth: float
    linestyle: tuple[float, Sequence[float]]


def _boundary_colours(boundary_names: Sequence[str], class_names: Sequence[str], palette: np.ndarray) -> list[str]:
    """Colour of each boundary line: the colour of the layer whose upper edge it is
    (Duke boundary names whose layer is among ``class_names``), so that lines, overlay
    and legend agree; distinct colours otherwise."""
    layer_of = {b: DUKE_CLASS_NAMES[c] for b, c in zip(DUKE_BOUNDARY_NAMES, DUKE_LAYER_CLASSES)}
    if all(layer_of.get(name) in class_names for name in boundary_names):
        rgb = palette[[list(class_names).index(layer_of[name]) for name in boundary_names]]
    else:
        rgb = palette_for(["-", *boundary_names])[1:]
    return [to_hex((float(r) / 255.0, float(g) / 255.0, float(b) / 255.0)) for r, g, b in rgb]


def _stretch_and_note(
    height_px: int,
    width_px: int,
    axial_um: float | None,
    lateral_um: float | None,
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
        (:data:`retinaseg.conventions.DUKE_BOUNDARY_NAMES`) are drawn
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
        raise InputError("boundaries_px", f"shape {boundaries.shape} must be ({len(boundary_names)} names, {width} A-scans)")
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
        assert axial_um is not None and lateral_um is not None  # a stretch comes only with both scales
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
        (line,) = ax.plot(x, rows * z_scale, color=colour, linewidth=1.2, path_effects=OUTLINE)
        handles.append(line)
        names.append(name)
    if reference is not None and reference.size:
        dash: _LineStyle = {"color": "white", "linewidth": 1.0, "linestyle": (0, (3, 3))}
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
        fig.legend(
            handles=handles, labels=names, loc="outside lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False
        )
    return save_figure(fig, path)

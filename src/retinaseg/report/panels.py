"""Prediction panels: image, reference and prediction side by side, one row per image.

Written by ``retinaseg evaluate`` (one file per test image,
``<out>/panels/<sample id>.png``) and by training runs with
``trainer.snapshot_every`` (the first validation images in one file per
snapshot, ``runs/<name>/snapshots/epoch_XXX.png``). Label maps are drawn in
their palette colours (:func:`~retinaseg.report.palette.palette_for`); binary
tasks get a fourth column that colours each pixel by its outcome
(:data:`OUTCOME_PALETTE`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from retinaseg.errors import InputError
from retinaseg.report.palette import colorize, legend_handles, palette_for, to_rgb8
from retinaseg.report.plots import new_figure, save_figure

#: Names of the outcome codes of :func:`outcome_map`, index = code.
OUTCOME_NAMES: tuple[str, ...] = ("true negative", "false positive", "false negative", "true positive", "outside FOV")

#: ``(5, 3)`` uint8 colours of the outcome codes: TN black and TP white (as a
#: DRIVE reference mask), FP vermillion and FN sky blue (Okabe-Ito: told apart
#: with the common colour-vision deficiencies), outside the FOV mid grey.
OUTCOME_PALETTE: np.ndarray = np.array(
    [(0, 0, 0), (213, 94, 0), (86, 180, 233), (255, 255, 255), (128, 128, 128)], dtype=np.uint8
)

_PANEL_IN = 3.0  # longer side of one panel, inches
_MIN_PANEL_W_IN = 1.5  # narrower panels of tall B-scans would leave no room for titles and legend
_ROW_TITLE_IN = 0.35  # room for the panel titles of a row
_LEGEND_ENTRY_W_IN = 1.5
_LEGEND_ROW_IN = 0.22
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class PanelRow:
    """One image of a panel figure.

    Attributes
    ----------
    sample_id
        Shown above the image.
    image
        ``(H, W)`` grey, ``(H, W, 1)`` or ``(H, W, 3)`` RGB, any dtype
        (stretched for display by :func:`~retinaseg.report.palette.to_rgb8`).
    reference, prediction
        ``(H, W)`` integer class-index maps.
    fov
        ``(H, W)`` bool field of view, or ``None`` (the whole image); only
        the outcome map of binary tasks uses it.
    """

    sample_id: str
    image: np.ndarray
    reference: np.ndarray
    prediction: np.ndarray
    fov: np.ndarray | None = None


def outcome_map(prediction: np.ndarray, reference: np.ndarray, fov: np.ndarray | None = None) -> np.ndarray:
    """Outcome of each pixel of a binary segmentation.

    Parameters
    ----------
    prediction, reference
        ``(H, W)`` maps; non-zero is foreground.
    fov
        ``(H, W)`` bool field of view, or ``None`` (the whole image).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 codes into :data:`OUTCOME_NAMES`: 0 TN, 1 FP, 2 FN,
        3 TP, 4 outside the FOV.

    Raises
    ------
    InputError
        The three maps differ in shape.
    """
    prediction, reference = np.asarray(prediction), np.asarray(reference)
    if prediction.shape != reference.shape or (fov is not None and np.shape(fov) != reference.shape):
        shapes = f"prediction {prediction.shape}, reference {reference.shape}, fov {None if fov is None else np.shape(fov)}"
        raise InputError("prediction", f"shapes differ: {shapes}")
    # Two bits, reference then prediction, give the codes TN=0, FP=1, FN=2, TP=3.
    codes = (2 * (reference != 0) + (prediction != 0)).astype(np.uint8)
    if fov is not None:
        codes[~np.asarray(fov, dtype=bool)] = len(OUTCOME_NAMES) - 1
    return codes


def panel_file_name(sample_id: str) -> str:
    """``<sample id>.png``, with characters that are not safe in a file name replaced by ``_``."""
    return f"{_UNSAFE.sub('_', sample_id)}.png"


def prediction_panel_figure(
    rows: Sequence[PanelRow], class_names: Sequence[str], *, binary: bool, title: str | None = None
) -> Figure:
    """Image, reference and prediction (and, for binary tasks, the outcome map) of each row.

    Parameters
    ----------
    rows
        At least one image; each is one row of panels.
    class_names
        Name of each class, index = label value; gives the palette.
    binary
        Add the TP/FP/FN/TN column (:func:`outcome_map`, :data:`OUTCOME_PALETTE`).
    title
        Figure title, e.g. the epoch.

    Returns
    -------
    matplotlib.figure.Figure
        Each panel at most 3 inches on its longer side (tall images: at
        least 1.5 inches wide), at 150 dpi.
    """
    if not rows:
        raise InputError("rows", "a panel figure needs at least one image")
    palette = palette_for(class_names)
    columns = 4 if binary else 3
    aspects = [row.reference.shape[0] / max(row.reference.shape[1], 1) for row in rows]
    panel_w = max(_PANEL_IN * min(1.0, 1.0 / max(aspects)), _MIN_PANEL_W_IN)  # tall images: height bounded
    row_heights = [panel_w * aspect + _ROW_TITLE_IN for aspect in aspects]
    present = np.unique(np.concatenate([np.ravel(m) for row in rows for m in (row.reference, row.prediction)]))
    handles = legend_handles(class_names, palette, [int(k) for k in present])
    if binary:
        handles += legend_handles(OUTCOME_NAMES, OUTCOME_PALETTE)
    legend_columns = max(1, min(len(handles), int(panel_w * columns / _LEGEND_ENTRY_W_IN)))
    legend_h = _LEGEND_ROW_IN * (-(-len(handles) // legend_columns) + 1)
    fig = new_figure(panel_w * columns, sum(row_heights) + legend_h + (0.4 if title else 0.0))
    grid = fig.add_gridspec(len(rows), columns, height_ratios=row_heights)
    for r, row in enumerate(rows):
        for c, (name, rgb) in enumerate(_panel_images(row, palette, binary)):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(rgb, interpolation="nearest")
            ax.set_title(name, fontsize=9)
            ax.set_axis_off()
    fig.legend(handles=handles, loc="outside lower center", ncol=legend_columns, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def save_prediction_panels(
    rows: Sequence[PanelRow],
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    *,
    binary: bool,
    title: str | None = None,
) -> Path:
    """Write :func:`prediction_panel_figure` as a PNG file, atomically; returns ``path``."""
    return save_figure(prediction_panel_figure(rows, class_names, binary=binary, title=title), path)


def _panel_images(row: PanelRow, palette: np.ndarray, binary: bool) -> list[tuple[str, np.ndarray]]:
    """``(title, (H, W, 3) uint8)`` of each panel of one row."""
    image = row.image[..., 0] if row.image.ndim == 3 and row.image.shape[2] == 1 else row.image
    panels = [
        (row.sample_id, to_rgb8(image)),
        ("Reference", colorize(row.reference, palette)),
        ("Prediction", colorize(row.prediction, palette)),
    ]
    if binary:
        panels.append(("TP / FP / FN / TN", colorize(outcome_map(row.prediction, row.reference, row.fov), OUTCOME_PALETTE)))
    return panels

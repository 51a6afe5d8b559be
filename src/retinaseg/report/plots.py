"""Report figures written as PNG files.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg
renderer directly, not through ``pyplot``: nothing global is touched, no
window can open, and a figure is freed as soon as the function returns.
Each file is written to a temporary name in the target folder and then
renamed, so a reader never sees a half-written PNG.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from retinaseg.errors import InputError
from retinaseg.report.encoding import png_bytes, write_bytes_atomic
from retinaseg.report.palette import legend_handles, overlay, to_rgb8

_DPI = 150

#: Resolution of the figures of ``retinaseg analyze`` reports (shown about 700 px wide in the page).
REPORT_DPI = 100

_NORMALISATIONS = {
    "true": ("each row: fraction of the reference class's pixels", "Fraction of reference pixels"),
    "pred": ("each column: fraction of the predicted class's pixels", "Fraction of predicted pixels"),
    "all": ("fraction of all pixels", "Fraction of all pixels"),
    None: ("pixel counts", "Pixels"),
}


def new_figure(
    width_in: float, height_in: float, *, dpi: float = _DPI, layout: Literal["constrained"] | None = "constrained"
) -> Figure:
    """An Agg figure of ``width_in`` x ``height_in`` inches on a white background.

    ``layout="constrained"`` places the axes automatically (at each draw);
    ``None`` leaves them where the caller puts them, which is faster.
    """
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout=layout, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def figure_rgb(fig: Figure) -> np.ndarray:
    """Draw ``fig`` once at its own resolution: ``(H, W, 3)`` uint8 RGB.

    One draw, where ``savefig`` with a layout engine draws twice (once to lay
    out, once to render).
    """
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` as PNG (at the figure's resolution) via a temporary file and an atomic rename."""
    return write_bytes_atomic(path, png_bytes(figure_rgb(fig)))


def _compact(count: float) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= 10 * limit:
            return f"{count / limit:.0f}{suffix}"
        if count >= limit:
            return f"{count / limit:.1f}{suffix}"
    return f"{count:.0f}"


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike[str],
    normalize: str | None = "true",
) -> Path:
    """Heat map of a confusion matrix.

    Parameters
    ----------
    cm
        ``(C, C)`` pixel counts, rows = reference class, columns = predicted
        class (as from :func:`retinaseg.metrics.segmentation.confusion_matrix`).
    class_names
        ``C`` class names.
    path
        Output PNG file.
    normalize
        ``"true"`` (each row sums to 1: the diagonal is the recall),
        ``"pred"`` (each column sums to 1: the diagonal is the precision),
        ``"all"``, or ``None`` for raw counts. Empty rows/columns are blank.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    cm = np.asarray(cm, dtype=np.float64)
    n = len(class_names)
    if cm.shape != (n, n):
        raise InputError("cm", f"shape {cm.shape} does not match {n} class names")
    if normalize not in _NORMALISATIONS:
        raise InputError("normalize", f"must be 'true', 'pred', 'all' or None, got {normalize!r}")
    subtitle, bar_label = _NORMALISATIONS[normalize]
    totals = {
        "true": cm.sum(axis=1, keepdims=True),
        "pred": cm.sum(axis=0, keepdims=True),
        "all": np.full((1, 1), cm.sum()),
        None: np.ones((1, 1)),
    }[normalize]
    values = np.full(cm.shape, np.nan)
    np.divide(cm, totals, out=values, where=np.broadcast_to(totals > 0, cm.shape))

    size = 2.2 + 0.55 * n
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    vmax = 1.0 if normalize else max(float(np.nanmax(values, initial=0.0)), 1.0)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, label=bar_label, shrink=0.8)
    if n <= 20:
        fontsize = 8 if n <= 10 else 6
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                text = f"{v:.2f}" if normalize else _compact(v)
                ax.text(j, i, text, ha="center", va="center", fontsize=fontsize, color="white" if v > 0.6 * vmax else "black")
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=class_names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(ticks, labels=class_names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("Reference class")
    ax.set_title(f"Confusion matrix\n({subtitle})", fontsize=10)
    return save_figure(fig, path)


def plot_pr_curve(
    precision: np.ndarray,
    recall: np.ndarray,
    path: str | os.PathLike[str],
    f1_points: Mapping[str, tuple[float, float]] | None = None,
    title: str = "Precision-recall curve",
) -> Path:
    """Precision against recall, with iso-F1 contours.

    Parameters
    ----------
    precision, recall
        1-D arrays of equal length (one point per threshold); NaN or
        ``None`` entries are skipped.
    path
        Output PNG file.
    f1_points
        Operating points to mark, ``{label: (recall, precision)}``, e.g.
        ``{"threshold 0.5": (0.79, 0.82)}``; their F1 is shown in the legend.
    title
        Figure title.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    if precision.shape != recall.shape or precision.ndim != 1:
        raise InputError("precision", f"shape {precision.shape} must be 1-D and match recall {recall.shape}")
    known = np.isfinite(precision) & np.isfinite(recall)
    order = np.argsort(recall[known], kind="stable")

    fig = new_figure(5.0, 5.0)
    ax = fig.add_subplot()
    r = np.linspace(0.01, 1.0, 200)
    for f1 in (0.2, 0.4, 0.6, 0.8):
        with np.errstate(divide="ignore", invalid="ignore"):
            p = f1 * r / (2 * r - f1)
        visible = (p >= 0) & (p <= 1.0) & (r >= f1 / 2)
        ax.plot(r[visible], p[visible], color="0.8", linewidth=0.8, zorder=1)
        ax.annotate(f"F1={f1:.1f}", xy=(0.97, f1 * 0.97 / (2 * 0.97 - f1)), fontsize=7, color="0.5", ha="right", va="bottom")
    ax.plot(recall[known][order], precision[known][order], color="#0072B2", linewidth=1.8, label="precision-recall", zorder=2)
    markers = iter("oDs^v<>")
    for label, (rec, prec) in (f1_points or {}).items():
        f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        ax.plot(
            rec,
            prec,
            linestyle="none",
            marker=next(markers, "o"),
            markersize=7,
            markeredgecolor="black",
            label=f"{label} (F1 = {f1:.3f})",
            zorder=3,
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_aspect("equal")
    ax.grid(True, linewidth=0.4, alpha=0.5)
    ax.set_xlabel("Recall (sensitivity)")
    ax.set_ylabel("Precision")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def _read_metrics_csv(csv_path: Path) -> dict[str, np.ndarray]:
    """Columns of a metrics CSV as float arrays; blank or non-numeric cells become NaN."""
    try:
        with csv_path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(csv_path, f"cannot read metrics CSV ({exc})") from exc
    if not rows or "epoch" not in rows[0]:
        raise InputError(csv_path, "metrics CSV needs a header with an 'epoch' column and at least one row")

    def number(cell: str | None) -> float:
        try:
            return float(cell)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return np.nan

    return {name: np.array([number(row.get(name)) for row in rows]) for name in rows[0] if name}


def _per_epoch(epoch: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the known values of each epoch (Lightning may log several rows per epoch)."""
    known = np.isfinite(epoch) & np.isfinite(values)
    epochs, inverse = np.unique(epoch[known], return_inverse=True)
    means = np.bincount(inverse, weights=values[known]) / np.bincount(inverse)
    return epochs, means


def plot_training_curves(metrics_csv_path: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Losses and validation scores against the epoch.

    Parameters
    ----------
    metrics_csv_path
        CSV with an ``epoch`` column and any of ``train_loss``, ``val_loss``,
        ``val_dice``, ... columns. Blank cells are allowed (Lightning's
        ``CSVLogger`` writes training and validation values on separate
        rows); several values for one epoch are averaged.
    path
        Output PNG file.

    Returns
    -------
    pathlib.Path
        The written file.

    Notes
    -----
    Columns whose name contains ``loss`` go to the left panel; other
    ``val_*`` columns (scores in 0..1) to the right one. Other columns
    (``step``, ``lr``, timings) are not drawn.
    """
    csv_path = Path(metrics_csv_path)
    columns = _read_metrics_csv(csv_path)
    epoch = columns["epoch"]
    losses = [name for name in columns if "loss" in name]
    scores = [name for name in columns if name.startswith("val_") and "loss" not in name]
    if not losses and not scores:
        raise InputError(csv_path, "no loss or val_* columns to plot")

    fig = new_figure(10.0, 4.0)
    panels = [
        (fig.add_subplot(1, 2, 1), losses, "Loss", "Training and validation loss"),
        (fig.add_subplot(1, 2, 2), scores, "Score", "Validation scores"),
    ]
    for ax, names, ylabel, title in panels:
        for name in names:
            x, y = _per_epoch(epoch, columns[name])
            if x.size:
                ax.plot(x, y, marker="o" if x.size < 30 else None, markersize=3, linewidth=1.5, label=name)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, linewidth=0.4, alpha=0.5)
        if ax.lines:
            ax.legend(fontsize=8)
            locator = ax.xaxis.get_major_locator()
            if isinstance(locator, MaxNLocator):  # the default AutoLocator is one
                locator.set_params(integer=True)
        else:
            ax.text(0.5, 0.5, "no values logged", transform=ax.transAxes, ha="center", color="0.5")
    return save_figure(fig, path)


def plot_prediction_panel(
    image: np.ndarray,
    pred: np.ndarray,
    target: np.ndarray | None,
    class_names: Sequence[str],
    palette: np.ndarray,
    path: str | os.PathLike[str],
    title: str | None = None,
    alpha: float = 0.45,
) -> Path:
    """Image, predicted and reference label maps side by side.

    Parameters
    ----------
    image
        ``(H, W)`` grey or ``(H, W, 3)`` RGB, any dtype.
    pred, target
        ``(H, W)`` integer class-index maps; ``target`` may be ``None``
        (unlabelled image, two panels).
    class_names
        Name of each class; the legend lists the classes present (class 0
        is shown uncoloured).
    palette
        ``(K, 3)`` uint8 colours (see :func:`retinaseg.report.palette.palette_for`).
    path
        Output PNG file.
    title
        Figure title, e.g. the sample id.
    alpha
        Opacity of the label colours.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    panels = [("Image", to_rgb8(image)), ("Prediction", overlay(image, pred, palette, alpha))]
    if target is not None:
        panels.append(("Reference", overlay(image, target, palette, alpha)))
    present = np.unique(np.concatenate([np.ravel(pred)] + ([] if target is None else [np.ravel(target)])))
    shown = [int(k) for k in present if k != 0]

    height, width = panels[0][1].shape[:2]
    panel_in = 4.0
    fig = new_figure(panel_in * len(panels), panel_in * height / width + 0.9)
    for k, (name, rgb) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
    if shown:
        fig.legend(
            handles=legend_handles(class_names, palette, shown),
            loc="outside lower center",
            ncol=min(len(shown), 6),
            fontsize=8,
            frameon=False,
        )
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)

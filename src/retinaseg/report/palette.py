"""Colours for label maps, and colour overlays of label maps on images.

A palette is a ``(K, 3)`` uint8 array: row ``k`` is the RGB colour of class
``k``. The retinal-layer colours follow the Okabe-Ito palette (distinguishable
with the common colour-vision deficiencies), with black for the vitreous,
grey for the choroid and white for fluid, so that fluid stands out from every
layer by brightness alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from retinaseg.conventions import DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES, DUKE_LAYER_CLASSES
from retinaseg.errors import InputError

_DUKE_COLOURS: dict[str, tuple[int, int, int]] = {
    "vitreous": (0, 0, 0),
    "RNFL": (230, 159, 0),  # Okabe-Ito orange
    "GCL+IPL": (86, 180, 233),  # sky blue
    "INL": (0, 158, 115),  # bluish green
    "OPL": (240, 228, 66),  # yellow
    "ONL-ISM": (0, 114, 178),  # blue
    "ISE": (213, 94, 0),  # vermillion
    "OS-RPE": (204, 121, 167),  # reddish purple
    "choroid": (110, 110, 110),
    "fluid": (255, 255, 255),
}

#: ``(10, 3)`` uint8 colours of the Duke DME classes, indexed by label value.
LAYER_PALETTE: np.ndarray = np.array([_DUKE_COLOURS[name] for name in DUKE_CLASS_NAMES], dtype=np.uint8)

#: ``(2, 3)`` uint8 colours of a binary mask: background black, foreground
#: (e.g. vessel) white, as in the DRIVE / CHASE_DB1 reference images.
BINARY_PALETTE: np.ndarray = np.array([(0, 0, 0), (255, 255, 255)], dtype=np.uint8)


def palette_for(class_names: Sequence[str]) -> np.ndarray:
    """A palette for any list of classes.

    Parameters
    ----------
    class_names
        Name of each class, index = label value.

    Returns
    -------
    numpy.ndarray
        ``(K, 3)`` uint8. The fixed Duke colours when every name is a Duke
        class name (so a subset of layers keeps its colours);
        :data:`BINARY_PALETTE` for two classes; otherwise black for class 0
        and the ``tab10`` (up to 11 classes) or ``tab20`` (up to 21) colours,
        or evenly spaced ``turbo`` colours beyond that.
    """
    names = list(class_names)
    if names and all(name in _DUKE_COLOURS for name in names):
        return np.array([_DUKE_COLOURS[name] for name in names], dtype=np.uint8)
    if len(names) == 2:
        return BINARY_PALETTE.copy()
    n_fg = max(len(names) - 1, 0)
    if n_fg <= 10:
        colours = _listed_colours("tab10")[:n_fg]
    elif n_fg <= 20:
        colours = _listed_colours("tab20")[:n_fg]
    else:
        colours = matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, n_fg))[:, :3]
    rgb = np.rint(np.asarray(colours, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)
    return np.concatenate([np.zeros((min(len(names), 1), 3), dtype=np.uint8), rgb])


def boundary_palette(boundary_names: Sequence[str], class_names: Sequence[str], palette: np.ndarray) -> np.ndarray:
    """Colour of each layer-boundary line, consistent with the label colours.

    Parameters
    ----------
    boundary_names
        Names of the boundaries, top to bottom.
    class_names, palette
        Name and ``(K, 3)`` uint8 colour of each label value.

    Returns
    -------
    numpy.ndarray
        ``(B, 3)`` uint8. When every boundary is a Duke boundary
        (:data:`~retinaseg.conventions.DUKE_BOUNDARY_NAMES`) whose layer
        below it is one of ``class_names``, a line has the colour of that
        layer, so that lines, label colours and legend agree (ILM in the
        RNFL colour, ..., BM in the choroid colour); otherwise distinct
        colours from :func:`palette_for`.
    """
    layer_of = {b: DUKE_CLASS_NAMES[c] for b, c in zip(DUKE_BOUNDARY_NAMES, DUKE_LAYER_CLASSES)}
    names = list(class_names)
    if all(layer_of.get(name) in names for name in boundary_names):
        return np.asarray(palette, dtype=np.uint8)[[names.index(layer_of[name]) for name in boundary_names]].reshape(-1, 3)
    return palette_for(["-", *boundary_names])[1:]


def _listed_colours(name: str) -> np.ndarray:
    """The colours of a listed (qualitative) matplotlib colour map, one row each."""
    cmap = matplotlib.colormaps[name]
    assert isinstance(cmap, ListedColormap), f"{name} is not a listed colour map"
    return np.asarray(cmap.colors, dtype=np.float64)


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Colour image of a label map.

    Parameters
    ----------
    label
        ``(H, W)`` integer class-index map with values ``< len(palette)``.
    palette
        ``(K, 3)`` uint8 colours.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8, pixel = ``palette[label]``.
    """
    label = np.asarray(label)
    palette = np.asarray(palette, dtype=np.uint8)
    if not np.issubdtype(label.dtype, np.integer) and label.dtype != bool:
        raise InputError("label", f"must be an integer class-index map, got dtype {label.dtype}")
    if label.size and (label.min() < 0 or label.max() >= len(palette)):
        raise InputError(
            "label",
            f"values {int(label.min())}..{int(label.max())} outside the {len(palette)}-colour palette",
        )
    return palette[label.astype(np.intp)]


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Display copy of an image as 8-bit RGB.

    Parameters
    ----------
    image
        ``(H, W)`` grey or ``(H, W, 3)`` RGB, any numeric dtype.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8. uint8 input is kept as is; any other dtype is
        stretched linearly from its minimum to its maximum onto 0..255
        (a constant image becomes black). For display only.
    """
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise InputError("image", f"must be (H, W) grey or (H, W, 3) RGB, got shape {image.shape}")
    if image.dtype != np.uint8:
        values = image.astype(np.float64)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scale = 255.0 / (high - low) if high > low else 0.0
        image = np.rint((values - low) * scale).astype(np.uint8)
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def overlay(
    image: np.ndarray,
    label: np.ndarray,
    palette: np.ndarray,
    alpha: float = 0.4,
    skip_background: bool = True,
) -> np.ndarray:
    """Blend the colours of a label map over an image.

    Parameters
    ----------
    image
        ``(H, W)`` grey or ``(H, W, 3)`` RGB, any dtype (see :func:`to_rgb8`).
    label
        ``(H, W)`` integer class-index map.
    palette
        ``(K, 3)`` uint8 colours.
    alpha
        Opacity of the label colours, 0 (invisible) to 1 (opaque).
    skip_background
        Leave class-0 pixels as the plain image.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8, ``round((1 - alpha) * image + alpha * colour)``
        on blended pixels.
    """
    rgb = to_rgb8(image)
    label = np.asarray(label)
    if label.shape != rgb.shape[:2]:
        raise InputError("label", f"shape {label.shape} does not match image shape {rgb.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise InputError("alpha", f"must lie in [0, 1], got {alpha}")
    blended = np.rint((1.0 - alpha) * rgb + alpha * colorize(label, palette)).astype(np.uint8)
    if skip_background:
        background = label == 0
        blended[background] = rgb[background]
    return blended


def legend_handles(class_names: Sequence[str], palette: np.ndarray, classes: Sequence[int] | None = None) -> list[Patch]:
    """Matplotlib legend entries (coloured squares) for the given classes.

    Parameters
    ----------
    class_names
        Name of each class.
    palette
        ``(K, 3)`` uint8 colours.
    classes
        Class indices to list; ``None`` lists all.

    Returns
    -------
    list of matplotlib.patches.Patch
        Pass to ``Axes.legend(handles=...)`` or ``Figure.legend``.
    """
    palette = np.asarray(palette, dtype=np.uint8)
    indices = range(len(class_names)) if classes is None else classes
    return [Patch(facecolor=palette[k] / 255.0, edgecolor="0.4", linewidth=0.5, label=class_names[k]) for k in indices]


def legend_image(class_names: Sequence[str], palette: np.ndarray, dpi: int = 100) -> np.ndarray:
    """Picture of the legend: one coloured square and name per class.

    Parameters
    ----------
    class_names
        Name of each class, index = label value.
    palette
        ``(K, 3)`` uint8 colours.
    dpi
        Resolution of the rendering (pixels per inch).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB on a white background, classes listed top
        to bottom in label order.
    """
    longest = max((len(name) for name in class_names), default=1)
    fig = Figure(figsize=(0.9 + 0.09 * longest, 0.15 + 0.27 * max(len(class_names), 1)), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    fig.legend(handles=legend_handles(class_names, palette), loc="center", frameon=False, fontsize=10)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()

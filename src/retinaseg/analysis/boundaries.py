"""Layer boundaries of OCT B-scans recovered from label maps, and their errors.

A B-scan label map assigns each pixel to a retinal layer, ordered from the
vitreous (top rows) to the choroid (bottom rows). A layer boundary is a
curve with one row position per column (A-scan). The usual accuracy measure
for layer segmentation is the mean absolute boundary error along the A-scans,
in pixels or in micrometres along the axial direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.duke import DUKE_CLASS_NAMES, FLUID_CLASS

#: Layer classes of the Duke DME label maps (Chiu et al. 2015, ReLayNet
#: convention), top to bottom: RNFL, GCL+IPL, INL, OPL, ONL-ISM, ISE, OS-RPE,
#: choroid (1..8). Boundary ``k`` is the upper edge of class ``k``.
DUKE_LAYER_CLASSES: tuple[int, ...] = tuple(
    range(DUKE_CLASS_NAMES.index("RNFL"), DUKE_CLASS_NAMES.index("choroid") + 1)
)

#: Fluid class of the Duke DME label maps; it overrides the layer labels.
DUKE_FLUID_CLASS = FLUID_CLASS

#: Name of the upper edge of each class in :data:`DUKE_LAYER_CLASSES`.
DUKE_BOUNDARY_NAMES: list[str] = [
    "ILM",
    "NFL/GCL",
    "IPL/INL",
    "INL/OPL",
    "OPL/ONL",
    "ISM/ISE",
    "ISE/OS",
    "BM",
]


def boundaries_from_labels(
    label: np.ndarray,
    layer_classes: Sequence[int],
    fluid_classes: Sequence[int] = (),
) -> np.ndarray:
    """Upper edge of each layer in each column of a label map.

    Parameters
    ----------
    label
        ``(H, W)`` integer class-index map, row 0 at the top (vitreous side).
    layer_classes
        Layer classes in top-to-bottom order, e.g. :data:`DUKE_LAYER_CLASSES`.
        List every layer down to the deepest boundary wanted.
    fluid_classes
        Classes that overwrite layer labels (e.g. :data:`DUKE_FLUID_CLASS`).

    Returns
    -------
    numpy.ndarray
        ``(len(layer_classes), W)`` float64 row index (pixels, 0 = top row)
        of the upper edge of each layer; NaN where it cannot be read.

    Notes
    -----
    Boundary ``i`` is the first row, from the top, whose class is
    ``layer_classes[i]`` *or any layer listed after it*. Where the layer is
    present this is the top row of that layer. Where it has zero thickness
    (the boundary coincides with the next one, e.g. OPL in 3317 of the 58168
    Duke DME columns, or the inner layers at the foveal pit) the boundary is
    still defined and lies at the top of the next layer, instead of being
    reported missing.

    Fluid pixels are skipped in the search, and a boundary whose first row
    has a fluid pixel directly above it is set to NaN: the fluid covers the
    place where the boundary runs, and where exactly it runs under the fluid
    is unknown. (Filling fluid with the layer above or below would move the
    boundary to the bottom or the top of the fluid pocket, a bias as large as
    the pocket.) In the Duke DME reference maps this hides 0.4 % of all
    column-boundary pairs, 2.3 % of the OPL/ONL columns. NaN is also returned where no
    listed layer lies at or below the boundary in that column.
    """
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise InputError("label", f"must be an (H, W) integer label map, got {label.dtype} {label.shape}")
    if label.size and label.min() < 0:
        raise InputError("label", f"class values must be >= 0, found {int(label.min())}")
    layers = np.asarray(layer_classes, dtype=np.int64)
    if layers.size == 0 or layers.min() < 0:
        raise InputError("layer_classes", f"need one or more classes >= 0, got {list(layer_classes)}")
    # depth[r, c] = position of the pixel's class in layer_classes, -1 if not a layer
    lut = np.full(max(int(label.max(initial=0)), int(layers.max())) + 1, -1, dtype=np.int64)
    lut[layers] = np.arange(layers.size)
    depth = lut[label]
    at_or_below = depth[None, :, :] >= np.arange(layers.size)[:, None, None]  # (n, H, W)
    first = at_or_below.argmax(axis=1)
    found = at_or_below.any(axis=1)
    above = label[np.maximum(first - 1, 0), np.arange(label.shape[1])]
    hidden = (first > 0) & np.isin(above, fluid_classes)
    return np.where(found & ~hidden, first, np.nan).astype(np.float64)


def boundary_mad(
    pred_boundaries: np.ndarray,
    true_boundaries: np.ndarray,
    axial_um: float | None = None,
) -> dict[str, np.ndarray]:
    """Mean absolute difference between predicted and reference boundaries.

    Parameters
    ----------
    pred_boundaries, true_boundaries
        ``(n, W)`` row positions in pixels, as from
        :func:`boundaries_from_labels`, NaN where unknown. To pool several
        B-scans, concatenate them along the column axis.
    axial_um
        Axial pixel size in micrometres (3.87 for Spectralis); adds
        ``"mad_um"``.

    Returns
    -------
    dict
        ``"mad_px"``: ``(n,)`` float64 mean absolute difference in pixels over
        the columns where both are known (NaN if there are none);
        ``"n_columns"``: ``(n,)`` int64 number of such columns;
        ``"mad_um"``: ``"mad_px"`` times ``axial_um``, when given.
    """
    pred = np.asarray(pred_boundaries, dtype=np.float64)
    true = np.asarray(true_boundaries, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise InputError(
            "pred_boundaries",
            f"shape {pred.shape} must be (n, W) and match the reference shape {true.shape}",
        )
    error = np.abs(pred - true)
    valid = np.isfinite(error)
    n_columns = valid.sum(axis=1)
    total = np.where(valid, error, 0.0).sum(axis=1)
    mad_px = np.full(n_columns.shape, np.nan)
    np.divide(total, n_columns, out=mad_px, where=n_columns > 0)
    out = {"mad_px": mad_px, "n_columns": n_columns.astype(np.int64)}
    if axial_um is not None:
        out["mad_um"] = mad_px * axial_um
    return out

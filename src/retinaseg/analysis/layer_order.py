"""OCT class maps rebuilt from their anatomically ordered layer surfaces.

A network's class map of a B-scan can hold what no retina has: islands of a
deep layer in the vitreous, a piece of choroid above the nerve fibre layer,
layers out of order. Read literally (the top row of each layer, as
:func:`~retinaseg.analysis.boundaries.boundaries_from_labels` does to score),
one such island moves every boundary of its column to it. ``analyze`` never
reads maps so: it measures the ordered surfaces of
:func:`~retinaseg.analysis.boundaries.layer_surfaces`. With a model's
``evaluation.ordered_layers`` set, ``predict`` and ``evaluate`` give and score
the class maps those surfaces describe (:func:`ordered_layer_map`), so their
maps, their scores and ``analyze``'s thickness values agree (up to columns at the retina's edges: ``analyze``
also knows the device's padding and asks for 50 µm of retina in a column, these 10 pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retinaseg.analysis.boundaries import layer_surfaces
from retinaseg.models.trained import TrainedModel


def ordered_layer_map(
    classes: np.ndarray,
    layer_classes: Sequence[int],
    fluid_classes: Sequence[int] = (),
    *,
    above_class: int = 0,
    min_retina_px: float = 10.0,
) -> np.ndarray:
    """Class maps rebuilt, column by column, from their ordered layer surfaces.

    Parameters
    ----------
    classes
        ``(H, W)`` or ``(N, H, W)`` integer class maps, row 0 at the top.
    layer_classes
        Layer classes top to bottom; the last one reaches the bottom of the
        image (as the choroid of the Duke maps does).
    fluid_classes
        Fluid classes, kept where the input has them inside the retina.
    above_class
        Class painted above the first surface (the vitreous).
    min_retina_px
        As for :func:`~retinaseg.analysis.boundaries.layer_surfaces`.

    Returns
    -------
    numpy.ndarray
        Class maps of the input's shape and dtype. Where a column's surfaces
        are all known: ``above_class`` above the first surface, then each
        layer from its surface down to the next one, the last layer to the
        bottom; input fluid pixels between the first surface and the last
        one stay fluid. Columns with an unknown surface (no retina, or
        hidden) keep the input's classes.
    """
    classes = np.asarray(classes)
    stack = classes[None] if classes.ndim == 2 else classes
    surfaces = layer_surfaces(stack, layer_classes, fluid_classes, min_retina_px=min_retina_px)  # (N, L, W)
    rows = np.arange(stack.shape[1])[None, :, None]
    depth = np.zeros(stack.shape, dtype=np.int16)  # surfaces at or above each pixel: 0 above the retina
    for surface in np.moveaxis(surfaces, 1, 0):
        depth += rows >= surface[:, None, :]  # False where the surface is NaN
    ordered = np.asarray([above_class, *layer_classes], dtype=stack.dtype)[depth]
    in_retina = (depth >= 1) & (depth < len(layer_classes))
    ordered = np.where(in_retina & np.isin(stack, list(fluid_classes)), stack, ordered)
    known = np.isfinite(surfaces).all(axis=1)[:, None, :]  # (N, 1, W)
    result = np.where(known, ordered, stack)
    return result[0] if classes.ndim == 2 else result


def model_class_map(trained: TrainedModel, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """``(H, W)`` classes of ``(K, H, W)`` probabilities as the model gives them (:meth:`TrainedModel.class_map`).

    With ``evaluation.ordered_layers``, rebuilt from the ordered layer
    surfaces (:func:`ordered_layer_map`).
    """
    classes = trained.class_map(probabilities, threshold)
    settings = trained.evaluation
    if not settings.ordered_layers:
        return classes
    above = settings.above_retina_class(len(trained.class_names))
    assert above is not None  # EvaluationSettings refuses ordered layers without one
    return ordered_layer_map(classes, settings.boundary_classes, settings.fluid_classes, above_class=above)

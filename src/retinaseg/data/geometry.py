"""Resizing, padding and cropping that keep images, labels and masks aligned.

Pixel-centre convention: pixel ``i`` covers ``[i, i + 1)`` and its centre is
``i + 0.5``. Both :func:`resize_image` (OpenCV bilinear) and
:func:`resize_label` use it, so a resized label still lies on its resized
image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import cv2
import numpy as np

from retinaseg.errors import InputError

PadMode = Literal["reflect", "constant"]
ArrayLike = TypeVar("ArrayLike")


@dataclass(frozen=True)
class PadSpec:
    """How :func:`pad_to_shape` padded an array, to undo it exactly.

    Padding is added at the bottom and right only, so pixel ``(0, 0)`` and
    every row/column coordinate (e.g. layer boundary rows) are unchanged.

    Attributes
    ----------
    original_shape
        ``(H, W)`` before padding.
    padded_shape
        ``(H, W)`` after padding.
    axes
        The row and column axes as given when padding. Negative axes
        (``(-2, -1)``) also fit arrays with more leading axes, e.g. the
        ``(B, K, H, W)`` network output of a padded ``(C, H, W)`` input.
    """

    original_shape: tuple[int, int]
    padded_shape: tuple[int, int]
    axes: tuple[int, int] = (0, 1)


def resize_image(image: np.ndarray, shape: tuple[int, int], *, antialias: bool = True) -> np.ndarray:
    """Resize an image with bilinear interpolation.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` array.
    shape
        Target ``(h, w)`` in pixels.
    antialias
        When shrinking along both axes, average over each output pixel's
        footprint (OpenCV ``INTER_AREA``) instead of sampling bilinearly, so
        thin structures such as vessels are not lost to aliasing.

    Returns
    -------
    numpy.ndarray
        float32 ``(h, w)`` or ``(h, w, C)``.
    """
    h, w = check_size(shape)
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise InputError("image", f"expected (H, W) or (H, W, C), got shape {image.shape}")
    shrinking = h <= image.shape[0] and w <= image.shape[1]
    interpolation = cv2.INTER_AREA if antialias and shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(image.astype(np.float32), (w, h), interpolation=interpolation)
    # OpenCV drops a trailing axis of length 1.
    return resized.reshape((h, w, *image.shape[2:]))


def resize_label(label: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a label map or mask with nearest-neighbour sampling.

    Each output pixel copies the input pixel under its centre, so the result
    can only hold values present in the input, for any dtype (bool, uint8,
    int64). Resizing by an integer factor and back returns the input exactly.

    Parameters
    ----------
    label
        ``(H, W)`` or ``(H, W, C)`` array.
    shape
        Target ``(h, w)`` in pixels.

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` or ``(h, w, C)`` array of the input's dtype.
    """
    h, w = check_size(shape)
    label = np.asarray(label)
    if label.ndim not in (2, 3):
        raise InputError("label", f"expected (H, W) or (H, W, C), got shape {label.shape}")
    # A pure gather cannot create values, unlike any interpolating resize.
    rows = _nearest_source(h, label.shape[0])
    cols = _nearest_source(w, label.shape[1])
    return label[rows[:, None], cols[None, :]]


def resize_channels_first(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a channel-first network input with :func:`resize_image` (area when shrinking, else bilinear).

    Training (:func:`~retinaseg.data.dataset.resize_samples`) and inference
    (:meth:`~retinaseg.models.trained.TrainedModel.predict`) both resize
    through here, so a model sees resized inputs exactly as it was trained on.

    Parameters
    ----------
    image
        ``(C, H, W)`` array.
    shape
        Target ``(h, w)`` in pixels.

    Returns
    -------
    numpy.ndarray
        float32 ``(C, h, w)``, contiguous.
    """
    if np.ndim(image) != 3:
        raise InputError("image", f"expected (C, H, W), got shape {np.shape(image)}")
    return np.ascontiguousarray(resize_image(np.asarray(image).transpose(1, 2, 0), shape).transpose(2, 0, 1))


def pad_to_shape(
    array: np.ndarray,
    shape: tuple[int, int],
    mode: PadMode = "reflect",
    value: float = 0,
    *,
    axes: tuple[int, int] = (0, 1),
) -> tuple[np.ndarray, PadSpec]:
    """Pad an array at the bottom and right to at least ``shape``.

    Parameters
    ----------
    array
        Array whose ``axes`` are rows and columns: ``(H, W)`` and
        ``(H, W, C)`` with ``axes=(0, 1)``, channel-first ``(C, H, W)`` or
        ``(B, C, H, W)`` with ``axes=(-2, -1)``.
    shape
        Minimum ``(h, w)``; axes already at least that long are not padded.
    mode
        ``"reflect"`` (mirror without repeating the edge pixel, repeated as
        often as needed for pads longer than the array) or ``"constant"``.
    value
        Fill value for ``"constant"``.
    axes
        The row and column axes.

    Returns
    -------
    padded : numpy.ndarray
        The padded array, same dtype.
    spec : PadSpec
        What :func:`crop_to_original` needs to undo the padding.
    """
    array = np.asarray(array)
    row_axis, col_axis = _normalise_axes(axes, array.ndim)
    h, w = array.shape[row_axis], array.shape[col_axis]
    target = (max(h, int(shape[0])), max(w, int(shape[1])))
    widths = [(0, 0)] * array.ndim
    widths[row_axis] = (0, target[0] - h)
    widths[col_axis] = (0, target[1] - w)
    if mode == "reflect":
        padded = np.pad(array, widths, mode="reflect")
    elif mode == "constant":
        padded = np.pad(array, widths, mode="constant", constant_values=value)
    else:
        raise InputError("pad mode", f"unknown padding mode {mode!r}; use reflect or constant")
    return padded, PadSpec(original_shape=(h, w), padded_shape=target, axes=(int(axes[0]), int(axes[1])))


def pad_to_multiple(
    array: np.ndarray,
    multiple: int,
    mode: PadMode = "reflect",
    value: float = 0,
    *,
    axes: tuple[int, int] = (0, 1),
) -> tuple[np.ndarray, PadSpec]:
    """Pad at the bottom and right so rows and columns are multiples of ``multiple``.

    Networks that downsample ``k`` times need sizes divisible by ``2**k``.
    Undo with :func:`crop_to_original`. See :func:`pad_to_shape` for the
    parameters.

    Raises
    ------
    InputError
        ``multiple`` is not a positive integer.
    """
    if int(multiple) != multiple or multiple < 1:
        raise InputError("multiple", f"must be a positive integer, got {multiple!r}")
    array = np.asarray(array)
    row_axis, col_axis = _normalise_axes(axes, array.ndim)
    m = int(multiple)
    target = (-(-array.shape[row_axis] // m) * m, -(-array.shape[col_axis] // m) * m)
    return pad_to_shape(array, target, mode, value, axes=axes)


def crop_to_original(array: ArrayLike, spec: PadSpec) -> ArrayLike:
    """Undo :func:`pad_to_shape` / :func:`pad_to_multiple`.

    Parameters
    ----------
    array
        NumPy array or torch tensor whose ``spec.axes`` have the padded size,
        e.g. a network output with a different number of channels (slicing
        keeps it a tensor and on its device).
    spec
        The :class:`PadSpec` returned when padding.

    Returns
    -------
    Same type as ``array``
        A view with rows and columns ``[0, H)`` and ``[0, W)`` of the original.

    Raises
    ------
    InputError
        The array's row/column sizes are not the padded ones.
    """
    shape = tuple(array.shape)  # type: ignore[attr-defined]
    row_axis, col_axis = _normalise_axes(spec.axes, len(shape))
    got = (shape[row_axis], shape[col_axis])
    if got != spec.padded_shape:
        raise InputError("crop", f"array is {got[0]}x{got[1]} (HxW) but was padded to {spec.padded_shape}")
    index = [slice(None)] * len(shape)
    index[row_axis] = slice(0, spec.original_shape[0])
    index[col_axis] = slice(0, spec.original_shape[1])
    return array[tuple(index)]  # type: ignore[index]


def random_crop(
    image: np.ndarray,
    label: np.ndarray | None,
    fov: np.ndarray | None,
    size: int | tuple[int, int],
    rng: np.random.Generator,
    *,
    foreground_prob: float = 0.0,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Cut the same random patch out of an image, its label and its FOV mask.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` array.
    label, fov
        ``(H, W)`` arrays or ``None``.
    size
        Patch ``(h, w)`` (or one int for a square). Images smaller than that
        are first reflect-padded at the bottom/right (all three arrays alike,
        so the padded part is a consistent mirror image).
    rng
        Source of randomness; the same generator state gives the same patch.
    foreground_prob
        Probability of centring the patch on a random foreground pixel
        (``label > 0``, inside ``fov`` when given) instead of a uniformly
        random position. Helps sampling thin, rare structures such as
        vessels. Falls back to uniform when there is no foreground.

    Returns
    -------
    tuple
        ``(image, label, fov)`` patches, ``None`` where the input was ``None``.
    """
    h, w = (size, size) if isinstance(size, int | float | np.number) else size
    h, w = check_size((h, w))
    if not 0.0 <= foreground_prob <= 1.0:
        raise InputError("foreground_prob", f"must lie in [0, 1], got {foreground_prob}")
    arrays = [a for a in (image, label, fov) if a is not None]
    for a in arrays[1:]:
        if a.shape[:2] != image.shape[:2]:
            raise InputError("random_crop", f"mask shape {a.shape[:2]} does not match image shape {image.shape[:2]}")
    image = pad_to_shape(image, (h, w))[0]
    label, fov = (None if a is None else pad_to_shape(a, (h, w))[0] for a in (label, fov))
    top, left = _crop_origin(image.shape[:2], (h, w), label, fov, rng, foreground_prob)
    window = (slice(top, top + h), slice(left, left + w))
    label, fov = (None if a is None else a[window].copy() for a in (label, fov))
    return image[window].copy(), label, fov


def _crop_origin(
    shape: tuple[int, int],
    size: tuple[int, int],
    label: np.ndarray | None,
    fov: np.ndarray | None,
    rng: np.random.Generator,
    foreground_prob: float,
) -> tuple[int, int]:
    max_top, max_left = shape[0] - size[0], shape[1] - size[1]
    if label is not None and foreground_prob > 0 and rng.random() < foreground_prob:
        foreground = label > 0 if fov is None else (label > 0) & fov.astype(bool)
        candidates = np.flatnonzero(foreground)
        if candidates.size:
            row, col = np.unravel_index(rng.choice(candidates), shape)
            return (
                int(np.clip(row - size[0] // 2, 0, max_top)),
                int(np.clip(col - size[1] // 2, 0, max_left)),
            )
    return int(rng.integers(0, max_top + 1)), int(rng.integers(0, max_left + 1))


def _nearest_source(n_out: int, n_in: int) -> np.ndarray:
    centres = (np.arange(n_out) + 0.5) * (n_in / n_out)
    return np.minimum(np.floor(centres).astype(np.intp), n_in - 1)


def check_size(shape: Sequence[int]) -> tuple[int, int]:
    """``shape`` as an ``(h, w)`` tuple of two positive integers (a list, as files store it, included).

    Raises
    ------
    InputError
        Not two positive integers.
    """
    if len(shape) != 2 or any(int(s) != s or s < 1 for s in shape):
        raise InputError("size", f"expected two positive integers (h, w), got {shape!r}")
    return int(shape[0]), int(shape[1])


def _normalise_axes(axes: tuple[int, int], ndim: int) -> tuple[int, int]:
    if len(axes) != 2 or any(not -ndim <= int(a) < ndim for a in axes):
        raise InputError("axes", f"invalid row/column axes {axes!r} for a {ndim}-D array")
    row_axis, col_axis = (int(a) % ndim for a in axes)
    if row_axis == col_axis:
        raise InputError("axes", f"row and column axes must differ, got {axes!r}")
    return row_axis, col_axis

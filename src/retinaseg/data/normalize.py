"""Intensity normalisation, grey conversion and contrast enhancement.

All functions return new arrays and leave their inputs untouched. Colour
images are ``(H, W, C)`` (channels last); statistics of
:func:`normalize_image` are computed over all channels jointly, so the
relative balance of the channels is kept.

The usual preprocessing of fundus photos for vessel segmentation in the
literature is the green channel (vessels have the most contrast there), CLAHE
and a gamma curve; here that is :func:`to_grey`, :func:`clahe` and
:func:`normalize_image`, with gamma left to the augmentation
(:mod:`retinaseg.data.augment`).
"""

from __future__ import annotations

from typing import Literal, get_args

import cv2
import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.display import luminance

NormalizeMethod = Literal["percentile", "minmax", "zscore", "none"]
NORMALIZE_METHODS: tuple[str, ...] = get_args(NormalizeMethod)

GreyChannel = Literal["green", "red", "blue", "luminance"]
_RGB_INDEX = {"red": 0, "green": 1, "blue": 2}


def normalize_image(
    image: np.ndarray,
    method: str = "percentile",
    *,
    low_pct: float = 1.0,
    high_pct: float = 99.0,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Rescale intensities to a standard range.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` array of any integer, bool or float dtype.
    method
        ``"percentile"``: clip to the ``low_pct``/``high_pct`` percentiles,
        then scale that range to [0, 1] (robust to a few saturated pixels).
        ``"minmax"``: scale the minimum..maximum to [0, 1].
        ``"zscore"``: subtract the mean, divide by the standard deviation.
        ``"none"``: only cast to float32; integer dtypes are divided by the
        largest value of their dtype (uint8 by 255, uint16 by 65535) so the
        result lies in [0, 1], floats are kept as they are.
    low_pct, high_pct
        Percentiles (0-100) used by ``"percentile"``.
    mask
        Optional ``(H, W)`` bool array: statistics are computed only over
        these pixels (e.g. a fundus field of view, so the black surround does
        not count), then applied to the whole image.

    Returns
    -------
    numpy.ndarray
        float32 array of the input's shape. A constant image (or one whose
        percentile range is empty) gives zeros rather than NaN.

    Raises
    ------
    InputError
        Unknown ``method``, bad percentiles, an image that is not 2-D or 3-D,
        or a mask of the wrong shape or with no pixel set.
    """
    if method not in NORMALIZE_METHODS:
        raise InputError("normalize", f"unknown normalisation method {method!r}; use {', '.join(NORMALIZE_METHODS)}")
    _check_image(image)
    if method == "none":
        return _to_unit_float(image)
    values = image.astype(np.float64)
    stats = values if mask is None else values[_check_mask(mask, image.shape[:2])]
    if method == "zscore":
        std = stats.std()
        centred = values - stats.mean()
        return (centred / std if std > 0 else np.zeros_like(centred)).astype(np.float32)
    if method == "minmax":
        low, high = stats.min(), stats.max()
    else:
        if not 0.0 <= low_pct < high_pct <= 100.0:
            raise InputError("normalize", f"percentiles must satisfy 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
        low, high = np.percentile(stats, [low_pct, high_pct])
    if high <= low:
        return np.zeros(image.shape, dtype=np.float32)
    return ((np.clip(values, low, high) - low) / (high - low)).astype(np.float32)


def to_grey(image: np.ndarray, channel: GreyChannel = "green") -> np.ndarray:
    """One grey channel of a colour image.

    Parameters
    ----------
    image
        ``(H, W, 3)`` RGB array (``(H, W)`` grey images are returned as a
        copy; ``(H, W, 1)`` is squeezed).
    channel
        ``"green"`` (the standard for retinal vessels: haemoglobin absorbs
        green light, so vessels are darkest against the background there),
        ``"red"``, ``"blue"`` or ``"luminance"`` (ITU-R BT.601 weights).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` array of the input's dtype; luminance of an integer image
        is rounded.

    Raises
    ------
    InputError
        Unknown channel, or an image that is neither grey nor 3-channel.
    """
    if channel not in (*_RGB_INDEX, "luminance"):
        raise InputError("channel", f"unknown channel {channel!r}; use green, red, blue or luminance")
    _check_image(image)
    if image.ndim == 2:
        return image.copy()
    if image.shape[2] == 1:
        return image[..., 0].copy()
    if image.shape[2] != 3:
        raise InputError("image", f"expected 1 or 3 channels, got {image.shape[2]}")
    if channel != "luminance":
        return image[..., _RGB_INDEX[channel]].copy()
    return luminance(image)


def clahe(image: np.ndarray, clip_limit: float = 2.0, tile_grid: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV).

    Parameters
    ----------
    image
        ``(H, W)`` uint8 grey image, or ``(H, W, 3)`` uint8 RGB (equalised on
        the lightness channel of CIE L*a*b* so colours do not shift).
    clip_limit
        Contrast limit per tile, relative to a uniform histogram.
    tile_grid
        Number of tiles along each axis.

    Returns
    -------
    numpy.ndarray
        uint8 array of the input's shape.

    Raises
    ------
    InputError
        Non-uint8 input, a wrong number of channels, or non-positive settings.
    """
    if image.dtype != np.uint8:
        raise InputError("image", f"CLAHE needs a uint8 image, got {image.dtype}; rescale it to 0-255 first")
    _check_image(image)
    if clip_limit <= 0 or tile_grid < 1:
        raise InputError("clahe", f"clip_limit must be > 0 and tile_grid >= 1, got {clip_limit}, {tile_grid}")
    equaliser = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile_grid), int(tile_grid)))
    if image.ndim == 2 or image.shape[2] == 1:
        return equaliser.apply(np.ascontiguousarray(image[..., 0] if image.ndim == 3 else image)).reshape(image.shape)
    if image.shape[2] != 3:
        raise InputError("image", f"expected 1 or 3 channels, got {image.shape[2]}")
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[..., 0] = equaliser.apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def _to_unit_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.bool_:
        return image.astype(np.float32)
    if np.issubdtype(image.dtype, np.integer):
        return (image / np.iinfo(image.dtype).max).astype(np.float32)
    return image.astype(np.float32)


def _check_image(image: np.ndarray) -> None:
    if image.ndim not in (2, 3) or image.size == 0:
        raise InputError("image", f"expected a non-empty (H, W) or (H, W, C) array, got shape {image.shape}")


def _check_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise InputError("mask", f"mask shape {mask.shape} does not match image shape {shape}")
    if not mask.any():
        raise InputError("mask", "mask selects no pixel")
    return mask

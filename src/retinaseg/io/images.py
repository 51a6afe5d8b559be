"""Read and write 2-D images and label masks.

TIFF files are read with :mod:`tifffile`, every other format with Pillow.
Pixel values are never rescaled: 8-bit files give ``uint8``, 16-bit files give
``uint16``. Any file that cannot be decoded (missing, empty, truncated, not an
image, an unsupported layout) raises :class:`~retinaseg.errors.InputError`
naming the file.

Conventions of :func:`read_image`
---------------------------------
- Grey images are ``(H, W)``, colour images ``(H, W, 3)`` RGB.
- An alpha channel is dropped (grey+alpha -> grey, RGBA -> RGB).
- Palette images (e.g. GIF) become RGB, or grey when every palette colour is
  grey, so a grey GIF reads as ``(H, W)`` grey levels, not palette indices.
- 1-bit images become ``uint8`` with values ``{0, 255}`` (what Pillow's ``"L"``
  conversion gives), so they stay visible as pictures;
  :func:`read_label_image` turns them into ``{0, 1}``.
- Floating-point TIFFs are returned as ``float32``; other integer TIFF types
  are returned as ``uint16`` when all values fit ``0..65535``.
- 16-bit colour PNGs are refused: Pillow would silently cut them to 8 bits.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from retinaseg.errors import InputError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".bmp")
"""File suffixes (lower case) accepted by :func:`read_image`."""

_TIFF_SUFFIXES = (".tif", ".tiff")
_MAX_LISTED_VALUES = 10


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise InputError(path, "file not found")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(
            path, f"unsupported image type {path.suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")


def _drop_alpha(arr: np.ndarray, path: Path) -> np.ndarray:
    """Bring a decoded array to ``(H, W)`` or ``(H, W, 3)``."""
    if arr.ndim == 3 and arr.shape[2] in (1, 2):  # grey, grey+alpha
        arr = arr[..., 0]
    elif arr.ndim == 3 and arr.shape[2] == 4:  # RGBA
        arr = arr[..., :3]
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3):
        return np.ascontiguousarray(arr)
    raise InputError(path, f"expected one 2-D grey or RGB image, got an array of shape {arr.shape}")


def _normalise_dtype(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype in (np.uint8, np.uint16, np.float32):
        return arr
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < 0 or arr.max() > np.iinfo(np.uint16).max):
            raise InputError(path, f"{arr.dtype} pixel values outside 0..65535 are not supported")
        return arr.astype(np.uint16)
    raise InputError(path, f"unsupported pixel type {arr.dtype}")


def _read_tiff(path: Path) -> np.ndarray:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            arr = series.asarray()
            axes = series.axes
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputError(path, f"cannot read TIFF ({exc})") from exc
    # Samples-first (planar) RGB is moved last; other extra axes (pages,
    # z-stacks, time) are only accepted when they have length 1.
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    keep = [i for i, ax in enumerate(axes) if ax in "YXS" or arr.shape[i] != 1]
    arr = arr.reshape([arr.shape[i] for i in keep])
    return _normalise_dtype(_drop_alpha(arr, path), path)


_PILLOW_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError,
                  Image.DecompressionBombWarning, Image.DecompressionBombError)


def _pillow_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("P", "PA"):
        arr = np.asarray(image.convert("RGB"))
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            return arr[..., 0]
        return arr
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if image.mode in ("1", "L", "LA", "RGB", "RGBA", "I", "F"):
        return np.asarray(image)
    return np.asarray(image.convert("RGB"))  # CMYK, YCbCr, LAB, HSV


def _read_pillow(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        # A decompression-bomb warning is an error for us: such files are
        # either hostile or far larger than any retinal image.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except _PILLOW_ERRORS as exc:
            raise InputError(path, f"cannot read image ({exc})") from exc
    with image:
        # The tile list (holding the raw pixel layout) is emptied by load().
        rawmode = image.tile[0].args if image.tile and isinstance(image.tile[0].args, str) else ""
        if image.mode in ("RGB", "RGBA") and ";16" in rawmode:
            raise InputError(
                path, "16-bit colour PNG is not supported (Pillow reads it as 8-bit); save it as TIFF"
            )
        try:
            image.load()
        except _PILLOW_ERRORS as exc:
            raise InputError(path, f"cannot read image ({exc})") from exc
        arr = _pillow_array(image)
    return _normalise_dtype(_drop_alpha(arr, path), path)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one 2-D image file.

    Parameters
    ----------
    path
        A ``.png``, ``.tif``/``.tiff``, ``.gif``, ``.jpg``/``.jpeg`` or ``.bmp``
        file.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` grey or ``(H, W, 3)`` RGB, ``uint8`` or ``uint16`` as stored
        (``float32`` for floating-point TIFFs). See the module notes for
        alpha, palette and 1-bit files.

    Raises
    ------
    InputError
        The file is missing, empty, corrupt, truncated, not an image, or not
        a single 2-D image.
    """
    path = Path(path)
    _check_file(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        return _read_tiff(path)
    return _read_pillow(path)


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Height and width of an image file, from its header only.

    Parameters
    ----------
    path
        An image file with a suffix in :data:`IMAGE_SUFFIXES`.

    Returns
    -------
    tuple of int
        ``(height, width)`` in pixels.
    """
    path = Path(path)
    _check_file(path)
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                return (int(series.shape[series.axes.index("Y")]), int(series.shape[series.axes.index("X")]))
        with Image.open(path) as image:
            width, height = image.size
            return (int(height), int(width))
    except Exception as exc:  # header parsers raise many types for broken files
        raise InputError(path, f"cannot read image header ({exc})") from exc


def _binary_or_index(arr: np.ndarray, path: Path) -> np.ndarray:
    """Class indices of a mask read without an explicit value mapping."""
    values = np.unique(arr)
    if set(values.tolist()) <= {0, 255}:  # 8-bit binary masks (incl. 1-bit files)
        return (arr > 0).astype(np.uint8)
    if values.size and (values[0] < 0 or values[-1] > 255):
        raise InputError(path, f"mask values {_list(values)} do not fit 0..255; give value_to_class")
    return arr.astype(np.uint8)


def _list(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:_MAX_LISTED_VALUES].tolist())
    more = f", ... ({values.size} values)" if values.size > _MAX_LISTED_VALUES else ""
    return f"[{shown}{more}]"


def read_label_image(
    path: str | os.PathLike[str], value_to_class: dict[int, int] | None = None
) -> np.ndarray:
    """Read a label mask as a class-index map.

    Parameters
    ----------
    path
        Mask image file (any format :func:`read_image` reads).
    value_to_class
        Optional mapping from stored pixel value to class index (0..255).
        For colour masks whose channels differ, the stored value of a pixel
        is ``(R << 16) | (G << 8) | B``, e.g. ``0xFF0000`` for pure red.
        Without a mapping, a mask holding only ``{0, 255}`` (or ``{0, 1}``,
        or a 1-bit file) becomes ``{0, 1}``; any other mask is taken to store
        class indices directly.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` ``uint8`` class indices.

    Raises
    ------
    InputError
        The file cannot be read; the mask is colour and no mapping is given;
        it holds values missing from ``value_to_class`` (they are listed);
        or, without a mapping, values that are not integers in 0..255.
    """
    path = Path(path)
    arr = read_image(path)
    if arr.ndim == 3:
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            arr = arr[..., 0]
        elif value_to_class is None:
            raise InputError(path, "colour mask needs value_to_class (keys are 0xRRGGBB colour values)")
        else:
            rgb = arr.astype(np.int64)
            arr = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputError(path, "mask holds non-integer values")
        arr = arr.astype(np.int64)
    if value_to_class is None:
        return _binary_or_index(arr, path)

    values, inverse = np.unique(arr, return_inverse=True)
    missing = np.array([v for v in values.tolist() if v not in value_to_class])
    if missing.size:
        raise InputError(path, f"mask values {_list(missing)} are not in value_to_class {sorted(value_to_class)}")
    classes = np.array([value_to_class[v] for v in values.tolist()])
    if classes.size and (classes.min() < 0 or classes.max() > 255):
        raise InputError(path, "value_to_class maps to class indices outside 0..255")
    return classes.astype(np.uint8)[inverse].reshape(arr.shape)


def write_image_atomic(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an array as a PNG file, atomically.

    The PNG is written to a temporary file in the destination folder and then
    moved over ``path`` with :func:`os.replace`, so readers never see a
    half-written file.

    Parameters
    ----------
    path
        Destination ``.png`` file; its folder must exist.
    array
        ``(H, W)`` ``uint8``/``uint16``/``bool`` or ``(H, W, 3)`` ``uint8``.
        ``bool`` is written as 8-bit ``{0, 255}``.

    Raises
    ------
    InputError
        The array has another shape or dtype (16-bit colour included: Pillow
        cannot write it), or ``path`` does not end in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(path, "write_image_atomic writes PNG files only")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * np.uint8(255)
    grey = array.ndim == 2 and array.dtype in (np.uint8, np.uint16)
    rgb = array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8
    if not (grey or rgb):
        raise InputError(
            path, f"cannot write {array.dtype} array of shape {array.shape} as PNG "
            "(need (H, W) uint8/uint16 or (H, W, 3) uint8)"
        )
    image = Image.fromarray(np.ascontiguousarray(array))
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            # Level 1 is ~4x faster than Pillow's default for ~20% larger files.
            image.save(handle, format="PNG", compress_level=1)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise

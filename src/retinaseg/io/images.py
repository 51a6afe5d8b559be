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

Limits
------
The size an image declares in its header is checked against
:data:`~retinaseg.io.limits.MAX_IMAGE_PIXELS` and
:data:`~retinaseg.io.limits.MAX_IMAGE_SIDE` before any pixel is decoded, so a
decompression bomb (a small file declaring a huge image) is refused with one
line. Pipes, sockets and devices are refused before they are opened.

Label masks
-----------
:func:`read_label_image` returns class ids of a declared class list: values
are ids ``0..num_classes - 1``, or are mapped by ``value_to_class``; a binary
mask (two classes) may also store ``0/255``. Anything else (e.g. ``0/128/255``
without a mapping) is refused, listing the values found.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, ImageFile, UnidentifiedImageError

from retinaseg.errors import InputError, describe_exception
from retinaseg.io.atomic import atomic_path
from retinaseg.io.limits import (
    MAX_CLASSES,
    MAX_IMAGE_PIXELS,
    check_image_size,
    check_regular_file,
)
from retinaseg.numeric import is_integer

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".bmp")
"""File suffixes (lower case) accepted by :func:`read_image`."""

_TIFF_SUFFIXES = (".tif", ".tiff")
_MAX_LISTED_VALUES = 10


# Pillow opens files by content, whatever their name; only these decoders run.
_PILLOW_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF")
_MAX_SAMPLES = 4  # grey, grey+alpha, RGB, RGBA


def _check_file(path: Path) -> Path:
    check_regular_file(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InputError(path, f"unsupported image type {path.suffix!r}; expected one of {', '.join(IMAGE_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file")
    return path


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


def _open_tiff(path: Path) -> tifffile.TiffFile:
    try:
        return tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputError(path, f"cannot read TIFF ({describe_exception(exc)})") from exc


def _tiff_series(tif: tifffile.TiffFile, path: Path) -> tifffile.TiffPageSeries:
    """The first image series of an open TIFF, its declared shape checked before decoding."""
    try:
        series = tif.series[0]
        axes, shape = series.axes, tuple(series.shape)
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputError(path, f"cannot read TIFF ({describe_exception(exc)})") from exc
    if "Y" not in axes or "X" not in axes:
        raise InputError(path, f"expected a 2-D image, got a TIFF of shape {shape} (axes {axes})")
    check_image_size(shape[axes.index("Y")], shape[axes.index("X")], path)
    # Extra axes (pages, z-stacks, time) are only accepted with length 1.
    stacked = any(ax not in "YXS" and n != 1 for ax, n in zip(axes, shape))
    if stacked or ("S" in axes and shape[axes.index("S")] > _MAX_SAMPLES):
        raise InputError(path, f"expected one 2-D grey or RGB image, got a TIFF of shape {shape} (axes {axes})")
    return series


def _read_tiff(path: Path) -> np.ndarray:
    with _open_tiff(path) as tif:
        series = _tiff_series(tif, path)
        try:
            arr = series.asarray()
        except Exception as exc:  # tifffile raises many types for broken files
            raise InputError(path, f"cannot read TIFF ({describe_exception(exc)})") from exc
        axes = series.axes
    # Samples-first (planar) RGB is moved last; the other extra axes have length 1.
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    keep = [i for i, ax in enumerate(axes) if ax in "YXS"]
    arr = arr.reshape([arr.shape[i] for i in keep])
    return _normalise_dtype(_drop_alpha(arr, path), path)


_PILLOW_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError)


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


def _open_pillow(path: Path) -> ImageFile.ImageFile:
    """Open an image with Pillow, which reads only the header, and check its declared size."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about images above its own limit (above ours); the
            # check below refuses them with one line instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=_PILLOW_FORMATS)
    except Image.DecompressionBombError:
        # Raised while opening, before the size is known to us, for images
        # declaring more than twice Pillow's own limit (far above ours).
        raise InputError(
            path,
            f"image declares more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels; "
            f"at most {MAX_IMAGE_PIXELS // 1_000_000} Mpixel are read",
        ) from None
    except _PILLOW_ERRORS as exc:
        raise InputError(path, f"cannot read image ({describe_exception(exc)})") from exc
    try:
        check_image_size(image.height, image.width, path)
    except InputError:
        image.close()
        raise
    return image


def _read_pillow(path: Path) -> np.ndarray:
    with _open_pillow(path) as image:
        # The tile list (holding the raw pixel layout) is emptied by load().
        rawmode = image.tile[0].args if image.tile and isinstance(image.tile[0].args, str) else ""
        if image.mode in ("RGB", "RGBA") and ";16" in rawmode:
            raise InputError(path, "16-bit colour PNG is not supported (Pillow reads it as 8-bit); save it as TIFF")
        try:
            image.load()
        except _PILLOW_ERRORS as exc:
            raise InputError(path, f"cannot read image ({describe_exception(exc)})") from exc
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
        The file is missing, not a regular file, empty, corrupt, truncated,
        not an image, not a single 2-D image, or declares a size beyond the
        limits (see the module notes).
    """
    path = _check_file(Path(path))
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

    Raises
    ------
    InputError
        As :func:`read_image`, for everything its header tells.
    """
    path = _check_file(Path(path))
    if path.suffix.lower() in _TIFF_SUFFIXES:
        with _open_tiff(path) as tif:
            series = _tiff_series(tif, path)
            return (int(series.shape[series.axes.index("Y")]), int(series.shape[series.axes.index("X")]))
    with _open_pillow(path) as image:
        return (int(image.height), int(image.width))


def _list(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:_MAX_LISTED_VALUES].tolist())
    more = f", ... ({values.size} values)" if values.size > _MAX_LISTED_VALUES else ""
    return f"[{shown}{more}]"


def _is_binary(values: np.ndarray) -> bool:
    """Whether sorted unique mask values are those of a binary mask: 0/1 or 0/255."""
    return set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}


def check_value_to_class(value_to_class: object, num_classes: int | None = None, where: str = "value_to_class") -> dict[int, int]:
    """Return ``value_to_class`` if it maps stored mask values to class ids, else raise :class:`InputError`.

    Parameters
    ----------
    value_to_class
        Candidate mapping: keys are stored values (integers >= 0, colours as
        ``0xRRGGBB``), values are class ids (integers ``0..num_classes - 1``).
    num_classes
        Number of declared classes; default: any id a ``uint8`` label holds.
    where
        Option or file named in the message.

    Raises
    ------
    InputError
        Not a non-empty mapping of such integers (the first bad entry is named).
    """
    top = MAX_CLASSES if num_classes is None else num_classes
    if not isinstance(value_to_class, dict) or not value_to_class:
        raise InputError(where, f"must map stored mask values to class ids, e.g. {{0: 0, 255: 1}}; got {value_to_class!r:.60}")
    for value, class_id in value_to_class.items():
        if not (is_integer(value) and is_integer(class_id) and value >= 0 and 0 <= class_id < top):
            raise InputError(where, f"entry {value!r}: {class_id!r} must map an integer value >= 0 to a class id 0..{top - 1}")
    return value_to_class


def _stored_values(path: Path) -> tuple[np.ndarray, bool]:
    """A mask's stored values as ``(H, W)`` integers (colours as ``0xRRGGBB``), and whether it is in colour."""
    arr = read_image(path)
    colour = arr.ndim == 3 and not ((arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all())
    if colour:
        rgb = arr.astype(np.int64)
        arr = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    elif arr.ndim == 3:
        arr = arr[..., 0]
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise InputError(path, "mask holds non-integer values")
        arr = arr.astype(np.int64)
    return arr, colour


def read_binary_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a binary mask (a field of view, one layer) stored as 0/255 or 0/1.

    Parameters
    ----------
    path
        Mask image file (any format :func:`read_image` reads).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool, true inside.

    Raises
    ------
    InputError
        The file cannot be read, or holds other values (they are listed).
    """
    path = Path(path)
    arr, colour = _stored_values(path)
    values = np.unique(arr)
    if colour or not _is_binary(values):
        found = "colours" if colour else "values"
        raise InputError(path, f"binary mask holds {found} {_list(values)}; expected grey 0/255 or 0/1")
    return arr > 0


def read_label_image(
    path: str | os.PathLike[str], value_to_class: dict[int, int] | None = None, num_classes: int = 2
) -> np.ndarray:
    """Read a label mask as class ids of a declared class list.

    Parameters
    ----------
    path
        Mask image file (any format :func:`read_image` reads).
    value_to_class
        Optional mapping from stored pixel value to class id (see
        :func:`check_value_to_class`). For colour masks whose channels
        differ, the stored value of a pixel is ``(R << 16) | (G << 8) | B``,
        e.g. ``0xFF0000`` for pure red.
    num_classes
        Number of declared classes, 2 to
        :data:`~retinaseg.io.limits.MAX_CLASSES`. Without a mapping the mask
        must store class ids ``0..num_classes - 1``; a two-class mask may
        also store ``0/255`` (a 1-bit file reads as such), which gives
        ``0/1``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` ``uint8`` class ids.

    Raises
    ------
    InputError
        The file cannot be read; the mask is colour and no mapping is given;
        it holds values that are not class ids (without a mapping) or not
        keys of ``value_to_class``; the values found are listed.
    """
    path = Path(path)
    if not 2 <= num_classes <= MAX_CLASSES:
        raise InputError("num_classes", f"must be 2..{MAX_CLASSES}, got {num_classes}")
    arr, colour = _stored_values(path)
    if colour and value_to_class is None:
        raise InputError(path, "colour mask needs value_to_class (keys are 0xRRGGBB colour values)")
    values, inverse = np.unique(arr, return_inverse=True)
    if value_to_class is not None:
        check_value_to_class(value_to_class, num_classes)
        missing = np.array([v for v in values.tolist() if v not in value_to_class])
        if missing.size:
            raise InputError(
                path, f"mask values {_list(missing)} are not keys of value_to_class {_list(np.array(sorted(value_to_class)))}"
            )
        classes = np.array([value_to_class[v] for v in values.tolist()], dtype=np.uint8)
        return classes[inverse].reshape(arr.shape)
    if num_classes == 2 and _is_binary(values):
        return (arr > 0).astype(np.uint8)
    if values.size and (values[0] < 0 or values[-1] >= num_classes):
        raise InputError(
            path,
            f"mask values {_list(values)} are not class ids 0..{num_classes - 1} of the {num_classes} "
            "declared classes; declare class_names, or map the values with value_to_class",
        )
    return arr.astype(np.uint8)


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
            path, f"cannot write {array.dtype} array of shape {array.shape} as PNG (need (H, W) uint8/uint16 or (H, W, 3) uint8)"
        )
    image = Image.fromarray(np.ascontiguousarray(array))
    with atomic_path(path) as tmp:
        # Level 1 is ~4x faster than Pillow's default for ~20% larger files.
        image.save(tmp, format="PNG", compress_level=1)

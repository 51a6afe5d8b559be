"""Pictures of the report as PNG or JPEG bytes, and as files.

Encoding settings are chosen for speed and size, not for archiving: PNG with
zlib level 1 by default (several times faster than level 6 and about 10 %
larger) for pictures with sharp edges (plots, label colours, lines); JPEG for
photographic content (B-scans, fundus images, maps over them), where PNG
would spend most of its bytes on speckle noise.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from retinaseg.io.atomic import atomic_path

#: zlib level of report PNGs.
PNG_COMPRESS_LEVEL = 1


def png_bytes(array: np.ndarray, *, palette_rgba: np.ndarray | None = None, compress_level: int = PNG_COMPRESS_LEVEL) -> bytes:
    """PNG of an 8-bit image.

    Parameters
    ----------
    array
        ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8; with
        ``palette_rgba`` a ``(H, W)`` uint8 index image.
    palette_rgba
        ``(K, 4)`` uint8 colour and opacity of each index (``K <= 256``):
        the PNG is then a palette image with per-entry transparency, the
        smallest form of a picture of few colours.
    compress_level
        zlib level, 0-9.

    Returns
    -------
    bytes
        The PNG file.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    buffer = io.BytesIO()
    if palette_rgba is None:
        Image.fromarray(array).save(buffer, format="PNG", compress_level=compress_level)
        return buffer.getvalue()
    palette = np.asarray(palette_rgba, dtype=np.uint8)
    if array.ndim != 2 or palette.ndim != 2 or palette.shape[1] != 4 or not 0 < len(palette) <= 256:
        raise ValueError(f"need an (H, W) index image and a (K <= 256, 4) palette, got {array.shape} and {palette.shape}")
    if array.size and int(array.max()) >= len(palette):
        raise ValueError(f"index {int(array.max())} outside the {len(palette)}-entry palette")
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
    image.putpalette(palette[:, :3].tobytes(), rawmode="RGB")
    image.save(buffer, format="PNG", compress_level=compress_level, transparency=palette[:, 3].tobytes())
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray, *, quality: int = 85) -> bytes:
    """JPEG of an ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 image (colour not subsampled, so thin coloured lines keep their colour)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(
        buffer, format="JPEG", quality=quality, subsampling=0, optimize=True
    )
    return buffer.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI of some bytes, e.g. for an ``<img src=...>``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path

"""Input limits and file checks shared by every reader.

Readers check these from headers *before* decoding or allocating, so a file
that declares absurd sizes (a decompression bomb, a corrupt header) is refused
with one line instead of exhausting memory. The numbers are far above any real
retinal image or OCT scan and far below what would hurt a 16 GB machine.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from retinaseg.errors import InputError

MAX_IMAGE_PIXELS = 50_000_000
"""Largest 2-D image (H x W) read: 50 Mpixel, above any fundus camera (~24 Mpixel)."""

MAX_IMAGE_SIDE = 30_000
"""Longest image side in pixels; longer strips are not retinal images."""


def check_regular_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """Return ``path`` if it is an existing regular file, else raise :class:`InputError`.

    FIFOs, sockets and devices are refused: reading them can block forever or
    never end.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(path, f"{what} not found") from None
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror or err})") from None
    if stat.S_ISDIR(mode):
        raise InputError(path, f"is a folder, not a {what}")
    if not stat.S_ISREG(mode):
        raise InputError(path, f"is not a regular {what} (a pipe, socket or device)")
    return path


def check_image_size(height: int, width: int, where: str | os.PathLike[str]) -> None:
    """Refuse an image whose declared size exceeds :data:`MAX_IMAGE_PIXELS` / :data:`MAX_IMAGE_SIDE`."""
    if height <= 0 or width <= 0:
        raise InputError(where, f"image declares an empty size {height} x {width}")
    if max(height, width) > MAX_IMAGE_SIDE or height * width > MAX_IMAGE_PIXELS:
        raise InputError(
            where,
            f"image declares {height} x {width} pixels; at most {MAX_IMAGE_SIDE} per side and "
            f"{MAX_IMAGE_PIXELS // 1_000_000} Mpixel are read",
        )


# --- OCT volumes ---------------------------------------------------------------------------------
# Clinical volumes: Spectralis 496 rows x 384-1536 A-scans x up to 193 B-scans (98 M voxels);
# Cirrus 1024 rows, 200x200 or 512x128 cubes, HD lines of 4096 A-scans; Topcon 885-992 rows;
# swept-source cubes (PLEX Elite, Triton) 1536 rows x 500x500 A-scans (384 M voxels).

MAX_OCT_BSCANS = 2048
"""Most B-scans in one OCT volume (the densest cubes have 1024)."""

MAX_OCT_ROWS = 4096
"""Most rows (axial samples) per B-scan (clinical devices: 496-1536; research systems 2048)."""

MAX_OCT_ASCANS = 8192
"""Most A-scans per B-scan (Cirrus HD lines: 4096)."""

MAX_OCT_VOXELS = 500_000_000
"""Most voxels (B-scans x rows x A-scans) per volume: 2 GB as float32 reflectance, above a
500x500x1536 swept-source cube, so that analysing one stays within a 16 GB machine."""

MAX_ENFACE_CELLS = 4_000_000
"""Most cells of an en-face map grid: a 40 mm square fundus field at the default 0.02 mm
cell (a 6 x 6 mm macular cube needs 90 000). One map of K layers takes 8 K bytes per cell."""


def check_oct_size(n_bscans: int, rows: int, ascans: int, where: str | os.PathLike[str]) -> None:
    """Refuse an OCT volume whose declared size exceeds the ``MAX_OCT_*`` limits.

    Parameters
    ----------
    n_bscans, rows, ascans
        Declared size ``(N, H, W)``: B-scans, rows per B-scan, A-scans per B-scan.
    where
        File or folder named in the message.
    """
    if min(n_bscans, rows, ascans) <= 0:
        raise InputError(where, f"OCT volume declares an empty size {n_bscans} x {rows} x {ascans}")
    voxels = n_bscans * rows * ascans  # Python integers: no overflow
    if n_bscans > MAX_OCT_BSCANS or rows > MAX_OCT_ROWS or ascans > MAX_OCT_ASCANS or voxels > MAX_OCT_VOXELS:
        raise InputError(
            where,
            f"OCT volume declares {n_bscans} B-scans x {rows} rows x {ascans} A-scans; at most "
            f"{MAX_OCT_BSCANS} B-scans, {MAX_OCT_ROWS} rows, {MAX_OCT_ASCANS} A-scans and "
            f"{MAX_OCT_VOXELS // 1_000_000} M voxels are read",
        )


# --- class lists and annotation files ------------------------------------------------------------

MAX_CLASSES = 256
"""Most classes of a label map: class ids are stored as ``uint8``."""

MAX_JSON_BYTES = 100_000_000
"""Largest JSON file read (annotation exports, manifests): 40 times a 100-image VGG JSON export
of 8 layers (2.4 MB); parsed, it takes about ten times its size in memory."""


def check_class_names(class_names: object, where: str | os.PathLike[str] = "class_names") -> list[str]:
    """Return ``class_names`` as a list if it is a valid class list, else raise :class:`InputError`.

    A class list names class id ``k`` by its ``k``-th entry: at least 2 (background and
    one structure) and at most :data:`MAX_CLASSES` distinct, non-empty strings.
    """
    if not isinstance(class_names, (list, tuple)):
        raise InputError(
            where,
            f"must be a list of class names such as [background, vessel], got {type(class_names).__name__} {class_names!r:.60}",
        )
    if not 2 <= len(class_names) <= MAX_CLASSES:
        raise InputError(where, f"must name 2 to {MAX_CLASSES} classes (background first), got {len(class_names)}")
    bad = [name for name in class_names if not isinstance(name, str) or not name.strip()]
    if bad:
        raise InputError(where, f"every name must be non-empty text, got {bad[0]!r}")
    repeated = sorted({name for name in class_names if class_names.count(name) > 1})
    if repeated:
        raise InputError(where, f"names {', '.join(repeated)} more than once")
    return list(class_names)

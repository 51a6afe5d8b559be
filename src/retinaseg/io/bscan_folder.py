"""Folders of B-scan images as an :class:`~retinaseg.volume.OctVolume`.

Every image file of the folder (``.png``, ``.tif``, ``.bmp``, ``.jpg`` ...),
sorted by name (zero-pad numbers: ``b02`` before ``b10``), is one B-scan; all
must have the same size. RGB images become grey by ITU-R BT.601 luminance
(exact for grey images saved as RGB). 16-bit images are scaled to 8 bits by
``v >> 8`` (floor of ``v / 256``; the same as eyepy's XML importer, which
uses ``img_as_ubyte``; it gives ``u`` back from ``257 u``, the usual 8-to-16
bit expansion). The 8-bit images are display images, turned back into
reflectance by :func:`retinaseg.io.display.reflectance_from_display`. Images
carry no geometry, so ``scale_x_mm``, ``scale_z_mm``, ``bscan_spacing_mm``
*and* ``laterality`` are required: laterality decides nasal/temporal in every
sector statistic, and a silent default would swap them for half of all eyes.
The B-scans are placed as a raster of parallel horizontal lines, like a plain
image stack: B-scan ``i`` runs from ``(0, i * spacing)`` to
``(W * scale_x_mm, i * spacing)`` mm, the first image at the top (``y = 0``).
There is no SLO. Image sizes are read from the file headers and checked
(:func:`retinaseg.io.limits.check_oct_size`, the B-scan geometry by
:func:`retinaseg.volume.check_geometry`) before any image is decoded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.display import luminance, reflectance_from_display
from retinaseg.io.folders import image_files
from retinaseg.io.images import IMAGE_SUFFIXES, image_size, read_image
from retinaseg.io.limits import check_oct_size
from retinaseg.volume import (
    BScanGeometry,
    OctVolume,
    check_geometry,
    check_scale,
    check_signal,
)


def _grey_uint8(image: np.ndarray, where: str | os.PathLike[str]) -> np.ndarray:
    """``(H, W)`` uint8 display image from a grey or RGB 8/16-bit image."""
    if image.dtype not in (np.uint8, np.uint16):
        raise InputError(where, f"{image.dtype} image; B-scan images must be 8- or 16-bit display images")
    if image.ndim == 3:  # (H, W, 3): read_image drops alpha
        image = luminance(image)
    if image.dtype == np.uint16:
        image = image >> 8
    return image.astype(np.uint8, copy=False)


def read_bscan_folder(
    folder: Path,
    scale_x_mm: float | None,
    scale_z_mm: float | None,
    bscan_spacing_mm: float | None,
    laterality: str | None,
) -> OctVolume:
    """Read a folder of B-scan images (module notes).

    Parameters
    ----------
    folder
        The folder; every image file in it is one B-scan, in name order.
    scale_x_mm, scale_z_mm, bscan_spacing_mm
        A-scan pitch, axial pixel size and distance between B-scans in mm,
        each within its plausible range (:func:`retinaseg.volume.check_scale`);
        all required.
    laterality
        ``"OD"`` or ``"OS"`` (any case); required.

    Returns
    -------
    OctVolume
        ``(N, H, W)`` float32 reflectance, B-scans as horizontal lines
        ``bscan_spacing_mm`` apart, the first at the top; no SLO;
        ``metadata`` ``bscan_files`` (names in order) and
        ``header_distance_mm``; ``source`` the folder.

    Raises
    ------
    InputError
        A HEYEX XML export in the folder; no image files; a missing or
        implausible option; images of different sizes or of other than 8 or
        16 bits; sizes above the OCT limits; no signal.
    """
    exports = sorted(f.name for f in folder.glob("*.xml"))
    if exports:
        # its localizer image would otherwise be read as one more B-scan
        raise InputError(folder, f"holds a HEYEX XML export ({exports[0]}); read that file instead of the folder")
    files = image_files(folder)
    if not files:
        raise InputError(folder, f"no B-scan images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    options = {"scale_x_mm": scale_x_mm, "scale_z_mm": scale_z_mm, "bscan_spacing_mm": bscan_spacing_mm}
    missing = [name for name, value in {**options, "laterality": laterality}.items() if value is None]
    if missing:
        raise InputError(folder, f"a folder of B-scan images carries no geometry: give {', '.join(missing)}")
    sizes_mm = {name: check_scale(value, name, folder) for name, value in options.items()}  # type: ignore[arg-type]
    eye = str(laterality).strip().upper()
    if eye not in ("OD", "OS"):
        raise InputError(folder, f"laterality {laterality!r} must be 'OD' (right eye) or 'OS' (left eye)")

    paths = list(files.values())
    n = len(paths)
    # Sizes and geometry from the image headers: nothing is decoded before the volume is known to fit.
    height, width = image_size(paths[0])
    check_oct_size(n, height, width, folder)  # before any other file is opened

    def check_same_size(path: Path, shape: tuple[int, ...]) -> None:
        if shape != (height, width):
            raise InputError(
                folder,
                f"{path.name} is {shape[0]}x{shape[1]} pixels but {paths[0].name} is {height}x{width}; "
                "all B-scans must have the same size",
            )

    for path in paths[1:]:
        check_same_size(path, image_size(path))
    scan_pattern = 1 if n == 1 else 3
    x_end_mm = width * sizes_mm["scale_x_mm"]
    geometry = [
        BScanGeometry(start_xy_mm=(0.0, float(y)), end_xy_mm=(x_end_mm, float(y)), quality=math.nan)
        for y in np.arange(n) * sizes_mm["bscan_spacing_mm"]
    ]
    check_geometry(geometry, width, sizes_mm["scale_x_mm"], scan_pattern, folder)

    reflectance = np.empty((n, height, width), dtype=np.float32)
    for bscan, path in zip(reflectance, paths):
        image = _grey_uint8(read_image(path), path)
        check_same_size(path, image.shape)  # a header may lie
        bscan[...] = reflectance_from_display(image)
    check_signal(reflectance, folder)
    return OctVolume(
        reflectance=reflectance,
        scale_x_mm=sizes_mm["scale_x_mm"],
        scale_z_mm=sizes_mm["scale_z_mm"],
        bscan_geometry=geometry,
        scan_pattern=scan_pattern,
        laterality=eye,  # type: ignore[arg-type]  # OD/OS, checked
        metadata={"bscan_files": [p.name for p in paths], "header_distance_mm": sizes_mm["bscan_spacing_mm"]},
        source=str(folder),
    )

"""One entry point for every OCT input: :func:`read_oct`.

:func:`read_oct` turns whatever a user has into an
:class:`~retinaseg.volume.OctVolume`:

==============================  ==============================================
input                           reader
==============================  ==============================================
``.vol`` (Heidelberg raw)       :func:`retinaseg.io.heidelberg.read_vol` (all
                                scan patterns; eyepy refuses circle scans)
``.e2e`` (Heidelberg E2E)       :func:`retinaseg.io.eyepy_bridge.read_eyepy_file`
                                (``eyepy.import_heyex_e2e``)
``.xml`` (HEYEX XML export)     :func:`retinaseg.io.eyepy_bridge.read_eyepy_file`
                                (``eyepy.import_heyex_xml``; the B-scan and
                                localizer images lie next to the XML)
``.eye`` (eyepy's own format)   :func:`retinaseg.io.eyepy_bridge.read_eyepy_file`
                                (``eyepy.EyeVolume.load``)
folder of B-scan images         :func:`retinaseg.io.bscan_folder.read_bscan_folder`
==============================  ==============================================

:func:`retinaseg.io.eyepy_bridge.write_eye` goes the other way: our volume
with our layer boundaries as an eyepy ``.eye`` file, which :func:`read_oct`
reads back unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from retinaseg.errors import InputError
from retinaseg.io.bscan_folder import read_bscan_folder
from retinaseg.io.eyepy_bridge import read_eyepy_file
from retinaseg.io.heidelberg import read_vol
from retinaseg.io.limits import check_regular_file
from retinaseg.volume import OctVolume

OCT_FILE_SUFFIXES: tuple[str, ...] = (".vol", ".e2e", ".xml", ".eye")
"""File suffixes (lower case) :func:`read_oct` reads; folders are read too."""


def read_oct(
    path: str | os.PathLike[str],
    *,
    scale_x_mm: float | None = None,
    scale_z_mm: float | None = None,
    bscan_spacing_mm: float | None = None,
    laterality: str | None = None,
) -> OctVolume:
    """Read any OCT input users have: ``.vol``, ``.e2e``, ``.xml``, ``.eye`` or a B-scan folder.

    Parameters
    ----------
    path
        A Heidelberg ``.vol`` / ``.e2e`` file, a HEYEX ``.xml`` export (its
        images next to it), an eyepy ``.eye`` file, or a folder of B-scan
        images (:mod:`retinaseg.io.bscan_folder`).
    scale_x_mm, scale_z_mm, bscan_spacing_mm
        A-scan pitch, axial pixel size and distance between B-scans in mm,
        each within its plausible range (:func:`retinaseg.volume.check_scale`).
        Required for a folder; refused for files, which carry their own
        geometry.
    laterality
        ``"OD"`` or ``"OS"``; required for a folder, refused for files.

    Returns
    -------
    OctVolume
        From :func:`~retinaseg.io.heidelberg.read_vol`,
        :func:`~retinaseg.io.eyepy_bridge.read_eyepy_file` or
        :func:`~retinaseg.io.bscan_folder.read_bscan_folder`; ``source`` is
        ``path``.

    Raises
    ------
    InputError
        Missing path; a pipe, socket or device; unknown suffix; options
        given for a file or missing for a folder; anything eyepy or the
        readers cannot parse (truncated, corrupt or foreign files, zero
        B-scans, no valid pixel, images of different sizes or bit types);
        sizes above the OCT limits (an ``.eye`` archive from its directory,
        before eyepy unpacks it); anything :class:`OctVolume` finds
        implausible. The message names the path and the problem in one line.

    Notes
    -----
    Sizes are checked from headers before any pixel is decoded for ``.vol``,
    ``.eye`` and image folders. E2E files and the images of a HEYEX XML
    export are decoded by eyepy, which has no such checks: their sizes are
    checked only after eyepy has read them.
    """
    path = Path(path)
    if path.is_dir():
        return read_bscan_folder(path, scale_x_mm, scale_z_mm, bscan_spacing_mm, laterality)
    check_regular_file(path, "OCT file")  # a pipe or device named .vol would block forever
    suffix = path.suffix.lower()
    if suffix not in OCT_FILE_SUFFIXES:
        raise InputError(
            path,
            f"unknown OCT file type {path.suffix!r}; expected a folder of B-scan images or a {', '.join(OCT_FILE_SUFFIXES)} file",
        )
    given = [
        name
        for name, value in (
            ("scale_x_mm", scale_x_mm),
            ("scale_z_mm", scale_z_mm),
            ("bscan_spacing_mm", bscan_spacing_mm),
            ("laterality", laterality),
        )
        if value is not None
    ]
    if given:
        raise InputError(path, f"{', '.join(given)} only apply to a folder of B-scan images; {suffix} files carry their own")
    if suffix == ".vol":
        return read_vol(path)
    return read_eyepy_file(path)

"""All-or-nothing output folders.

Results are written into a hidden temporary folder beside the destination and
renamed into place only when complete, so an error never leaves partial
output, and an existing folder is replaced only when the caller allows it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from retinaseg.errors import InputError


def check_output_dir(
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    replaceable: Callable[[Path], bool] | None = None,
    refusal: str = "",
) -> None:
    """Raise :class:`InputError` unless ``out_dir`` may be written (see :func:`staged_output_dir`).

    Call it before long work, so a refused destination fails at once.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError(out_dir, "exists and is not a folder")
        if any(out_dir.iterdir()):
            if not overwrite:
                raise InputError(out_dir, "folder exists and is not empty; choose another output or pass --overwrite")
            if replaceable is not None and not replaceable(out_dir):
                raise InputError(out_dir, refusal or "refusing to replace this folder")


@contextmanager
def staged_output_dir(
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    replaceable: Callable[[Path], bool] | None = None,
    refusal: str = "",
) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``out_dir`` on success.

    Parameters
    ----------
    out_dir
        Destination folder.
    overwrite
        Allow replacing an existing, non-empty ``out_dir``; otherwise that is
        an :class:`InputError` (raised before anything is written).
    replaceable
        Extra check that an existing folder may be replaced even with
        ``overwrite`` (e.g. "holds a dataset.json"), so that an unrelated
        folder is never deleted; ``refusal`` is the message when it fails.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite=overwrite, replaceable=replaceable, refusal=refusal)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.writing-"))
    try:
        yield staging
        if out_dir.exists():
            # A folder cannot be renamed over a non-empty one: move the old one
            # aside first, then delete it once the new one is in place.
            old = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.old-"))
            os.replace(out_dir, old)
            os.replace(staging, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

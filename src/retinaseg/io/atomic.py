"""Atomic file writes: readers never see a half-written file.

Every file retinaseg writes goes through :func:`atomic_path`: the content is
written to a hidden temporary file in the destination's folder, which then
replaces the destination in one :func:`os.replace`. On any error the
temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffix, so writers that choose the
    format by suffix (Pillow, matplotlib, eyepy) write the right one. Its
    folder must exist. The temporary file is not created here but by the
    writer, so it gets the usual permissions (``mkstemp`` would make it
    readable by its owner only).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` as UTF-8 atomically (newlines as given); returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return path

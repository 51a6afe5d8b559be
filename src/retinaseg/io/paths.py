"""Where the real datasets live, and retinaseg's cache.

Datasets are never shipped with the package. They are looked up in the folder
named by the ``RETINASEG_DATA`` environment variable, then in ``../shared/data``
relative to the current directory and to the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "RETINASEG_DATA"
CACHE_ENV_VAR = "RETINASEG_CACHE_DIR"
"""Folder of retinaseg's cache; set to an empty value, nothing is cached on disk."""
_REPO_ROOT = Path(__file__).resolve().parents[3]


def data_roots() -> list[Path]:
    """Candidate folders holding dataset sub-folders, in search order."""
    roots: list[Path] = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots += [Path.cwd() / ".." / "shared" / "data", _REPO_ROOT / ".." / "shared" / "data"]
    return roots


def cache_dir() -> Path | None:
    """``$RETINASEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/retinaseg``, else ``~/.cache/retinaseg``; ``None`` when disabled."""
    try:
        if CACHE_ENV_VAR in os.environ:
            value = os.environ[CACHE_ENV_VAR]
            return Path(value).expanduser() if value else None
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "retinaseg"
    except RuntimeError:  # no home folder to be found (a container's user without one)
        return None


def find_dataset(name: str) -> Path | None:
    """Folder of dataset ``name`` (e.g. ``"chase_db1"``), or ``None`` if absent."""
    for root in data_roots():
        candidate = root / name
        if candidate.is_dir():
            return candidate.resolve()
    return None


def resolve_data_path(path: str | os.PathLike[str]) -> Path:
    """Resolve a config's data path.

    Absolute paths and paths that exist relative to the current directory are
    used as they are; otherwise a bare dataset name is looked up with
    :func:`find_dataset`. The result may not exist; readers report that.
    """
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    found = find_dataset(str(path))
    return found if found is not None else path

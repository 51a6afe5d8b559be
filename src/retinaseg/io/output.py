"""All-or-nothing output folders, and the rules for replacing one.

Results are written into a hidden temporary folder beside the destination and
renamed into place only when complete, so an error never leaves partial
output. Every folder written this way carries a marker file
(:data:`MARKER_NAME`), and the rules that protect a user's data are:

- an existing, non-empty folder is replaced only with ``overwrite`` *and* only
  if it holds the marker of the same kind of output, i.e. retinaseg wrote it
  and the same kind of command did (an analysis never replaces a training run,
  whose checkpoints may be what it was run with);
- a symbolic link is never replaced (it points at someone's data);
- the destination is never the file system root, the home folder, the
  current folder or one of its parents, and never is or contains an input of
  the command;
- a destination that cannot be created (under a regular file, on a read-only
  file system, inside ``/proc``) is refused before any work starts.

Temporary folders that a killed run left behind are removed by the next run
into the same destination.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from retinaseg.errors import InputError
from retinaseg.io.records import write_json

MARKER_NAME = ".retinaseg-output.json"
"""File inside every folder retinaseg writes; only such folders may be replaced."""

_STAGING_KINDS = ("writing", "old")

# Kinds of output, recorded in the marker: a command replaces only its own kind.
ANALYSIS = "analysis"
PREDICTION = "prediction"
EVALUATION = "evaluation"
DATASET = "dataset"
TRAINING_RUN = "training run"
DEMO = "demo"
COHORT = "cohort"


def mark_output_dir(folder: str | os.PathLike[str], kind: str) -> None:
    """Write the marker that says retinaseg made ``folder``, what ``kind`` of output it is, and which process."""
    record = {"written_by": "retinaseg", "kind": kind, "host": socket.gethostname(), "pid": os.getpid()}
    write_json(Path(folder) / MARKER_NAME, record)


def _marker(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("written_by") == "retinaseg" else None


def output_kind(folder: str | os.PathLike[str]) -> str | None:
    """The kind recorded by :func:`mark_output_dir` in ``folder``, or ``None`` if retinaseg did not write it."""
    record = _marker(Path(folder))
    return None if record is None else str(record.get("kind"))


def _nearest_existing(path: Path) -> Path:
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def _check_location(out_dir: Path, inputs: Iterable[str | os.PathLike[str]]) -> None:
    """Refuse destinations that would put a user's data at risk or cannot be written."""
    target = out_dir.resolve()
    cwd = Path.cwd().resolve()
    if target == Path(target.anchor) or target == Path.home().resolve() or cwd.is_relative_to(target):
        raise InputError(out_dir, "refusing to write into the root, home or current folder or a parent of it; name a new folder")
    for item in inputs:
        source = Path(item).resolve()
        if source.is_relative_to(target):
            relation = "is" if source == target else "contains"
            raise InputError(out_dir, f"output folder {relation} the input {item}; choose another --out")
    existing = _nearest_existing(out_dir.parent)
    if not existing.is_dir():
        raise InputError(out_dir, f"cannot be created: {existing} is a file, not a folder")
    try:  # the only reliable test: permission bits say nothing of read-only mounts, /proc or root
        Path(tempfile.mkdtemp(dir=existing, prefix=".retinaseg-probe-")).rmdir()
    except OSError as err:
        raise InputError(out_dir, f"cannot write here ({err.strerror or err})") from None


def check_output_dir(
    out_dir: str | os.PathLike[str],
    kind: str,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """Raise :class:`InputError` unless ``out_dir`` may be written (module rules).

    Call it before any long work, so a refused destination fails at once.

    Parameters
    ----------
    out_dir
        Destination folder.
    kind
        What the command writes (``"analysis"``, ``"training run"`` ...):
        only a folder marked with the same kind may be replaced.
    overwrite
        Allow replacing an existing, non-empty folder written by retinaseg.
    inputs
        Files and folders the command reads; the destination must not be or
        contain any of them.
    """
    out_dir = Path(out_dir)
    _check_location(out_dir, inputs)
    if out_dir.is_symlink():
        raise InputError(out_dir, "is a symbolic link; refusing to write through it, name a new folder")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder")
    if any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(out_dir, "folder exists and is not empty; choose another output or pass --overwrite")
        found = output_kind(out_dir)
        if found is None:
            raise InputError(
                out_dir, f"was not written by retinaseg (no {MARKER_NAME}); refusing to replace it, choose another output"
            )
        if found != kind:
            raise InputError(out_dir, f"holds a retinaseg {found}, not a {kind}; refusing to replace it, choose another output")


def check_incremental_dir(out_dir: str | os.PathLike[str], kind: str, *, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Raise :class:`InputError` unless ``out_dir`` may hold output that runs of ``kind`` add to (a cohort).

    The location rules are those of :func:`check_output_dir`; an existing,
    non-empty folder may be added to only if it holds the marker of ``kind``.
    """
    out_dir = Path(out_dir)
    _check_location(out_dir, inputs)
    if out_dir.is_symlink():
        raise InputError(out_dir, "is a symbolic link; refusing to write through it, name a new folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        found = output_kind(out_dir)
        if found is None:
            raise InputError(out_dir, f"was not written by retinaseg (no {MARKER_NAME}); choose another output")
        if found != kind:
            raise InputError(out_dir, f"holds a retinaseg {found}, not a {kind}; choose another output")


def prepare_incremental_dir(out_dir: str | os.PathLike[str], kind: str, *, inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """``out_dir`` checked (:func:`check_incremental_dir`), created and marked if new; nothing in it is removed.

    The caller replaces its own parts inside by the rules of :func:`staged_output_dir`.
    """
    out_dir = Path(out_dir)
    inputs = list(inputs)
    check_incremental_dir(out_dir, kind, inputs=inputs)
    if output_kind(out_dir) != kind:
        out_dir.mkdir(parents=True, exist_ok=True)
        mark_output_dir(out_dir, kind)
    return out_dir


def check_output_file(path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Raise :class:`InputError` unless ``path`` is a new file that can be written.

    An existing file is never replaced; the location rules are those of
    :func:`check_output_dir`.
    """
    path = Path(path)
    if os.path.lexists(path):  # first: an input given as the output is an existing file, and this says why
        raise InputError(path, "exists; retinaseg never replaces a file, choose another name")
    _check_location(path, inputs)


def _process_gone(folder: Path) -> bool:
    """Whether the process recorded in ``folder``'s marker ran on this host and has ended."""
    record = _marker(folder)
    if record is None or record.get("host") != socket.gethostname():
        return False  # not ours, or written on another machine sharing this folder
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable pid or a live process we may not signal: leave it alone
    return False


def remove_stale_staging(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary folders a killed run into ``out_dir`` left behind; returns them.

    Only folders named like ours, holding our marker, whose writing process
    has ended are deleted.
    """
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return []
    removed = []
    for kind in _STAGING_KINDS:
        for folder in out_dir.parent.glob(f".{glob.escape(out_dir.name)}.{kind}-*"):
            if folder.is_dir() and not folder.is_symlink() and _process_gone(folder):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


@contextmanager
def replaced_on_success(folder: str | os.PathLike[str], kind: str) -> Iterator[None]:
    """Set an existing ``folder`` aside while the block writes a new one in its place.

    When the block succeeds the old folder is deleted; when it fails (or is
    interrupted), what the block wrote there is deleted and the old folder is
    put back. Callers check first that ``folder`` may be replaced.
    """
    folder = Path(folder)
    if not folder.exists():
        yield
        return
    old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old-"))
    os.replace(folder, old)
    marker = old / MARKER_NAME
    original = marker.read_bytes() if marker.is_file() else None
    mark_output_dir(old, kind)  # as this live process's, so no other run cleans it up meanwhile
    try:
        yield
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if original is None:
            marker.unlink()
        else:
            marker.write_bytes(original)
        os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_output_dir(
    out_dir: str | os.PathLike[str],
    kind: str,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``out_dir`` on success.

    ``kind``, ``overwrite`` and ``inputs`` as for :func:`check_output_dir`,
    which runs first: nothing is written when it refuses. The folder
    receives the marker of ``kind``.
    """
    out_dir = Path(out_dir)
    inputs = list(inputs)
    check_output_dir(out_dir, kind, overwrite=overwrite, inputs=inputs)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.writing-"))
    try:
        mark_output_dir(staging, kind)
        yield staging
        check_output_dir(out_dir, kind, overwrite=overwrite, inputs=inputs)  # it may have appeared meanwhile
        with replaced_on_success(out_dir, kind):
            os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

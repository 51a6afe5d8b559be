"""What a cohort is made of: the scans named on the command line or in a list file.

:func:`expand_scans` turns paths into one :class:`ScanEntry` per scan:

- a file is one scan (a device file: ``.vol``, ``.e2e``, HEYEX ``.xml``, ``.eye``);
- a folder holding device files (at any depth) stands for each of them;
- otherwise a folder of B-scan images is one scan, and a folder whose
  subfolders hold B-scan images stands for each subfolder.

:func:`read_scan_list` reads ``--list scans.csv``: a ``path`` column and
optional per-scan columns (:data:`LIST_COLUMNS`). Problems of the list itself
(missing column, a value that is not a number ...) refuse the whole cohort
before any work, naming the row; a scan that cannot be read becomes a failed
row of the cohort instead, so one bad file never stops the others.
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retinaseg.errors import InputError
from retinaseg.io.images import IMAGE_SUFFIXES
from retinaseg.io.limits import check_regular_file
from retinaseg.io.oct_files import OCT_FILE_SUFFIXES

#: Optional columns of a scan list besides ``path``, and what they hold.
LIST_COLUMNS: dict[str, str] = {
    "id": "name of the scan's output folder and its row (default: the file name without suffix)",
    "fovea_x_mm": "ETDRS centre x in mm on the SLO image (with fovea_y_mm)",
    "fovea_y_mm": "ETDRS centre y in mm on the SLO image (with fovea_x_mm)",
    "laterality": "OD or OS (folders of B-scan images)",
    "scale_x_mm": "A-scan spacing in mm (folders of B-scan images)",
    "scale_z_mm": "axial pixel size in mm (folders of B-scan images)",
    "bscan_spacing_mm": "distance between B-scans in mm (folders of B-scan images)",
}

_NUMBER_COLUMNS = ("fovea_x_mm", "fovea_y_mm", "scale_x_mm", "scale_z_mm", "bscan_spacing_mm")
_READ_OPTION_COLUMNS = ("laterality", "scale_x_mm", "scale_z_mm", "bscan_spacing_mm")

#: Scan ids name folders: letters, digits and ``._-`` only, not starting with a dot.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ScanEntry:
    """One scan of a cohort and the options it is read and measured with.

    Attributes
    ----------
    id
        Unique within the cohort; names the scan's output folder.
    path
        The device file or the folder of B-scan images.
    fovea_xy_mm
        ETDRS centre in mm on the SLO image; ``None``: found automatically.
    read_options
        Options of :func:`retinaseg.io.oct_files.read_oct` (geometry of
        folders of B-scan images).
    """

    id: str
    path: Path
    fovea_xy_mm: tuple[float, float] | None = None
    read_options: dict[str, Any] = field(default_factory=dict)


def _has_images(folder: Path) -> bool:
    return any(item.is_file() and item.suffix.lower() in IMAGE_SUFFIXES for item in folder.iterdir())


def _scans_in_folder(folder: Path, exclude: Path | None) -> list[Path]:
    """The scans a folder stands for (module rules), sorted; none if it holds none."""
    device_files = sorted(
        item
        for item in folder.rglob("*")
        if item.suffix.lower() in OCT_FILE_SUFFIXES
        and item.is_file()
        and not (exclude is not None and item.resolve().is_relative_to(exclude))
    )
    if device_files:
        return device_files
    if _has_images(folder):
        return [folder]
    return sorted(sub for sub in folder.iterdir() if sub.is_dir() and _has_images(sub))


def expand_scans(
    paths: list[Path], *, exclude: str | os.PathLike[str] | None = None, read_options: dict[str, Any] | None = None
) -> list[ScanEntry]:
    """One entry per scan that ``paths`` name (module rules), with unique ids.

    Parameters
    ----------
    paths
        Files and folders, as given on the command line.
    exclude
        A folder whose contents are never scans (the cohort's output folder,
        which holds ``.eye`` files of earlier runs).
    read_options
        Options of :func:`retinaseg.io.oct_files.read_oct` for every scan.

    Raises
    ------
    InputError
        A folder holds no scan. Missing files are not refused here: they
        become failed rows of the cohort.
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    scans: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = _scans_in_folder(path, excluded)
            if not found:
                suffixes = ", ".join(OCT_FILE_SUFFIXES)
                raise InputError(path, f"no scans ({suffixes}) and no folders of B-scan images in this folder")
            scans += found
        else:
            scans.append(path)
    return [
        ScanEntry(id=scan_id, path=scan, read_options=dict(read_options or {})) for scan_id, scan in zip(unique_ids(scans), scans)
    ]


def unique_ids(paths: list[Path]) -> list[str]:
    """Ids of scans: the file name without its suffix, made plain; repeated names get a hash of their path.

    The hash depends on the path only, so a scan keeps its id when the
    cohort is run again with more or fewer scans.
    """
    stems = [re.sub(r"[^A-Za-z0-9._-]", "_", path.stem or path.name).lstrip(".") or "scan" for path in paths]
    counts = Counter(stems)
    return [
        stem if counts[stem] == 1 else f"{stem}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
        for stem, path in zip(stems, paths)
    ]


def read_scan_list(list_file: str | os.PathLike[str]) -> list[ScanEntry]:
    """The scans of a CSV list: a ``path`` column and the optional :data:`LIST_COLUMNS`.

    Relative paths are relative to the list's folder. Empty cells mean "not
    given".

    Raises
    ------
    InputError
        The list cannot be read, has no ``path`` column or unknown columns,
        no rows, an empty path, a value that is not a finite number, only
        one of the two fovea coordinates, a laterality other than OD/OS, or
        ids that are not plain names or repeat.
    """
    list_file = Path(list_file)
    try:
        with list_file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = list(reader.fieldnames or [])
            rows = [(reader.line_num, row) for row in reader]  # blank lines are skipped: keep the file's line numbers
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(list_file, f"cannot be read as a CSV scan list ({err})") from None
    if "path" not in columns:
        raise InputError(list_file, f"has no 'path' column (columns: {', '.join(columns) or 'none'})")
    unknown = [name for name in columns if name != "path" and name not in LIST_COLUMNS]
    if unknown:
        raise InputError(list_file, f"unknown column {unknown[0]!r}; known: path, {', '.join(LIST_COLUMNS)}")
    if not rows:
        raise InputError(list_file, "lists no scans")
    entries = [_list_entry(list_file, line, row) for line, row in rows]
    given = [entry.id for entry in entries]
    defaults = unique_ids([entry.path for entry in entries])
    ids = [name or default for name, default in zip(given, defaults)]
    repeated = [name for name, count in Counter(ids).items() if count > 1]
    if repeated:
        raise InputError(list_file, f"id {repeated[0]!r} is used for more than one scan; ids name output folders")
    return [
        ScanEntry(id=name, path=e.path, fovea_xy_mm=e.fovea_xy_mm, read_options=e.read_options) for name, e in zip(ids, entries)
    ]


def _list_entry(list_file: Path, line: int, row: dict[str, str | None]) -> ScanEntry:
    """The entry of one row (line ``line`` of the file); ``id`` empty when not given."""
    where = f"{list_file} line {line}"
    cells = {key: (value or "").strip() for key, value in row.items() if key is not None}
    if not cells["path"]:
        raise InputError(where, "empty path")
    numbers: dict[str, float] = {}
    for name in _NUMBER_COLUMNS:
        if cells.get(name):
            try:
                numbers[name] = float(cells[name])
            except ValueError:
                numbers[name] = math.nan
            if not math.isfinite(numbers[name]):
                raise InputError(where, f"{name} must be a finite number, got {cells[name]!r}")
    if ("fovea_x_mm" in numbers) != ("fovea_y_mm" in numbers):
        raise InputError(where, "give both fovea_x_mm and fovea_y_mm, or neither")
    laterality = cells.get("laterality", "").upper()
    if laterality and laterality not in ("OD", "OS"):
        raise InputError(where, f"laterality must be OD or OS, got {cells['laterality']!r}")
    scan_id = cells.get("id", "")
    if scan_id and not _PLAIN_ID.fullmatch(scan_id):
        raise InputError(where, f"id {scan_id!r} must be a plain name (letters, digits, . _ -), it names a folder")
    read_options: dict[str, Any] = {name: numbers[name] for name in _READ_OPTION_COLUMNS if name in numbers}
    if laterality:
        read_options["laterality"] = laterality
    path = Path(cells["path"])
    fovea = (numbers["fovea_x_mm"], numbers["fovea_y_mm"]) if "fovea_x_mm" in numbers else None
    return ScanEntry(
        id=scan_id, path=path if path.is_absolute() else list_file.parent / path, fovea_xy_mm=fovea, read_options=read_options
    )


def scan_checksum(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a scan: of the file, or of a folder's image names and bytes, in name order.

    Raises
    ------
    InputError
        The path does not exist, cannot be read, or is a pipe, socket or
        device (reading it could block forever).
    """
    path = Path(path)
    digest = hashlib.sha256()
    try:
        if path.is_dir():
            for item in sorted(path.iterdir()):
                if item.suffix.lower() in IMAGE_SUFFIXES:
                    digest.update(item.name.encode("utf-8", "surrogateescape") + b"\0")
                    _hash_file(check_regular_file(item, "B-scan image"), digest)
        else:
            _hash_file(check_regular_file(path, "scan"), digest)
    except OSError as err:
        raise InputError(path, f"cannot be read ({err.strerror or err})") from None
    return digest.hexdigest()


def _hash_file(path: Path, digest: Any) -> None:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)

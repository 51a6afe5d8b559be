"""Result records on disk: strict JSON and CSV tables, written atomically."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retinaseg.errors import InputError, describe_exception
from retinaseg.io.atomic import atomic_path, write_text_atomic
from retinaseg.io.limits import MAX_JSON_BYTES, check_regular_file


def strict_json(value: Any) -> Any:
    """``value`` with NumPy scalars made plain and NaN/infinities made ``None``, for strict JSON."""
    if isinstance(value, Mapping):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Parse a JSON file a user gave, refusing what would hang, crash or exhaust memory.

    Parameters
    ----------
    path
        The file; it must be a regular file of at most
        :data:`~retinaseg.io.limits.MAX_JSON_BYTES` bytes of UTF-8 JSON.
    what
        Name of the file kind in messages, e.g. ``"VGG JSON file"``.

    Raises
    ------
    InputError
        Missing, not a regular file (a pipe would block), too large, not
        UTF-8, not JSON, nested too deeply for the parser or holding integers
        too long to convert; one line naming the file.
    """
    path = check_regular_file(path, what)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise InputError(path, f"{what} of {size / 1e6:.0f} MB; at most {MAX_JSON_BYTES // 1_000_000} MB are read")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:  # the parser recurses once per nested list or object
        raise InputError(path, f"not a valid {what} (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: bad JSON, over-long integers
        raise InputError(path, f"not a valid {what} ({describe_exception(exc)})") from exc


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as indented strict JSON (NaN -> null), atomically."""
    return write_text_atomic(path, json.dumps(strict_json(value), indent=2, allow_nan=False) + "\n")


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows with the first row's keys as header; NaN becomes an empty cell."""
    path = Path(path)
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({key: "" if strict_json(value) is None else value for key, value in row.items()} for row in rows)
    return path

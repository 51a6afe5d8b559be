"""Result records on disk: strict JSON and CSV tables, written atomically."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def finite_mean(values: Any) -> float | None:
    """Mean of the finite values; ``None`` (JSON null) when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else None


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


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as indented strict JSON (NaN -> null), atomically."""
    return _write_text(Path(path), json.dumps(strict_json(value), indent=2, allow_nan=False) + "\n")


def write_csv(path: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write rows with the first row's keys as header; NaN becomes an empty cell."""
    path = Path(path)
    if not rows:
        raise ValueError(f"{path}: no rows to write")
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({key: "" if strict_json(value) is None else value for key, value in row.items()} for row in rows)
    partial.replace(path)
    return path


def _write_text(path: Path, text: str) -> Path:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    partial.replace(path)
    return path

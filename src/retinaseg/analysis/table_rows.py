"""Typed rows of the result tables (ETDRS sectors, agreement) and their CSV form.

Each table is a list of frozen dataclass rows, one class per table, whose
fields in order are the table's columns; :func:`as_records` turns the rows
into the ``{column: value}`` mappings :func:`retinaseg.io.records.write_csv`
writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TableRow:
    """Base of the typed table rows: a frozen dataclass of scalar fields, one per column."""


def as_records(rows: Sequence[TableRow]) -> list[dict[str, Any]]:
    """``{column: value}`` of every row, columns in field order.

    Parameters
    ----------
    rows
        Rows of one table.

    Returns
    -------
    list of dict
        One mapping per row, e.g. for :func:`retinaseg.io.records.write_csv`.
    """
    return [dataclasses.asdict(row) for row in rows]

"""Boundary and ETDRS-sector agreement of two segmentations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retinaseg.analysis.agreement import (
    SectorDifferenceRow,
    boundary_agreement,
    sector_differences,
)
from retinaseg.analysis.etdrs import EtdrsRow
from retinaseg.analysis.table_rows import as_records
from retinaseg.errors import InputError

NAN = np.nan


def test_boundary_agreement_by_hand() -> None:
    ours = {
        "ILM": np.array([[10.0, 12.0, NAN], [20.0, 21.0, 22.0]]),
        "BM": np.array([[50.0, 50.0, 50.0], [50.0, 50.0, 50.0]]),
        "RNFL": np.zeros((2, 3)),  # not in the reference: skipped
    }
    reference = {
        "BM": np.full((2, 3), NAN),
        "ILM": np.array([[11.0, 11.0, 11.0], [NAN, 23.0, 22.0]]),
        "ELM": np.zeros((2, 3)),
    }
    rows = boundary_agreement(ours, reference, axial_um=2.0)
    assert [r.boundary for r in rows] == ["ILM", "BM"]
    # the CSV columns of boundary_agreement.csv, in order
    assert list(as_records(rows)[0]) == ["boundary", "mad_um", "bias_um", "p95_abs_um", "n_ascans"]
    ilm, bm = rows
    # known in both: (10 vs 11), (12 vs 11), (21 vs 23), (22 vs 22) -> differences -1, 1, -2, 0 px = -2, 2, -4, 0 µm
    assert ilm.n_ascans == 4
    assert ilm.mad_um == pytest.approx(2.0)  # (2 + 2 + 4 + 0) / 4
    assert ilm.bias_um == pytest.approx(-1.0)  # ours shallower on average
    assert ilm.p95_abs_um == pytest.approx(3.7)  # abs 0, 2, 2, 4: 2 + 0.85 * (4 - 2)
    assert bm.n_ascans == 0
    assert all(math.isnan(value) for value in (bm.mad_um, bm.bias_um, bm.p95_abs_um))


def test_boundary_agreement_accepts_other_shapes_and_rejects_mismatches() -> None:
    rows = boundary_agreement({"ILM": np.array([3.0, 5.0])}, {"ILM": np.array([1.0, 1.0])}, 3.87)
    assert rows[0].bias_um == pytest.approx(3 * 3.87) and rows[0].mad_um == pytest.approx(3 * 3.87)
    with pytest.raises(InputError, match="ILM"):
        boundary_agreement({"ILM": np.zeros((2, 3))}, {"ILM": np.zeros((2, 4))}, 3.87)
    with pytest.raises(InputError, match="axial_um"):
        boundary_agreement({}, {}, 0.0)


def test_sector_differences_joins_on_layer_and_sector() -> None:
    ours = [
        EtdrsRow("total", "C0", mean_um=300.0, volume_mm3=0.2, coverage=1.0, n_cells=9),
        EtdrsRow("total", "S1", mean_um=350.0, volume_mm3=0.5, coverage=1.0, n_cells=9),
        EtdrsRow("RNFL", "C0", mean_um=12.0, volume_mm3=0.0, coverage=1.0, n_cells=9),
        EtdrsRow("total", "N1", mean_um=NAN, volume_mm3=NAN, coverage=0.0, n_cells=0),
    ]
    reference = [
        EtdrsRow("total", "N1", mean_um=340.0, volume_mm3=0.7, coverage=1.0, n_cells=9),
        EtdrsRow("total", "S1", mean_um=345.5, volume_mm3=0.5, coverage=1.0, n_cells=9),
        EtdrsRow("total", "C0", mean_um=310.0, volume_mm3=0.2, coverage=1.0, n_cells=9),
    ]
    rows = sector_differences(ours, reference)
    assert [(r.layer, r.sector) for r in rows] == [("total", "C0"), ("total", "S1"), ("total", "N1")]
    assert rows[0] == SectorDifferenceRow("total", "C0", ours_um=300.0, reference_um=310.0, difference_um=-10.0)
    # the CSV columns of etdrs_agreement.csv, in order
    assert list(as_records(rows)[0]) == ["layer", "sector", "ours_um", "reference_um", "difference_um"]
    assert rows[1].difference_um == 4.5
    assert math.isnan(rows[2].difference_um) and rows[2].reference_um == 340.0

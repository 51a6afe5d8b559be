"""NaN-safe mean and the number kinds config and file checks accept."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retinaseg.numeric import finite_mean, is_finite_number, is_integer, is_number


def test_finite_mean_skips_nan_and_infinities() -> None:
    assert finite_mean([1.0, np.nan, 3.0, np.inf, -np.inf]) == 2.0
    assert finite_mean(np.array([[1, 2], [3, 6]], np.int64)) == 3.0


def test_finite_mean_of_nothing_finite_is_nan() -> None:
    assert math.isnan(finite_mean([]))
    assert math.isnan(finite_mean([np.nan, np.inf]))


@pytest.mark.parametrize(
    ("value", "integer", "number", "finite"),
    [
        (3, True, True, True),
        (np.int64(3), True, True, True),
        (2**70, True, True, True),
        (True, False, False, False),
        (np.bool_(True), False, False, False),
        (2.5, False, True, True),
        (np.float32(2.5), False, True, True),
        (float("nan"), False, True, False),
        (float("inf"), False, True, False),
        ("3", False, False, False),
        (None, False, False, False),
    ],
)
def test_number_kinds(value: object, integer: bool, number: bool, finite: bool) -> None:
    assert (is_integer(value), is_number(value), is_finite_number(value)) == (integer, number, finite)

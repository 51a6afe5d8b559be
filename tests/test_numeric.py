"""NaN-safe mean."""

from __future__ import annotations

import math

import numpy as np

from retinaseg.numeric import finite_mean


def test_finite_mean_skips_nan_and_infinities() -> None:
    assert finite_mean([1.0, np.nan, 3.0, np.inf, -np.inf]) == 2.0
    assert finite_mean(np.array([[1, 2], [3, 6]], np.int64)) == 3.0


def test_finite_mean_of_nothing_finite_is_nan() -> None:
    assert math.isnan(finite_mean([]))
    assert math.isnan(finite_mean([np.nan, np.inf]))

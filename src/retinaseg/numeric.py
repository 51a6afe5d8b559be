"""Small numeric helpers shared by measurements, metrics and records."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def finite_mean(values: ArrayLike) -> float:
    """Mean of the finite values, ignoring NaN and infinities.

    Parameters
    ----------
    values
        Numbers of any shape, in any unit; the mean has the same unit.

    Returns
    -------
    float
        The mean over all finite values; NaN when there are none (where
        :func:`numpy.nanmean` would also warn).
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def is_integer(value: object) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), not a bool: what a count or class id in a config or file must be."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number (Python or NumPy), not a bool; it may be NaN or infinite."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def is_finite_number(value: object) -> bool:
    """Whether ``value`` is a finite real number, not a bool (huge integers beyond float range count as finite)."""
    return is_number(value) and (is_integer(value) or math.isfinite(value))  # type: ignore[arg-type]

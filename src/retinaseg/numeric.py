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

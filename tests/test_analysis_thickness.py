"""Layer thickness in micrometres from boundary rows."""

from __future__ import annotations

import numpy as np
import pytest

from retinaseg.analysis.thickness import layer_thickness_um
from retinaseg.errors import InputError

NAN = np.nan


def test_thickness_between_consecutive_boundaries() -> None:
    b = np.array([[10.0, 20.0, NAN], [15.0, 20.0, 30.0], [25.5, 21.0, 40.0]])  # (B=3, W=3)
    t = layer_thickness_um(b, axial_um=4.0)
    assert t.shape == (2, 3) and t.dtype == np.float64
    np.testing.assert_array_equal(t, [[20.0, 0.0, NAN], [42.0, 4.0, 40.0]])


def test_leading_axes_and_total_thickness() -> None:
    rng = np.random.default_rng(0)
    b = np.cumsum(rng.uniform(0, 5, size=(4, 8, 6)), axis=1)  # (N=4, B=8, W=6), ordered
    t = layer_thickness_um(b, 3.87)
    assert t.shape == (4, 7, 6)
    total = layer_thickness_um(b[..., [0, -1], :], 3.87)[..., 0, :]
    np.testing.assert_allclose(total, (b[:, -1] - b[:, 0]) * 3.87)
    np.testing.assert_allclose(t.sum(axis=1), total)


def test_sub_pixel_crossing_is_clipped_and_real_crossing_raises() -> None:
    b = np.array([[10.0, 10.0], [9.8, 12.0]])
    np.testing.assert_array_equal(layer_thickness_um(b, 3.0), [[0.0, 6.0]])
    with pytest.raises(ValueError, match="boundary 1 lies 2 px above boundary 0"):
        layer_thickness_um(np.array([[10.0, 10.0], [8.0, 12.0]]), 3.0)
    np.testing.assert_array_equal(layer_thickness_um(np.array([[10.0], [8.0]]), 3.0, tolerance_px=2.0), [[0.0]])


def test_all_unknown_is_nan() -> None:
    np.testing.assert_array_equal(layer_thickness_um(np.full((2, 3), NAN), 3.87), np.full((1, 3), NAN))


@pytest.mark.parametrize(
    ("boundaries", "axial_um"),
    [(np.zeros(5), 3.87), (np.zeros((1, 5)), 3.87), (np.zeros((2, 5)), 0.0), (np.zeros((2, 5)), NAN)],
)
def test_bad_input_raises(boundaries: np.ndarray, axial_um: float) -> None:
    with pytest.raises(InputError):
        layer_thickness_um(boundaries, axial_um)

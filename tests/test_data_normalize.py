"""Intensity normalisation, grey conversion and CLAHE."""

from __future__ import annotations

import numpy as np
import pytest

from retinaseg.data.normalize import NORMALIZE_METHODS, clahe, normalize_image, to_grey
from retinaseg.errors import InputError


def test_minmax_hand_values():
    image = np.array([[0, 5], [10, 20]], dtype=np.uint8)
    out = normalize_image(image, "minmax")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 0.25], [0.5, 1.0]])


def test_zscore_has_zero_mean_unit_std():
    image = np.array([[1.0, 2.0], [3.0, 6.0]])
    out = normalize_image(image, "zscore")
    # mean 3, population std sqrt(3.5)
    np.testing.assert_allclose(out, (image - 3.0) / np.sqrt(3.5), rtol=1e-6)
    assert abs(out.mean()) < 1e-6 and abs(out.std() - 1) < 1e-6


@pytest.mark.parametrize("method", ["minmax", "zscore", "percentile"])
def test_constant_image_gives_zeros_not_nan(method):
    out = normalize_image(np.full((4, 5), 7, dtype=np.uint8), method)
    assert np.array_equal(out, np.zeros((4, 5), dtype=np.float32))


def test_percentile_clips_then_scales():
    image = np.arange(101, dtype=np.float64).reshape(1, 101)  # percentile p of 0..100 is p
    out = normalize_image(image, "percentile", low_pct=10, high_pct=90)
    assert out[0, 0] == 0.0 and out[0, 10] == 0.0  # clipped below
    assert out[0, 100] == 1.0 and out[0, 90] == 1.0  # clipped above
    assert out[0, 50] == pytest.approx(0.5)
    assert out[0, 30] == pytest.approx(20 / 80)


def test_none_scales_integer_dtypes_by_their_max():
    np.testing.assert_allclose(normalize_image(np.array([[0, 51, 255]], np.uint8), "none"), [[0, 0.2, 1.0]])
    np.testing.assert_allclose(normalize_image(np.array([[0, 65535]], np.uint16), "none"), [[0, 1.0]])
    floats = np.array([[-2.0, 3.5]])
    np.testing.assert_array_equal(normalize_image(floats, "none"), floats.astype(np.float32))


def test_colour_statistics_are_joint_over_channels():
    image = np.zeros((3, 4, 2), dtype=np.float64)
    image[..., 1] = 10.0
    out = normalize_image(image, "minmax")
    # Per-channel scaling would give all zeros; joint scaling keeps the balance.
    assert np.all(out[..., 0] == 0.0) and np.all(out[..., 1] == 1.0)


def test_mask_restricts_statistics():
    image = np.array([[0.0, 10.0, 20.0, 100.0]])
    mask = np.array([[False, True, True, False]])
    out = normalize_image(image, "minmax", mask=mask)
    np.testing.assert_allclose(out, [[0.0, 0.0, 1.0, 1.0]])  # outside values are clipped


def test_mask_errors():
    with pytest.raises(InputError, match="mask"):
        normalize_image(np.ones((2, 2)), "minmax", mask=np.ones((3, 3), bool))
    with pytest.raises(InputError, match="no pixel"):
        normalize_image(np.ones((2, 2)), "minmax", mask=np.zeros((2, 2), bool))


def test_unknown_method_is_named():
    with pytest.raises(InputError, match="'histeq'"):
        normalize_image(np.ones((2, 2)), "histeq")


def test_bad_percentiles_and_shapes():
    with pytest.raises(InputError, match="percentile"):
        normalize_image(np.ones((2, 2)), "percentile", low_pct=90, high_pct=10)
    with pytest.raises(InputError, match="shape"):
        normalize_image(np.ones((2, 2, 2, 2)), "minmax")


@pytest.mark.parametrize("method", NORMALIZE_METHODS)
def test_inputs_are_left_intact(method):
    image = np.random.default_rng(0).integers(0, 255, (8, 9, 3), dtype=np.uint8)
    before = image.copy()
    normalize_image(image, method)
    to_grey(image, "luminance")
    clahe(image)
    assert np.array_equal(image, before)


def test_to_grey_channels():
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    assert np.all(to_grey(rgb) == 100)  # green is the default
    assert np.all(to_grey(rgb, "red") == 200)
    # 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2
    lum = to_grey(rgb, "luminance")
    assert lum.dtype == np.uint8 and np.all(lum == 124)
    grey = np.arange(4, dtype=np.uint8).reshape(2, 2)
    out = to_grey(grey)
    assert np.array_equal(out, grey) and out is not grey


def test_to_grey_errors():
    with pytest.raises(InputError, match="'purple'"):
        to_grey(np.zeros((2, 2, 3)), "purple")
    with pytest.raises(InputError, match="channels"):
        to_grey(np.zeros((2, 2, 4)))


def test_clahe_raises_local_contrast():
    rng = np.random.default_rng(1)
    low_contrast = (100 + 10 * rng.random((64, 64))).astype(np.uint8)
    out = clahe(low_contrast)
    assert out.dtype == np.uint8 and out.shape == low_contrast.shape
    assert out.std() > 2 * low_contrast.std()


def test_clahe_rgb_and_errors():
    rgb = np.random.default_rng(2).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    assert clahe(rgb).shape == rgb.shape
    with pytest.raises(InputError, match="uint8"):
        clahe(np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(InputError, match="clip_limit"):
        clahe(np.zeros((8, 8), dtype=np.uint8), clip_limit=0)

"""Joint augmentation of image, label and FOV mask."""

from __future__ import annotations

import numpy as np
import pytest

from retinaseg.data.augment import AugmentConfig, build_augmentation
from retinaseg.errors import InputError

ALL_OFF = {"hflip": False, "vflip": False, "rotate_deg": 0, "scale": 0, "translate": 0, "brightness": 0, "contrast": 0}
GEOMETRIC = dict(ALL_OFF, hflip=True, vflip=True, rotate_deg=30, scale=0.2, translate=0.1, elastic=True, p=1.0)


def _blocky(seed: int = 0, shape=(128, 160), block=32):
    """Image, label (values 0, 3, 7 in 32-px blocks) and FOV whose image encodes the label."""
    rng = np.random.default_rng(seed)
    blocks = rng.choice(np.array([0, 3, 7], dtype=np.uint8), (shape[0] // block, shape[1] // block))
    label = np.kron(blocks, np.ones((block, block), dtype=np.uint8))
    image = (label / 7.0).astype(np.float32)
    fov = label > 0
    return image, label, fov


@pytest.mark.parametrize("cfg", [None, ALL_OFF, AugmentConfig(**ALL_OFF), {"p": 0.0}])
def test_no_transform_is_identity(cfg):
    image, label, fov = _blocky()
    augment = build_augmentation(cfg, seed=0)
    assert augment.is_identity
    out = augment(image, label, fov)
    assert out[0] is image and out[1] is label and out[2] is fov


def test_unknown_key_and_bad_values_are_named():
    with pytest.raises(InputError, match="augment.rotation"):
        build_augmentation({"rotation": 10})
    with pytest.raises(InputError, match="augment.rotate_deg"):
        build_augmentation({"rotate_deg": "ten"})
    with pytest.raises(InputError, match="augment.hflip"):
        build_augmentation({"hflip": "yes"})
    with pytest.raises(InputError, match="augment.scale"):
        AugmentConfig(scale=1.0)
    with pytest.raises(InputError, match="augment.p"):
        AugmentConfig(p=2)


def test_geometric_transforms_keep_label_values_and_alignment():
    augment = build_augmentation(GEOMETRIC, seed=0)
    for seed in range(5):
        image, label, fov = _blocky(seed)
        label64 = label.astype(np.int64)
        out_image, out_label, out_fov = augment(image, label64, fov)
        assert out_image.shape == image.shape and out_image.dtype == np.float32
        assert out_label.dtype == np.int64 and out_fov.dtype == np.bool_
        assert set(np.unique(out_label)) <= {0, 3, 7}
        assert np.array_equal(out_fov, out_label > 0)  # masks move together
        # The image moved with the label: bilinear only differs at block edges
        # (a label left in place agrees on only about a third of the pixels).
        agreement = np.mean(np.abs(out_image * 7 - out_label) < 0.5)
        assert agreement > 0.9


def test_intensity_transforms_touch_only_the_image():
    cfg = dict(ALL_OFF, brightness=0.3, contrast=0.3, gamma=0.3, noise_std=0.1, p=1.0)
    image, label, fov = _blocky()
    out_image, out_label, out_fov = build_augmentation(cfg, seed=1)(image, label, fov)
    assert not np.allclose(out_image, image)
    assert np.array_equal(out_label, label) and np.array_equal(out_fov, fov)


def test_same_seed_same_result_and_reseed():
    image, label, fov = _blocky()
    first = build_augmentation(GEOMETRIC, seed=3)
    second = build_augmentation(GEOMETRIC, seed=3)
    a, b = first(image, label, fov), second(image, label, fov)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    other = build_augmentation(GEOMETRIC, seed=4)(image, label, fov)
    assert not np.array_equal(a[0], other[0])
    first.reseed(3)
    again = first(image, label, fov)
    assert all(np.array_equal(x, y) for x, y in zip(a, again))


@pytest.mark.parametrize("shape", [(64, 80), (64, 80, 1), (64, 80, 3)])
def test_channel_layouts_and_optional_masks(shape):
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    augment = build_augmentation(AugmentConfig(p=1.0), seed=0)
    out_image, out_label, out_fov = augment(image)
    assert out_image.shape == shape and out_label is None and out_fov is None


def test_default_config_does_not_flip_vertically():
    assert AugmentConfig().hflip and not AugmentConfig().vflip


def test_label_out_of_range_is_rejected():
    image = np.zeros((16, 16), np.float32)
    with pytest.raises(InputError, match="0..255"):
        build_augmentation(AugmentConfig(), seed=0)(image, np.full((16, 16), 300, np.int64))

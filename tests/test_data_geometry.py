"""Resizing, padding/cropping and random patches keep arrays aligned and exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retinaseg.data.geometry import (
    crop_to_original,
    pad_to_multiple,
    pad_to_shape,
    random_crop,
    resize_image,
    resize_label,
)
from retinaseg.errors import InputError


def _random_labels(rng: np.random.Generator, shape: tuple[int, int], values=(0, 3, 7)) -> np.ndarray:
    return rng.choice(np.array(values, dtype=np.uint8), size=shape)


def test_resize_label_never_creates_values():
    rng = np.random.default_rng(0)
    for _ in range(50):
        src = tuple(int(s) for s in rng.integers(1, 60, 2))
        dst = tuple(int(s) for s in rng.integers(1, 90, 2))
        out = resize_label(_random_labels(rng, src), dst)
        assert out.shape == dst and out.dtype == np.uint8
        assert set(np.unique(out)) <= {0, 3, 7}


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_resize_label_integer_factor_round_trip_is_exact(factor):
    rng = np.random.default_rng(factor)
    label = _random_labels(rng, (37, 53))
    up = resize_label(label, (37 * factor, 53 * factor))
    # Each pixel becomes a factor x factor block.
    assert np.array_equal(up, np.repeat(np.repeat(label, factor, 0), factor, 1))
    assert np.array_equal(resize_label(up, (37, 53)), label)


def test_resize_label_keeps_dtype_and_channels():
    mask = np.random.default_rng(1).random((10, 12)) > 0.5
    assert resize_label(mask, (20, 24)).dtype == np.bool_
    stack = np.zeros((10, 12, 2), dtype=np.int64)
    assert resize_label(stack, (5, 6)).shape == (5, 6, 2)


def test_resize_image_shapes_and_dtype():
    image = np.random.default_rng(2).random((30, 40))
    assert resize_image(image, (15, 20)).shape == (15, 20)
    assert resize_image(image[..., None], (60, 80)).shape == (60, 80, 1)
    out = resize_image(np.stack([image] * 3, axis=2), (45, 50))
    assert out.shape == (45, 50, 3) and out.dtype == np.float32


def test_resized_image_and_label_stay_aligned():
    rng = np.random.default_rng(3)
    blocks = _random_labels(rng, (6, 7))
    label = np.repeat(np.repeat(blocks, 8, 0), 8, 1)  # 8x8 blocks
    image = resize_image(label.astype(np.float32), (96, 112), antialias=False)
    resized = resize_label(label, (96, 112))
    # Bilinear and nearest share pixel centres: inside blocks they agree.
    interior = np.zeros((96, 112), bool)
    interior[2:-2, 2:-2] = True
    far_from_edges = np.ones((96, 112), bool)
    far_from_edges[1::16] = far_from_edges[::16] = far_from_edges[15::16] = False
    far_from_edges[:, 1::16] = far_from_edges[:, ::16] = far_from_edges[:, 15::16] = False
    np.testing.assert_allclose(image[interior & far_from_edges], resized[interior & far_from_edges])


def test_resize_image_antialias_averages_thin_stripes():
    stripes = np.zeros((8, 8), dtype=np.float32)
    stripes[:, ::2] = 1.0  # one-pixel stripes
    np.testing.assert_allclose(resize_image(stripes, (4, 4)), 0.5)
    aliased = resize_image(stripes, (4, 3), antialias=False)
    assert aliased.std() > 0.1


def test_resize_rejects_bad_sizes():
    with pytest.raises(InputError, match="size"):
        resize_label(np.zeros((4, 4)), (0, 3))
    with pytest.raises(InputError, match="size"):
        resize_image(np.zeros((4, 4)), (2.5, 3))


@pytest.mark.parametrize("multiple", [16, 32])
@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_pad_then_crop_is_identity_for_odd_sizes(multiple, mode):
    rng = np.random.default_rng(multiple)
    image = rng.random((496, 523)).astype(np.float32)
    padded, spec = pad_to_multiple(image, multiple, mode)
    assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
    assert padded.shape == spec.padded_shape and spec.original_shape == (496, 523)
    restored = crop_to_original(padded, spec)
    assert np.array_equal(restored, image)
    # The first and last rows/columns survive (padding only at bottom/right).
    for index in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
        assert np.array_equal(restored[index], image[index])
    assert np.array_equal(padded[:496, :523], image)


def test_pad_reflect_and_constant_content():
    array = np.arange(12, dtype=np.int64).reshape(3, 4)
    padded, _ = pad_to_shape(array, (5, 6))
    assert np.array_equal(padded[3, :4], array[1]) and np.array_equal(padded[4, :4], array[0])  # mirror without edge
    assert np.array_equal(padded[:3, 4], array[:, 2])
    filled, _ = pad_to_shape(array, (5, 6), "constant", value=-1)
    assert np.all(filled[3:] == -1) and np.all(filled[:, 4:] == -1)
    # Reflecting by more than the array length still works.
    tiny, _ = pad_to_shape(np.array([[5]]), (4, 3))
    assert np.all(tiny == 5)


def test_pad_channel_layouts():
    rng = np.random.default_rng(4)
    hwc = rng.random((21, 35, 3))
    padded, spec = pad_to_multiple(hwc, 8)
    assert padded.shape == (24, 40, 3)
    assert np.array_equal(crop_to_original(padded, spec), hwc)
    # A 2-D prediction for the padded colour image crops with the same spec.
    assert crop_to_original(padded[..., 0], spec).shape == (21, 35)
    chw = rng.random((2, 21, 35))
    padded, spec = pad_to_multiple(chw, 8, axes=(-2, -1))
    assert padded.shape == (2, 24, 40) and spec.axes == (-2, -1)
    assert np.array_equal(crop_to_original(padded, spec), chw)


def test_crop_network_output_tensor():
    image = np.zeros((1, 37, 50), dtype=np.float32)
    padded, spec = pad_to_multiple(image, 16, axes=(-2, -1))
    logits = torch.randn(1, 10, *padded.shape[1:])  # (B, K, H, W)
    cropped = crop_to_original(logits, spec)
    assert isinstance(cropped, torch.Tensor) and cropped.shape == (1, 10, 37, 50)
    assert torch.equal(cropped, logits[..., :37, :50])


def test_no_padding_needed_is_a_no_op():
    array = np.ones((32, 64))
    padded, spec = pad_to_multiple(array, 32)
    assert padded.shape == (32, 64) and spec.padded_shape == spec.original_shape


def test_pad_and_crop_errors():
    with pytest.raises(InputError, match="multiple"):
        pad_to_multiple(np.ones((4, 4)), 0)
    with pytest.raises(InputError, match="multiple"):
        pad_to_multiple(np.ones((4, 4)), 2.5)
    with pytest.raises(InputError, match="axes"):
        pad_to_multiple(np.ones((4, 4)), 4, axes=(0, 2))
    with pytest.raises(InputError, match="mode"):
        pad_to_shape(np.ones((4, 4)), (8, 8), "wrap")
    _, spec = pad_to_multiple(np.ones((5, 5)), 4)
    with pytest.raises(InputError, match="padded"):
        crop_to_original(np.ones((5, 5)), spec)


def _coordinate_image(height: int, width: int) -> np.ndarray:
    return np.arange(height * width, dtype=np.float64).reshape(height, width)


def test_random_crop_cuts_the_same_window_everywhere():
    image = _coordinate_image(40, 50)
    label = (image % 7).astype(np.uint8)
    fov = image % 2 == 0
    img, lab, fov_patch = random_crop(image[..., None], label, fov, (16, 20), np.random.default_rng(0))
    assert img.shape == (16, 20, 1) and lab.shape == (16, 20) and fov_patch.shape == (16, 20)
    top, left = divmod(int(img[0, 0, 0]), 50)
    assert np.array_equal(img[..., 0], image[top : top + 16, left : left + 20])
    assert np.array_equal(lab, label[top : top + 16, left : left + 20])
    assert np.array_equal(fov_patch, fov[top : top + 16, left : left + 20])


def test_random_crop_is_deterministic_and_varies():
    image = _coordinate_image(64, 64)
    first = random_crop(image, None, None, 8, np.random.default_rng(7))[0]
    again = random_crop(image, None, None, 8, np.random.default_rng(7))[0]
    assert np.array_equal(first, again)
    corners = {random_crop(image, None, None, 8, np.random.default_rng(s))[0][0, 0] for s in range(20)}
    assert len(corners) > 10


def test_random_crop_pads_small_images():
    image = _coordinate_image(10, 12)
    img, lab, fov = random_crop(image, np.ones((10, 12), np.uint8), None, (16, 16), np.random.default_rng(0))
    assert img.shape == (16, 16) and lab.shape == (16, 16) and fov is None
    assert np.array_equal(img[:10, :12], image)


def test_random_crop_foreground_bias_hits_rare_pixels():
    label = np.zeros((200, 200), dtype=np.uint8)
    label[150, 30] = 1  # a single foreground pixel
    image = np.zeros((200, 200), dtype=np.float32)
    for seed in range(10):
        _, lab, _ = random_crop(image, label, None, 32, np.random.default_rng(seed), foreground_prob=1.0)
        assert lab.sum() == 1
    # Outside the FOV the pixel does not count, so sampling falls back to uniform.
    fov = np.ones((200, 200), bool)
    fov[150, 30] = False
    hits = sum(random_crop(image, label, fov, 32, np.random.default_rng(s), foreground_prob=1.0)[1].sum() for s in range(10))
    assert hits < 10


def test_random_crop_errors():
    with pytest.raises(InputError, match="foreground_prob"):
        random_crop(np.zeros((8, 8)), None, None, 4, np.random.default_rng(0), foreground_prob=1.5)
    with pytest.raises(InputError, match="shape"):
        random_crop(np.zeros((8, 8)), np.zeros((8, 9)), None, 4, np.random.default_rng(0))

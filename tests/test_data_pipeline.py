"""Preprocessing, relabelling, the torch datasets and whole-image inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retinaseg.data.dataset import PatchDataset, WholeImageDataset, prepare_samples, resize_samples
from retinaseg.data.preprocess import Preprocessing, choose_channels, field_of_view, prepare_image
from retinaseg.data.relabel import relabel, relabel_from_config
from retinaseg.errors import InputError
from retinaseg.models import build_model
from retinaseg.models.sliding import infer_logits
from retinaseg.types import Sample, SampleSet


def _sample_set(n: int = 2, height: int = 40, width: int = 30, rgb: bool = False) -> SampleSet:
    rng = np.random.default_rng(0)
    shape = (height, width, 3) if rgb else (height, width)
    samples = [
        Sample(
            id=f"s{i}",
            subject=f"p{i}",
            image=rng.integers(0, 256, shape, dtype=np.uint8),
            label=rng.integers(0, 3, (height, width), dtype=np.uint8),
        )
        for i in range(n)
    ]
    return SampleSet(samples, ["a", "b", "c"], modality="fundus" if rgb else "oct")


def test_prepare_image_channels_and_range():
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 1] = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    green = prepare_image(rgb, Preprocessing(channels="green", normalize="minmax"))
    assert green.shape == (1, 4, 5) and green.dtype == np.float32
    assert green.min() == 0.0 and green.max() == 1.0
    # minmax of the green channel is a linear ramp over the 20 pixels
    assert np.allclose(green[0].ravel(), np.arange(20) / 19)
    assert prepare_image(rgb, Preprocessing(channels="rgb")).shape == (3, 4, 5)
    assert prepare_image(rgb[..., 0], Preprocessing(channels="rgb")).shape == (3, 4, 5)


def test_choose_channels():
    assert choose_channels("auto", "fundus", 3) == "green"
    assert choose_channels("auto", "oct", 1) == "grey"
    with pytest.raises(InputError, match="data.channels"):
        choose_channels("purple", "oct", 1)


def test_field_of_view_modes():
    sample = _sample_set(1).samples[0]
    assert field_of_view(sample, "auto", "oct").all()
    sample.fov = np.zeros(sample.image.shape, dtype=bool)
    assert not field_of_view(sample, "auto", "oct").any()
    assert field_of_view(sample, "none", "oct").all()
    with pytest.raises(InputError, match="data.fov"):
        field_of_view(sample, "sometimes", "oct")


def test_relabel_merges_classes_and_rejects_unmapped_values():
    sample_set = _sample_set(1)
    original = sample_set.samples[0].label.copy()
    merged = relabel(sample_set, {0: 0, 1: 1, 2: 1}, ["background", "retina"])
    assert merged.task == "binary" and merged.class_names == ["background", "retina"]
    assert np.array_equal(merged.samples[0].label, (original > 0).astype(np.uint8))
    assert np.array_equal(sample_set.samples[0].label, original)  # input untouched
    with pytest.raises(InputError, match=r"class ids \[2\]"):
        relabel(sample_set, {0: 0, 1: 1}, ["background", "retina"])
    with pytest.raises(InputError, match="data.relabel.map"):
        relabel(sample_set, {0: 0, 1: 5, 2: 1}, ["background", "retina"])
    assert relabel_from_config(sample_set, None) is sample_set
    with pytest.raises(InputError, match="data.relabel.map"):
        relabel_from_config(sample_set, {"class_names": ["a", "b"]})


def test_patch_dataset_is_reproducible_and_changes_per_epoch():
    prepared = prepare_samples(_sample_set(2), Preprocessing())
    dataset = PatchDataset(prepared, patch_size=(16, 8), patches_per_image=3, seed=7)
    assert len(dataset) == 6
    item = dataset[4]
    assert item["image"].shape == (1, 16, 8) and item["label"].shape == (16, 8)
    assert item["label"].dtype == torch.int64 and item["fov"].dtype == torch.bool
    assert torch.equal(dataset[4]["image"], item["image"])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[4]["image"], item["image"])


def test_whole_image_dataset_keeps_sizes():
    prepared = prepare_samples(_sample_set(1, height=37, width=23), Preprocessing())
    item = WholeImageDataset(prepared)[0]
    assert item["image"].shape == (1, 37, 23) and item["label"].shape == (37, 23)


@pytest.mark.parametrize("shape", [(16, 12), (80, 64)])
def test_resize_samples_keeps_class_ids_and_masks(shape):
    prepared = prepare_samples(_sample_set(2, height=37, width=23, rgb=True), Preprocessing(channels="rgb"))
    prepared[0].fov[:5] = False
    resized = resize_samples(prepared, shape)
    for before, after in zip(prepared, resized, strict=True):
        assert after.image.shape == (3, *shape) and after.image.dtype == np.float32
        assert after.label.shape == after.fov.shape == shape
        assert (after.label.dtype, after.fov.dtype) == (np.int64, np.bool_)
        # Nearest neighbour: no class id or mask value that was not there.
        assert set(np.unique(after.label)) <= set(np.unique(before.label))
        assert set(np.unique(after.fov)) <= set(np.unique(before.fov))
    assert not resized[0].fov.all() and resize_samples(prepared, None) is prepared


def test_resized_intensities_stay_in_the_input_range():
    prepared = prepare_samples(_sample_set(1, height=40, width=30), Preprocessing(normalize="minmax"))
    for shape in ((10, 10), (120, 90)):  # area averaging when shrinking, bilinear when enlarging
        (resized,) = resize_samples(prepared, shape)
        assert 0.0 <= resized.image.min() and resized.image.max() <= 1.0


def test_preprocessing_keeps_the_resize_as_a_tuple():
    assert Preprocessing(resize=[64, 32]).resize == (64, 32)  # as read back from a JSON weight file
    assert Preprocessing().to_dict()["resize"] is None
    with pytest.raises(InputError, match="two positive integers"):
        Preprocessing(resize=[0, 32])


@pytest.mark.parametrize("shape", [(273, 67), (5, 3), (32, 32)])
def test_infer_logits_returns_the_input_size(shape):
    torch.manual_seed(0)
    model = build_model("unet", 1, 3, {"depth": 3, "base_channels": 4}).eval()
    image = torch.randn(1, 1, *shape)
    with torch.no_grad():
        whole = infer_logits(model, image, 4)
        windows = infer_logits(model, image, 4, roi_size=(32, 32))
    assert whole.shape == windows.shape == (1, 3, *shape)


def test_infer_logits_pads_without_shifting_pixels():
    # A 1x1 convolution sees each pixel alone, so padding must not move anything.
    model = torch.nn.Conv2d(1, 2, kernel_size=1)
    image = torch.randn(1, 1, 13, 7)
    with torch.no_grad():
        assert torch.allclose(infer_logits(model, image, 8), model(image))

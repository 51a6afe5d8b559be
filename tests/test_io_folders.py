"""Tests for retinaseg.io.folders (image + mask folders, CHASE_DB1, DRIVE) and io.sources."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from retinaseg.errors import InputError
from retinaseg.io.folders import (
    load_chase_db1,
    load_drive,
    load_image_mask_folder,
    pair_image_masks,
)
from retinaseg.io.sources import SOURCES, load_source, register_source
from retinaseg.types import SampleSet

# --- CHASE_DB1 (real) -------------------------------------------------------------------------


def test_real_chase_db1(chase_root: Path) -> None:
    samples = load_chase_db1(chase_root)
    assert len(samples) == 28
    assert samples.subjects() == [f"{k:02d}" for k in range(1, 15)]
    assert (samples.task, samples.modality, samples.class_names) == ("binary", "fundus", ["background", "vessel"])
    assert [s.id for s in samples.samples[:2]] == ["Image_01L", "Image_01R"]
    for sample in samples.samples:
        assert sample.image.shape == (960, 999, 3) and sample.image.dtype == np.uint8
        assert sample.label.shape == (960, 999) and sample.label.max() == 1
        assert sample.fov is None
    vessel_fraction = np.mean([s.label.mean() for s in samples.samples])
    assert 0.06 < vessel_fraction < 0.08  # SOURCE.md: about 6.9 % of the image


def test_chase_second_observer_differs(chase_root: Path) -> None:
    first = load_chase_db1(chase_root).samples[0]
    second = load_source("chase_db1", chase_root, annotator="2ndHO").samples[0]
    np.testing.assert_array_equal(first.image, second.image)
    assert (first.label != second.label).any()
    with pytest.raises(InputError, match="annotator"):
        load_chase_db1(chase_root, annotator="3rdHO")


# --- DRIVE (fixture in the DRIVE layout) ------------------------------------------------------


def _drive(root: Path, split: str, numbers: list[int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = {}
    for sub in ("images", "1st_manual", "mask"):
        (root / split / sub).mkdir(parents=True)
    for number in numbers:
        image = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
        vessels = rng.random((6, 5)) < 0.3
        fov = np.zeros((6, 5), bool)
        fov[1:5, 1:4] = True
        tifffile.imwrite(root / split / "images" / f"{number:02d}_{split}.tif", image, photometric="rgb")
        manual = root / split / "1st_manual" / f"{number:02d}_manual1.gif"
        Image.fromarray(vessels.astype(np.uint8) * 255).save(manual)
        Image.fromarray(fov.astype(np.uint8) * 255).save(root / split / "mask" / f"{number:02d}_{split}_mask.gif")
        truth[f"{number:02d}_{split}"] = (image, vessels, fov)
    return truth


@pytest.mark.parametrize("split, numbers", [("training", [21, 22]), ("test", [1, 2, 3])])
def test_drive_layout(tmp_path: Path, split: str, numbers: list[int]) -> None:
    truth = _drive(tmp_path, split, numbers)
    samples = load_drive(tmp_path, split=split)
    assert [s.id for s in samples.samples] == list(truth)
    assert samples.subjects() == [f"{n:02d}" for n in numbers]
    assert (samples.task, samples.modality) == ("binary", "fundus")
    for sample in samples.samples:
        image, vessels, fov = truth[sample.id]
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.label, vessels.astype(np.uint8))
        np.testing.assert_array_equal(sample.fov, fov)
        assert sample.fov.dtype == bool


def test_drive_missing_fov_and_bad_split(tmp_path: Path) -> None:
    _drive(tmp_path, "training", [21])
    (tmp_path / "training" / "mask" / "21_training_mask.gif").unlink()
    with pytest.raises(InputError, match="21_training.tif"):
        load_drive(tmp_path)
    with pytest.raises(InputError, match="split"):
        load_drive(tmp_path, split="validation")


# --- generic folders --------------------------------------------------------------------------


def _folder(root: Path, stems: list[str], mask_values: np.ndarray | None = None) -> tuple[Path, Path]:
    images, masks = root / "images", root / "masks"
    images.mkdir(exist_ok=True)
    masks.mkdir(exist_ok=True)
    for stem in stems:
        Image.fromarray(np.full((4, 3), 100, np.uint8)).save(images / f"{stem}.png")
        values = np.array([[0, 255, 0], [0, 0, 255], [255, 0, 0], [0, 0, 0]], np.uint8)
        Image.fromarray(values if mask_values is None else mask_values).save(masks / f"{stem}_gt.png")
    return images, masks


def test_pair_image_masks(tmp_path: Path) -> None:
    images, masks = _folder(tmp_path, ["b", "a"])
    (masks / "zzz_gt.png").write_bytes(b"extra masks are ignored")
    pairs = pair_image_masks(images, masks, mask_suffix="_gt")
    assert [(i.name, m.name) for i, m in pairs] == [("a.png", "a_gt.png"), ("b.png", "b_gt.png")]
    assert pair_image_masks(images, masks, "_gt", ".png") == pairs
    with pytest.raises(InputError, match=r"no mask for 2 image\(s\): a.png, b.png \(expected e.g. a_x"):
        pair_image_masks(images, masks, mask_suffix="_x")
    with pytest.raises(InputError, match="mask_suffix"):
        pair_image_masks(images, images)


def test_pair_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        pair_image_masks(tmp_path / "empty", tmp_path / "empty", "_gt")
    with pytest.raises(InputError, match="folder not found"):
        pair_image_masks(tmp_path / "nope", tmp_path / "empty")
    images, masks = _folder(tmp_path, ["a"])
    Image.fromarray(np.zeros((4, 3), np.uint8)).save(images / "a.tif")
    with pytest.raises(InputError, match="two files named a"):
        pair_image_masks(images, masks, "_gt")


def test_folder_binary_default_names(tmp_path: Path) -> None:
    images, masks = _folder(tmp_path, ["p01_a", "p01_b", "p02_a"])
    samples = load_image_mask_folder(images, masks, mask_suffix="_gt", subject_pattern=r"^(p\d+)_")
    assert samples.class_names == ["background", "vessel"] and samples.task == "binary"
    assert samples.subjects() == ["p01", "p02"] and samples.name == "images"
    np.testing.assert_array_equal(samples.samples[0].label, [[0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0]])
    oct_set = load_image_mask_folder(images, masks, mask_suffix="_gt", modality="oct")
    assert oct_set.class_names == ["background", "foreground"]


def test_folder_multiclass_mapping_and_fov(tmp_path: Path) -> None:
    values = np.array([[0, 10, 20], [20, 10, 0], [0, 0, 0], [10, 10, 10]], np.uint8)
    images, masks = _folder(tmp_path, ["a"], values)
    mapped = load_image_mask_folder(images, masks, mask_suffix="_gt", value_to_class={0: 0, 10: 1, 20: 2})
    assert mapped.class_names == ["class_0", "class_1", "class_2"] and mapped.task == "multiclass"
    np.testing.assert_array_equal(mapped.samples[0].label[0], [0, 1, 2])
    (tmp_path / "fov").mkdir()
    Image.fromarray(np.pad(np.full((2, 1), 255, np.uint8), 1)).save(tmp_path / "fov" / "a.png")
    with_fov = load_image_mask_folder(
        images,
        masks,
        mask_suffix="_gt",
        fov_dir=tmp_path / "fov",
        value_to_class={0: 0, 10: 1, 20: 2},
        class_names=["bg", "x", "y"],
    )
    assert with_fov.samples[0].fov.sum() == 2 and with_fov.class_names == ["bg", "x", "y"]


def test_folder_bad_inputs(tmp_path: Path, chase_root: Path) -> None:
    images, masks = _folder(tmp_path, ["a"], np.array([[0, 1, 3]] * 4, np.uint8))
    with pytest.raises(InputError, match=r"a_gt.png: mask values \[0, 1, 3\] are not class ids 0..1"):
        load_image_mask_folder(images, masks, mask_suffix="_gt", class_names=["bg", "vessel"])
    with pytest.raises(InputError, match="a.png: file name does not match subject_pattern"):
        load_image_mask_folder(images, masks, mask_suffix="_gt", subject_pattern=r"^p(\d+)", class_names=["bg", "x", "y", "z"])

    Image.fromarray(np.zeros((5, 3), np.uint8)).save(masks / "a_gt.png")
    with pytest.raises(InputError, match=r"a_gt.png: mask size 3x5 differs"):
        load_image_mask_folder(images, masks, mask_suffix="_gt")

    jpeg = (chase_root / "Image_01L.jpg").read_bytes()
    (images / "a.png").unlink()
    (images / "a.jpg").write_bytes(jpeg[:2000])
    with pytest.raises(InputError, match="a.jpg"):
        load_image_mask_folder(images, masks, mask_suffix="_gt")


@pytest.mark.parametrize(
    "values",
    [np.array([[0, 128, 255]] * 4, np.uint8), np.random.default_rng(0).integers(0, 256, (4, 3), dtype=np.uint8)],
    ids=["0-128-255", "random"],
)
def test_folder_mask_values_without_declared_classes_refused(tmp_path: Path, values: np.ndarray) -> None:
    images, masks = _folder(tmp_path, ["a"], values)
    with pytest.raises(InputError, match=r"a_gt.png: mask values \[\d+, .*\] are not class ids 0..1 .*value_to_class"):
        load_image_mask_folder(images, masks, mask_suffix="_gt")
    mapping = {int(v): 1 + (int(v) > 128) for v in np.unique(values)} | {0: 0}
    mapped = load_image_mask_folder(images, masks, mask_suffix="_gt", value_to_class=mapping, class_names=["bg", "low", "high"])
    assert mapped.samples[0].label.max() == 2 and mapped.class_names == ["bg", "low", "high"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"class_names": "background"}, r"^class_names: must be a list of class names"),
        ({"class_names": ["bg", "vessel"], "value_to_class": {0: 0, 255: 2}}, r"^value_to_class: entry 255: 2"),
        ({"value_to_class": [0, 255]}, r"^value_to_class: must map stored mask values"),
        ({"subject_pattern": "p(\\d+"}, r"^subject_pattern: 'p\(\\\\d\+' is not a valid regular expression"),
        ({"subject_pattern": 5}, r"^subject_pattern: must be a regular expression"),
    ],
)
def test_folder_options_checked_before_reading(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_image_mask_folder(tmp_path / "absent", tmp_path / "absent", **options)


def test_subject_pattern_giving_no_subject(tmp_path: Path) -> None:
    images, masks = _folder(tmp_path, ["a"])
    with pytest.raises(InputError, match=r"a.png: subject_pattern .* gives an empty subject for 'a'"):
        load_image_mask_folder(images, masks, mask_suffix="_gt", subject_pattern=r"^(p\d+)?")


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_folder_entry_that_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    images, masks = _folder(tmp_path, ["a"])
    if kind == "fifo":
        os.mkfifo(images / "b.png")  # reading it would block forever
    else:
        (images / "b.png").mkdir()
    with pytest.raises(InputError, match=r"images/b.png: is (not a regular file|a folder)"):
        load_image_mask_folder(images, masks, mask_suffix="_gt")


# --- named sources ----------------------------------------------------------------------------


def test_load_source_dispatch_and_errors(tmp_path: Path) -> None:
    _, masks = _folder(tmp_path, ["a", "b"])
    for stem in ("a", "b"):
        (masks / f"{stem}_gt.png").rename(masks / f"{stem}.png")
    loaded = load_source("folder", tmp_path, modality="oct")
    assert len(loaded) == 2 and loaded.modality == "oct"
    assert {"duke_npy", "duke_mat", "chase_db1", "drive", "folder", "retinaseg", "vgg_json"} <= set(SOURCES)
    with pytest.raises(InputError, match="unknown source 'nope'"):
        load_source("nope", tmp_path)
    with pytest.raises(InputError, match="not_here"):
        load_source("folder", tmp_path / "not_here")
    with pytest.raises(InputError, match=r"^modalty: unknown folder source option 'modalty'; did you mean 'modality'\?"):
        load_source("folder", tmp_path, modalty="oct")


def test_register_source(tmp_path: Path) -> None:
    def fake(root: Path, *, size: int = 1) -> SampleSet:
        return SampleSet(samples=[], class_names=["a", "b"], name=f"{root.name}-{size}")

    register_source("test_fake", fake)
    try:
        assert load_source("test_fake", tmp_path, size=3).name == f"{tmp_path.name}-3"
        with pytest.raises(ValueError, match="already registered"):
            register_source("test_fake", fake)
    finally:
        del SOURCES["test_fake"]

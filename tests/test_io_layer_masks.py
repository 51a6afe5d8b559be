"""Tests for retinaseg.io.layer_masks: merging overlapping binary layer masks."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinaseg.errors import InputError
from retinaseg.io.layer_masks import load_layer_mask_folder, merge_layer_masks

# 3 x 4 masks. "retina" covers rows 0-1, "rpe" row 1 and one pixel of row 2,
# "pr" (photoreceptors) column 3 of rows 1-2.
RETINA = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]])
RPE = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
PR = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]])


def test_earlier_priority_wins_with_exact_counts() -> None:
    label, report = merge_layer_masks({"retina": RETINA, "rpe": RPE, "pr": PR}, ["pr", "rpe", "retina"])
    np.testing.assert_array_equal(label, [[3, 3, 3, 3], [2, 2, 2, 1], [2, 0, 0, 1]])
    assert label.dtype == np.uint8
    assert report.conflict_pixels == 4  # row 1: all four pixels claimed twice or more
    assert report.conflicts_by_pair == {("pr", "rpe"): 1, ("pr", "retina"): 1, ("rpe", "retina"): 3}
    assert report.unlabelled_pixels == 2


def test_broad_mask_first_swallows_thin_layers() -> None:
    label, report = merge_layer_masks({"retina": RETINA, "rpe": RPE}, ["retina", "rpe"])
    np.testing.assert_array_equal(label, [[1, 1, 1, 1], [1, 1, 1, 1], [2, 0, 0, 0]])
    assert report.conflicts_by_pair == {("retina", "rpe"): 4} and report.conflict_pixels == 4


def test_custom_class_ids_and_no_conflict() -> None:
    top = np.array([[1, 0], [0, 0]], bool)
    bottom = np.array([[0, 0], [0, 255]], np.uint8)
    label, report = merge_layer_masks({"a": top, "b": bottom}, ["a", "b"], class_ids={"a": 5, "b": 5})
    np.testing.assert_array_equal(label, [[5, 0], [0, 5]])
    assert (report.conflict_pixels, report.conflicts_by_pair, report.unlabelled_pixels) == (0, {}, 2)


@pytest.mark.parametrize(
    "masks, priority, class_ids, message",
    [
        ({"a": RETINA, "b": RPE}, ["a"], None, "exactly once"),
        ({"a": RETINA}, ["a", "a"], None, "more than once"),
        ({"a": RETINA, "b": RPE[:2]}, ["a", "b"], None, "one shape"),
        ({"a": RETINA}, ["a"], {"a": 0}, "1..255"),
        ({"a": RETINA}, ["a"], {"b": 1}, "no class id for a"),
    ],
)
def test_merge_errors(masks: dict, priority: list[str], class_ids: dict | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        merge_layer_masks(masks, priority, class_ids)


def _write(folder: Path, name: str, array: np.ndarray) -> None:
    Image.fromarray(array.astype(np.uint8)).save(folder / name)


def test_load_layer_mask_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for stem in ("scan01", "scan02"):
        _write(tmp_path, f"{stem}.png", np.full((3, 4), 90))
        _write(tmp_path, f"{stem}_retina.png", RETINA * 255)
        _write(tmp_path, f"{stem}_rpe.png", RPE * 255 if stem == "scan01" else np.zeros((3, 4)))
    with caplog.at_level(logging.WARNING, logger="retinaseg.io.layer_masks"):
        samples = load_layer_mask_folder(tmp_path, {"retina": "_retina", "rpe": "_rpe"}, ["rpe", "retina"])
    assert [s.id for s in samples.samples] == ["scan01", "scan02"]
    assert samples.class_names == ["background", "rpe", "retina"] and samples.task == "multiclass"
    np.testing.assert_array_equal(samples.samples[0].label, [[2, 2, 2, 2], [1, 1, 1, 1], [1, 0, 0, 0]])
    reports = samples.extra["merge_reports"]
    assert reports["scan01"].conflicts_by_pair == {("rpe", "retina"): 4}
    assert reports["scan02"].conflict_pixels == 0
    assert "scan01.png: 4 pixels" in caplog.text and "scan02" not in caplog.text


def test_load_layer_mask_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images"):
        load_layer_mask_folder(tmp_path, {"rpe": "_rpe"}, ["rpe"])
    _write(tmp_path, "scan01.png", np.zeros((3, 4)))
    _write(tmp_path, "scan01_rpe.png", np.zeros((3, 4)))
    with pytest.raises(InputError, match="missing layer masks: scan01_retina"):
        load_layer_mask_folder(tmp_path, {"rpe": "_rpe", "retina": "_retina"}, ["rpe", "retina"])
    _write(tmp_path, "scan01_retina.png", np.zeros((2, 4)))
    with pytest.raises(InputError, match="scan01_retina.png: mask shape"):
        load_layer_mask_folder(tmp_path, {"rpe": "_rpe", "retina": "_retina"}, ["rpe", "retina"])

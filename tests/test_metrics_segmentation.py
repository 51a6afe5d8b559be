"""Multi-class overlap scores and HD95, checked against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retinaseg.errors import InputError
from retinaseg.metrics.segmentation import (
    SegmentationEvaluator,
    confusion_matrix,
    hd95,
    scores_from_confusion,
)

# 4x4 example. Class 1: TP 3, FP 1 at (1, 1), FN 1 at (1, 3).
# Class 2: TP 3, FN 1 at (3, 3). Class 0: TP 7, FP 2, FN 1.
TARGET = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [0, 0, 0, 0],
        [2, 2, 2, 2],
    ],
    dtype=np.uint8,
)
PRED = np.array(
    [
        [0, 0, 1, 1],
        [0, 1, 1, 0],
        [0, 0, 0, 0],
        [2, 2, 2, 0],
    ],
    dtype=np.uint8,
)


def test_confusion_matrix_by_hand() -> None:
    cm = confusion_matrix(PRED, TARGET, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[7, 1, 0], [1, 3, 0], [1, 0, 3]])


def test_scores_by_hand() -> None:
    s = scores_from_confusion(confusion_matrix(PRED, TARGET, 3))
    # dice = 2TP / (2TP + FP + FN)
    np.testing.assert_allclose(s["dice"], [14 / 17, 6 / 8, 6 / 7])
    np.testing.assert_allclose(s["iou"], [7 / 10, 3 / 5, 3 / 4])
    np.testing.assert_allclose(s["precision"], [7 / 9, 3 / 4, 1.0])
    np.testing.assert_allclose(s["recall"], [7 / 8, 3 / 4, 3 / 4])
    # class 1: TN = 16 - 3 - 1 - 1 = 11
    np.testing.assert_allclose(s["specificity"], [6 / 8, 11 / 12, 12 / 12])
    assert float(s["accuracy"]) == pytest.approx(13 / 16)


def test_undefined_scores_are_nan() -> None:
    # class 3 is absent from both maps: every score of it is undefined
    s = scores_from_confusion(confusion_matrix(PRED, TARGET, 4))
    for name in ("dice", "iou", "precision", "recall"):
        assert np.isnan(s[name][3])
    # class in the target but never predicted: dice 0, precision undefined
    target = np.array([[0, 1]])
    pred = np.array([[0, 0]])
    s = scores_from_confusion(confusion_matrix(pred, target, 2))
    assert s["dice"][1] == 0.0 and s["recall"][1] == 0.0
    assert np.isnan(s["precision"][1])


def test_mask_and_batches() -> None:
    mask = np.ones_like(TARGET, dtype=bool)
    mask[1] = False  # drops the FP at (1, 1) and the FN at (1, 3)
    cm = confusion_matrix(PRED, TARGET, 3, mask=mask)
    assert cm[1, 1] == 2 and cm[0, 1] == 0 and cm[1, 0] == 0
    assert cm.sum() == 12
    batch = confusion_matrix(np.stack([PRED, TARGET]), np.stack([TARGET, TARGET]), 3)
    np.testing.assert_array_equal(batch, confusion_matrix(PRED, TARGET, 3) + np.diag([8, 4, 4]))


@pytest.mark.parametrize(
    ("pred", "target", "num_classes"),
    [
        (PRED, TARGET, 2),  # value 2 outside 0..1
        (PRED.astype(np.float32), TARGET, 3),  # not a class-index map
        (PRED[:3], TARGET, 3),  # size mismatch
        (PRED.astype(np.int16) - 1, TARGET, 3),  # negative class
    ],
)
def test_bad_label_maps_raise(pred: np.ndarray, target: np.ndarray, num_classes: int) -> None:
    with pytest.raises(InputError):
        confusion_matrix(pred, target, num_classes)


def test_hd95_single_pixels_offset() -> None:
    target = np.zeros((12, 12), dtype=np.uint8)
    pred = np.zeros_like(target)
    target[5, 2] = 1
    pred[5, 5] = 1
    assert hd95(pred, target, 2)[1] == pytest.approx(3.0)
    # spacing (row, col): a 3-column offset at 0.5 per column
    assert hd95(pred, target, 2, spacing=(2.0, 0.5))[1] == pytest.approx(1.5)


def test_hd95_lines_and_percentile() -> None:
    target = np.zeros((50, 100), dtype=np.uint8)
    target[2] = 1
    shifted = np.zeros_like(target)
    shifted[6] = 1
    assert hd95(shifted, target, 2)[1] == pytest.approx(4.0)
    # one stray pixel 38 rows away among 101 edge pixels is past the 95th percentile
    stray = target.copy()
    stray[40, 50] = 1
    assert hd95(stray, target, 2)[1] == pytest.approx(0.0)


def test_hd95_empty_classes_and_background() -> None:
    target = np.zeros((10, 10), dtype=np.uint8)
    target[2:5, 2:5] = 1
    pred = target.copy()
    pred[7, 7] = 2  # class 2 predicted but not in the target
    out = hd95(pred, target, 4)
    assert out.shape == (4,)
    assert np.isnan(out[0])  # background not scored
    assert out[1] == pytest.approx(0.0)
    assert np.isnan(out[2])  # missing from the target
    assert np.isnan(out[3])  # missing from both
    assert np.isfinite(hd95(pred, target, 4, include_background=True)[0])


def test_evaluator_pools_and_averages() -> None:
    ev = SegmentationEvaluator(3, ["bg", "a", "b"])
    ev.update(PRED, TARGET)
    ev.update(TARGET, TARGET)
    r = ev.result()
    json.dumps(r, allow_nan=False)  # strict JSON: undefined values are None
    assert r["num_images"] == 2
    np.testing.assert_array_equal(r["confusion_matrix"], [[15, 1, 0], [1, 7, 0], [1, 0, 7]])
    a = r["classes"]["a"]
    assert a["dice"] == pytest.approx(14 / 16)  # pooled: TP 7, FP 1, FN 1
    assert a["dice_per_image_mean"] == pytest.approx((0.75 + 1.0) / 2)
    assert a["precision"] == pytest.approx(7 / 8)
    assert a["hd95_images"] == 2
    assert r["classes"]["bg"]["hd95"] is None
    assert r["accuracy"] == pytest.approx(29 / 32)
    assert r["hd95_unit"] == "px"
    assert r["mean_dice"] == pytest.approx((14 / 16 + 14 / 15) / 2)
    assert ev.mean_dice(["a"]) == pytest.approx(14 / 16)
    assert ev.mean_dice([1, "b"]) == pytest.approx(r["mean_dice"])


def test_evaluator_batches_spacing_and_errors() -> None:
    ev = SegmentationEvaluator(3, ["bg", "a", "b"], spacing=(2.0, 1.0))
    ev.update(np.stack([PRED, TARGET]), np.stack([TARGET, TARGET]))
    assert ev.result()["num_images"] == 2 and ev.result()["hd95_unit"] == "um"
    # unknown lateral spacing: distances stay in pixels
    assert SegmentationEvaluator(3, ["bg", "a", "b"], spacing=(3.87, None)).result()["hd95_unit"] == "px"
    with pytest.raises(InputError):
        SegmentationEvaluator(3, ["bg", "a"])
    with pytest.raises(InputError):
        ev.mean_dice(["nope"])

"""Binary (vessel) scores, ROC AUC and PR curves against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retinaseg.errors import InputError
from retinaseg.metrics.binary import (
    BinaryEvaluator,
    best_f1_threshold,
    binary_scores,
    precision_recall_curve,
    roc_auc,
)

# Five pixels with a tie at 0.4 between a positive and a negative.
# Positive-negative pairs ordered right: 0.35>0.1, 0.8>0.1, 0.8>0.4, 0.4>0.1,
# plus the tie 0.4=0.4 counting 1/2: AUC = 4.5 / 6.
PROB = np.array([[0.1, 0.4, 0.35, 0.8, 0.4]])
TARGET = np.array([[0, 0, 1, 1, 1]], dtype=bool)


def test_binary_scores_by_hand() -> None:
    s = binary_scores(PROB, TARGET, threshold=0.4)  # 0.4 counts as foreground
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (2, 1, 1, 1)
    assert s["f1"] == pytest.approx(4 / 6)
    assert s["iou"] == pytest.approx(2 / 4)
    assert s["sensitivity"] == pytest.approx(2 / 3)
    assert s["specificity"] == pytest.approx(1 / 2)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["accuracy"] == pytest.approx(3 / 5)


def test_fov_restricts_every_count() -> None:
    fov = np.array([[True, False, True, True, False]])
    s = binary_scores(PROB, TARGET.astype(np.uint8), fov=fov, threshold=0.5)
    assert (s["tp"], s["fp"], s["tn"], s["fn"]) == (1, 0, 1, 1)
    # inside the FOV the positives (0.35, 0.8) both beat the negative (0.1)
    assert roc_auc(PROB, TARGET, fov=fov) == pytest.approx(1.0)


def test_roc_auc_with_ties() -> None:
    assert roc_auc(PROB, TARGET) == pytest.approx(0.75)
    assert roc_auc(np.full((2, 2), 0.5), np.array([[0, 1], [1, 0]])) == pytest.approx(0.5)
    assert np.isnan(roc_auc(PROB, np.zeros_like(TARGET)))


def test_roc_auc_matches_rank_statistic() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    target = rng.random((60, 70)) < 0.2
    prob = np.round(0.6 * rng.random(target.shape) + 0.4 * target, 2)  # many ties
    ranks = rankdata(prob.ravel())
    n_pos = target.sum()
    u = ranks[target.ravel()].sum() - n_pos * (n_pos + 1) / 2
    assert roc_auc(prob, target) == pytest.approx(u / (n_pos * (target.size - n_pos)))


def test_precision_recall_curve_exact() -> None:
    precision, recall, thresholds = precision_recall_curve(PROB, TARGET)
    np.testing.assert_allclose(thresholds, [0.1, 0.35, 0.4, 0.8])
    np.testing.assert_allclose(precision, [3 / 5, 3 / 4, 2 / 3, 1.0])
    np.testing.assert_allclose(recall, [1.0, 1.0, 2 / 3, 1 / 3])


def test_precision_recall_curve_grid_matches_thresholding() -> None:
    precision, recall, thresholds = precision_recall_curve(PROB, TARGET, n_thresholds=10)
    np.testing.assert_allclose(thresholds, np.arange(10) / 10)
    for p, r, t in zip(precision, recall, thresholds):
        s = binary_scores(PROB, TARGET, threshold=t)
        assert r == pytest.approx(s["sensitivity"])
        assert p == pytest.approx(s["precision"], nan_ok=True)
    assert np.isnan(precision[-1])  # no pixel reaches 0.9


def test_best_f1_threshold() -> None:
    # F1 at 0.1, 0.35, 0.4, 0.8: 6/8, 6/7, 4/6, 2/4
    threshold, f1 = best_f1_threshold(PROB, TARGET)
    assert threshold == pytest.approx(0.35)
    assert f1 == pytest.approx(6 / 7)
    assert all(np.isnan(best_f1_threshold(PROB, np.zeros_like(TARGET))))


def test_evaluator_pools_images() -> None:
    ev = BinaryEvaluator(threshold=0.5)
    ev.update(PROB[:, :2], TARGET[:, :2])
    ev.update(PROB[:, 2:], TARGET[:, 2:], fov=np.ones((1, 3), dtype=bool))
    r = ev.result()
    json.dumps(r, allow_nan=False)
    assert r["num_images"] == 2 and r["num_pixels"] == 5
    assert r["at_threshold"] == {"threshold": 0.5, **binary_scores(PROB, TARGET, threshold=0.5)}
    # the probabilities lie on the 1/1000 grid, so the binned results are exact
    assert r["roc_auc"] == pytest.approx(0.75)
    best = r["at_best_threshold_optimistic"]
    assert best["threshold"] == pytest.approx(0.35)
    assert best["f1"] == pytest.approx(6 / 7)
    assert (best["tp"], best["fp"], best["tn"], best["fn"]) == (3, 1, 1, 0)
    curve = r["pr_curve"]
    assert len(curve["threshold"]) == len(curve["precision"]) == len(curve["recall"]) == 1000
    assert curve["precision"][350] == pytest.approx(3 / 4)
    assert curve["precision"][999] is None


@pytest.mark.parametrize(
    ("prob", "target", "fov"),
    [
        (PROB * 2, TARGET, None),  # probability above 1
        (np.array([[0.1, np.nan, 0.3, 0.4, 0.5]]), TARGET, None),
        ((PROB * 100).astype(np.uint8), TARGET, None),  # not probabilities
        (PROB, TARGET.astype(np.uint8) * 255, None),  # 0/255 mask
        (PROB, TARGET[:, :3], None),
        (PROB, TARGET, np.ones((1, 4), dtype=bool)),
        (PROB, TARGET, np.ones((1, 5), dtype=np.uint8)),  # FOV must be bool
    ],
)
def test_bad_inputs_raise(prob: np.ndarray, target: np.ndarray, fov: np.ndarray | None) -> None:
    with pytest.raises(InputError):
        binary_scores(prob, target, fov=fov)

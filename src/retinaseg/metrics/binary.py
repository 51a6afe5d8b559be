"""Scores for binary segmentations given as foreground probabilities.

Used for vessels in fundus photographs (and any other one-structure task).
Every statistic is computed only on pixels inside the field of view (FOV),
as is customary for DRIVE / CHASE_DB1: the black corners of a fundus photo
are trivially "correct" background and would inflate accuracy and
specificity.

A pixel is predicted foreground when ``prob >= threshold``. Scores whose
denominator is zero are NaN (see
:func:`retinaseg.metrics.segmentation.scores_from_confusion`).
"""

from __future__ import annotations

import math

import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.records import strict_json
from retinaseg.metrics.segmentation import scores_from_confusion


def _pixels(prob: np.ndarray, target: np.ndarray, fov: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Validate the inputs and return the FOV pixels as 1-D (prob, bool target)."""
    prob = np.asarray(prob)
    target = np.asarray(target)
    if not np.issubdtype(prob.dtype, np.floating):
        raise InputError("prob", f"must be a float probability map, got dtype {prob.dtype}")
    if target.shape != prob.shape:
        raise InputError("target", f"shape {target.shape} does not match prob shape {prob.shape}")
    if prob.size and not (np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1):
        raise InputError("prob", "values must be finite and lie in [0, 1]")
    if target.dtype != bool:
        if not np.isin(target, (0, 1)).all():
            raise InputError("target", f"must be bool or 0/1, found values {np.unique(target)[:5]}")
        target = target.astype(bool)
    if fov is not None:
        fov = np.asarray(fov)
        if fov.dtype != bool:
            raise InputError("fov", f"must be a bool mask, got dtype {fov.dtype}")
        if fov.shape != prob.shape:
            raise InputError("fov", f"shape {fov.shape} does not match prob shape {prob.shape}")
        return prob[fov].astype(np.float64), target[fov]
    return prob.ravel().astype(np.float64), target.ravel()


def _scores_from_counts(tp: int, fp: int, tn: int, fn: int) -> dict[str, float]:
    s = scores_from_confusion(np.array([[tn, fp], [fn, tp]]))
    return {
        "f1": float(s["dice"][1]),
        "iou": float(s["iou"][1]),
        "sensitivity": float(s["recall"][1]),
        "specificity": float(s["specificity"][1]),
        "precision": float(s["precision"][1]),
        "accuracy": float(s["accuracy"]),
        "tp": int(tp),
        "fp": int(fp),
        "tn": int(tn),
        "fn": int(fn),
    }


def _counts(p: np.ndarray, t: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    pred = p >= threshold
    tp = int(np.count_nonzero(pred & t))
    fp = int(np.count_nonzero(pred & ~t))
    fn = int(np.count_nonzero(~pred & t))
    return tp, fp, t.size - tp - fp - fn, fn


def binary_scores(
    prob: np.ndarray,
    target: np.ndarray,
    fov: np.ndarray | None = None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Overlap scores of a thresholded probability map.

    Parameters
    ----------
    prob
        ``(H, W)`` float foreground probability in ``[0, 1]``.
    target
        ``(H, W)`` bool or 0/1 reference mask.
    fov
        Optional ``(H, W)`` bool field of view; pixels outside are ignored.
    threshold
        A pixel is foreground when ``prob >= threshold``.

    Returns
    -------
    dict
        ``f1`` (= dice), ``iou``, ``sensitivity``, ``specificity``,
        ``precision``, ``accuracy`` (floats, NaN when undefined) and the
        counts ``tp``, ``fp``, ``tn``, ``fn`` (ints).
    """
    p, t = _pixels(prob, target, fov)
    return _scores_from_counts(*_counts(p, t, threshold))


def _levels_exact(p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (ascending) with the number of positive and negative pixels at each."""
    levels, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    pos = np.bincount(inverse.ravel(), weights=t, minlength=levels.size).astype(np.int64)
    return levels, pos, counts - pos


def _grid(n_bins: int) -> np.ndarray:
    return np.arange(n_bins) / n_bins


def _histograms(p: np.ndarray, t: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative pixel counts per bin ``[k/n, (k+1)/n)`` (last bin closed).

    The bin edges are the thresholds themselves, so the counts above each
    grid threshold are exact, not interpolated.
    """
    bins = np.searchsorted(_grid(n_bins), p, side="right") - 1
    pos = np.bincount(bins[t], minlength=n_bins)
    neg = np.bincount(bins[~t], minlength=n_bins)
    return pos, neg


def _at_thresholds(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each ascending level: pixels at or above it."""
    tp = np.cumsum(pos[::-1])[::-1]
    fp = np.cumsum(neg[::-1])[::-1]
    return tp, fp


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve through the points of every level.

    With the trapezoid rule, pixels sharing a level count as half-ordered,
    which equals the Mann-Whitney U statistic with ties (hence exact).
    """
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    tp, fp = _at_thresholds(pos, neg)
    tpr = np.concatenate([[0.0], tp[::-1] / n_pos])
    fpr = np.concatenate([[0.0], fp[::-1] / n_neg])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _pr(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 at each level (NaN where undefined)."""
    tp, fp = _at_thresholds(pos, neg)
    n_pos = pos.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(n_pos > 0, tp / n_pos, np.nan)
        f1 = np.where(n_pos > 0, 2 * tp / (tp + fp + n_pos), np.nan)
    return precision, recall, f1


def _best(f1: np.ndarray) -> int | None:
    """Index of the highest threshold with the best F1, ``None`` if F1 is undefined.

    On a threshold grid the best F1 is often reached on a plateau of
    thresholds that split the pixels the same way; its top end is the one
    closest to an actual probability value.
    """
    if not np.isfinite(f1).any():
        return None
    return f1.size - 1 - int(np.nanargmax(f1[::-1]))


def roc_auc(prob: np.ndarray, target: np.ndarray, fov: np.ndarray | None = None) -> float:
    """Exact area under the ROC curve, ties counted as one half.

    Parameters
    ----------
    prob, target, fov
        As in :func:`binary_scores`.

    Returns
    -------
    float
        The probability that a random foreground pixel scores higher than a
        random background pixel (plus half the probability of a tie); NaN
        when the FOV holds only one class.
    """
    return _auc(*_levels_exact(*_pixels(prob, target, fov))[1:])


def precision_recall_curve(
    prob: np.ndarray,
    target: np.ndarray,
    fov: np.ndarray | None = None,
    n_thresholds: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall at every threshold.

    Parameters
    ----------
    prob, target, fov
        As in :func:`binary_scores`.
    n_thresholds
        ``None``: every distinct probability value is a threshold (exact).
        An int ``n``: the grid ``0, 1/n, ..., (n-1)/n``.

    Returns
    -------
    precision, recall, thresholds
        float64 arrays of equal length, thresholds ascending; entry ``k`` is
        for ``prob >= thresholds[k]``. Precision is NaN where no pixel
        reaches the threshold, recall is NaN when the FOV holds no
        foreground.
    """
    p, t = _pixels(prob, target, fov)
    if n_thresholds is None:
        thresholds, pos, neg = _levels_exact(p, t)
    else:
        if n_thresholds < 1:
            raise InputError("n_thresholds", f"must be >= 1, got {n_thresholds}")
        thresholds = _grid(n_thresholds)
        pos, neg = _histograms(p, t, n_thresholds)
    precision, recall, _ = _pr(pos, neg)
    return precision, recall, thresholds


def best_f1_threshold(prob: np.ndarray, target: np.ndarray, fov: np.ndarray | None = None) -> tuple[float, float]:
    """Threshold that maximises F1 on this image, searched over every distinct value.

    Choosing the threshold on the data it is then scored on is optimistic;
    report it as such, or pick it on a validation set.

    Returns
    -------
    threshold, f1
        The highest threshold reaching the best F1, and that F1; both NaN
        when the FOV holds no foreground.
    """
    levels, pos, neg = _levels_exact(*_pixels(prob, target, fov))
    _, _, f1 = _pr(pos, neg)
    k = _best(f1)
    return (math.nan, math.nan) if k is None else (float(levels[k]), float(f1[k]))


class BinaryEvaluator:
    """Accumulates binary scores over many images in constant memory.

    Pixels are pooled over all images (inside their FOVs). Scores at the
    fixed ``threshold`` are exact counts. The ROC AUC, PR curve and best
    threshold come from per-class histograms of ``n_bins`` bins
    ``[k/n_bins, (k+1)/n_bins)``: counts at the grid thresholds are exact,
    the best threshold is searched on that grid (resolution
    ``1 / n_bins``), and the AUC treats scores in one bin as tied, which
    differs from the exact AUC by at most half the fraction of
    positive-negative pairs that share a bin (negligible at 1000 bins for
    network outputs).

    Parameters
    ----------
    threshold
        Operating threshold, ``prob >= threshold`` is foreground.
    n_bins
        Histogram resolution.
    """

    def __init__(self, threshold: float = 0.5, n_bins: int = 1000) -> None:
        if n_bins < 1:
            raise InputError("n_bins", f"must be >= 1, got {n_bins}")
        self.threshold = threshold
        self.n_bins = n_bins
        self._pos = np.zeros(n_bins, dtype=np.int64)
        self._neg = np.zeros(n_bins, dtype=np.int64)
        self._counts = np.zeros(4, dtype=np.int64)  # tp, fp, tn, fn at self.threshold
        self.num_images = 0

    def update(self, prob: np.ndarray, target: np.ndarray, fov: np.ndarray | None = None) -> None:
        """Add one image; arguments as in :func:`binary_scores`."""
        p, t = _pixels(prob, target, fov)
        pos, neg = _histograms(p, t, self.n_bins)
        self._pos += pos
        self._neg += neg
        self._counts += _counts(p, t, self.threshold)
        self.num_images += 1

    def result(self) -> dict:
        """All scores as a JSON-serialisable dict (undefined values are ``None``).

        Returns
        -------
        dict
            ``"at_threshold"``: scores of :func:`binary_scores` at
            ``threshold`` (plus ``"threshold"``);
            ``"at_best_threshold_optimistic"``: the same at the (highest)
            grid threshold with the best pooled F1, chosen on the evaluated images
            themselves and so optimistic;
            ``"roc_auc"``; ``"pr_curve"``: ``{"threshold", "precision",
            "recall"}`` lists on the grid for plotting; ``"num_images"``,
            ``"num_pixels"``.
        """
        tp, fp = _at_thresholds(self._pos, self._neg)
        n_pos, n_pixels = int(self._pos.sum()), int(self._pos.sum() + self._neg.sum())
        precision, recall, f1 = _pr(self._pos, self._neg)
        at_threshold = {"threshold": float(self.threshold), **_scores_from_counts(*self._counts)}
        k = _best(f1)
        best: dict[str, float | None]
        if k is not None:
            counts = (tp[k], fp[k], n_pixels - n_pos - fp[k], n_pos - tp[k])
            best = {"threshold": float(_grid(self.n_bins)[k]), **_scores_from_counts(*counts)}
        else:
            best = {"threshold": None}
        return strict_json(
            {
                "at_threshold": at_threshold,
                "at_best_threshold_optimistic": best,
                "roc_auc": _auc(self._pos, self._neg),
                "pr_curve": {
                    "threshold": _grid(self.n_bins).tolist(),
                    "precision": precision.tolist(),
                    "recall": recall.tolist(),
                },
                "num_images": self.num_images,
                "num_pixels": n_pixels,
            }
        )

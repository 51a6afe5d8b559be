"""Overlap and distance scores for multi-class label maps.

All functions take class-index maps (integer arrays, value ``k`` = class
``k``), never probabilities. Scores whose denominator is zero are *undefined*
and returned as NaN rather than 0 or 1, so that averages taken with
:func:`numpy.nanmean` skip them instead of being pulled up or down by classes
that are simply not in the image.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from monai.metrics import compute_hausdorff_distance

from retinaseg.errors import InputError
from retinaseg.io.records import strict_json
from retinaseg.numeric import finite_mean


def _check_labels(name: str, label: np.ndarray, num_classes: int) -> np.ndarray:
    label = np.asarray(label)
    if not np.issubdtype(label.dtype, np.integer) and label.dtype != bool:
        raise InputError(name, f"must be an integer class-index map, got dtype {label.dtype}")
    if label.size and (label.min() < 0 or label.max() >= num_classes):
        raise InputError(
            name,
            f"class values must lie in 0..{num_classes - 1}, found {int(label.min())}..{int(label.max())}",
        )
    return label


def _check_same_shape(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise InputError("pred", f"shape {pred.shape} does not match target shape {target.shape}")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` as float64, NaN where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def confusion_matrix(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Pixel confusion matrix of two label maps.

    Parameters
    ----------
    pred, target
        Integer class-index maps of the same shape, ``(H, W)`` or a batch
        ``(N, H, W)`` (any shape works; pixels are pooled).
    num_classes
        Number of classes ``C``; values must lie in ``0..C-1``.
    mask
        Optional bool array of the same shape; only pixels where it is True
        are counted (e.g. a field of view).

    Returns
    -------
    numpy.ndarray
        ``(C, C)`` int64, ``cm[i, j]`` = number of pixels of reference class
        ``i`` predicted as class ``j`` (rows = target, columns = prediction).
    """
    pred = _check_labels("pred", pred, num_classes)
    target = _check_labels("target", target, num_classes)
    _check_same_shape(pred, target)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != target.shape:
            raise InputError("mask", f"shape {mask.shape} does not match label shape {target.shape}")
        pred, target = pred[mask], target[mask]
    flat = target.astype(np.int64).ravel() * num_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class overlap scores from a confusion matrix.

    Parameters
    ----------
    cm
        ``(C, C)`` confusion matrix, rows = target, columns = prediction, as
        returned by :func:`confusion_matrix`.

    Returns
    -------
    dict
        ``"dice"``, ``"iou"``, ``"precision"``, ``"recall"`` (sensitivity) and
        ``"specificity"``: float64 arrays of shape ``(C,)``, class ``k`` taken
        as foreground against all other classes; ``"accuracy"``: 0-d float64
        array, the fraction of pixels with the right class.

    Notes
    -----
    With ``TP``, ``FP``, ``FN``, ``TN`` counted per class,
    dice = 2TP / (2TP + FP + FN), iou = TP / (TP + FP + FN),
    precision = TP / (TP + FP), recall = TP / (TP + FN),
    specificity = TN / (TN + FP). A score is NaN exactly when its
    denominator is zero: dice and iou when the class is absent from both
    target and prediction, precision when the class is never predicted,
    recall when it is absent from the target, specificity when it covers
    every pixel.
    """
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise InputError("cm", f"confusion matrix must be square (C, C), got shape {cm.shape}")
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    total = cm.sum()
    tn = total - tp - fp - fn
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "accuracy": _ratio(tp.sum(), total),
    }


def _one_hot(label: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(1, len(classes), H, W)`` float32 one-hot of the listed classes."""
    return (label[None, None] == classes[None, :, None, None]).astype(np.float32)


def hd95(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    spacing: tuple[float, float] | None = None,
    include_background: bool = False,
) -> np.ndarray:
    """Per-class 95th-percentile symmetric Hausdorff distance of one image.

    Uses :func:`monai.metrics.compute_hausdorff_distance` (Euclidean distance
    between the edge pixels of the two masks, ``percentile=95``, symmetric:
    the larger of the two directed 95th percentiles).

    Parameters
    ----------
    pred, target
        ``(H, W)`` integer class-index maps of the same shape.
    num_classes
        Number of classes ``C``.
    spacing
        Pixel size ``(row, col)`` in physical units (e.g. micrometres); the
        distances are then in those units. ``None`` gives pixels.
    include_background
        Whether to score class 0; when False its entry is NaN.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` float64 distances. NaN for a class that is missing from the
        prediction or from the target (or both): the distance to an empty set
        is undefined (MONAI returns NaN or inf for these depending on version,
        and warns), so such images are left out of means rather than given an
        arbitrary penalty. A missed class is still penalised by dice.
    """
    pred = _check_labels("pred", pred, num_classes)
    target = _check_labels("target", target, num_classes)
    _check_same_shape(pred, target)
    if pred.ndim != 2:
        raise InputError("pred", f"hd95 needs one (H, W) image, got shape {pred.shape}")
    out = np.full(num_classes, np.nan)
    first = 0 if include_background else 1
    classes = np.arange(first, num_classes)
    present = np.isin(classes, pred) & np.isin(classes, target)
    scored = classes[present]
    if scored.size == 0:
        return out
    with warnings.catch_warnings():
        # MONAI 1.5-1.6 warns about its own internal use of a deprecated argument.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        distances = compute_hausdorff_distance(
            _one_hot(pred, scored),
            _one_hot(target, scored),
            include_background=True,
            percentile=95,
            spacing=None if spacing is None else [float(s) for s in spacing],
        )
    out[scored] = distances.numpy()[0]
    out[~np.isfinite(out)] = np.nan
    return out


class SegmentationEvaluator:
    """Accumulates overlap and distance scores over many images.

    Pixel-pooled scores (dice, iou, precision, recall, specificity,
    accuracy) come from one confusion matrix summed over all images, as in
    most segmentation papers. Per-image dice and HD95 are also kept and
    averaged over the images where they are defined.

    Parameters
    ----------
    num_classes
        Number of classes ``C``.
    class_names
        Name of each class, ``len == C``; used as keys of :meth:`result`.
    spacing
        Pixel size ``(row_um, col_um)`` in micrometres (as
        :attr:`retinaseg.types.Sample.spacing_um`); HD95 is then reported in
        micrometres. ``None``, or a ``None`` entry (e.g. unknown lateral
        scale), gives pixels.

    Examples
    --------
    >>> ev = SegmentationEvaluator(3, ["bg", "a", "b"])
    >>> ev.update(pred, target)  # doctest: +SKIP
    >>> ev.result()["classes"]["a"]["dice"]  # doctest: +SKIP
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str],
        spacing: tuple[float | None, float | None] | None = None,
    ) -> None:
        if len(class_names) != num_classes:
            raise InputError("class_names", f"{len(class_names)} names given for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = list(class_names)
        row_um, col_um = (None, None) if spacing is None else spacing
        self.spacing = (float(row_um), float(col_um)) if row_um is not None and col_um is not None else None
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self._dice_per_image: list[np.ndarray] = []
        self._hd95_per_image: list[np.ndarray] = []

    def update(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one ``(H, W)`` image or a batch ``(N, H, W)``.

        ``mask`` (bool, same shape) restricts the overlap scores; HD95 is
        always computed on the whole image, since a surface distance cut at a
        mask edge would be meaningless.
        """
        pred = np.asarray(pred)
        target = np.asarray(target)
        _check_same_shape(pred, target)
        if pred.ndim == 2:
            pred, target = pred[None], target[None]
            mask = None if mask is None else np.asarray(mask)[None]
        if pred.ndim != 3:
            raise InputError("pred", f"expected (H, W) or (N, H, W), got shape {pred.shape}")
        for i in range(pred.shape[0]):
            cm = confusion_matrix(pred[i], target[i], self.num_classes, None if mask is None else mask[i])
            self.confusion += cm
            self._dice_per_image.append(scores_from_confusion(cm)["dice"])
            self._hd95_per_image.append(hd95(pred[i], target[i], self.num_classes, self.spacing))

    def mean_dice(self, classes: Sequence[int | str] | None = None) -> float:
        """Mean of the pixel-pooled dice over the chosen classes.

        Parameters
        ----------
        classes
            Class indices or names; ``None`` means every class except 0.
            Classes with undefined dice (absent everywhere) are skipped.
        """
        dice = scores_from_confusion(self.confusion)["dice"]
        idx = self._class_indices(classes)
        return finite_mean(dice[idx])

    def result(self) -> dict:
        """All scores as a JSON-serialisable dict (undefined values are ``None``).

        Returns
        -------
        dict
            ``"classes"``: ``{name: {"dice", "iou", "precision", "recall",
            "specificity", "dice_per_image_mean", "hd95", "hd95_images"}}``
            where ``hd95`` is the mean of per-image HD95 over the
            ``hd95_images`` images where it is defined (class 0 is not
            scored); ``"mean_dice"``: pooled dice averaged over classes 1..C-1;
            ``"accuracy"``; ``"confusion_matrix"`` (list of lists, rows =
            target); ``"num_images"``; ``"hd95_unit"`` (``"px"`` or
            ``"um"``).
        """
        scores = scores_from_confusion(self.confusion)
        dice_img = np.array(self._dice_per_image).reshape(-1, self.num_classes)
        hd_img = np.array(self._hd95_per_image).reshape(-1, self.num_classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as wanted
            dice_mean = np.nanmean(dice_img, axis=0)
            hd_mean = np.nanmean(hd_img, axis=0)
        hd_count = np.isfinite(hd_img).sum(axis=0)
        classes = {
            name: {
                "dice": float(scores["dice"][k]),
                "iou": float(scores["iou"][k]),
                "precision": float(scores["precision"][k]),
                "recall": float(scores["recall"][k]),
                "specificity": float(scores["specificity"][k]),
                "dice_per_image_mean": float(dice_mean[k]),
                "hd95": float(hd_mean[k]),
                "hd95_images": int(hd_count[k]),
            }
            for k, name in enumerate(self.class_names)
        }
        return strict_json(
            {
                "classes": classes,
                "mean_dice": self.mean_dice(),
                "accuracy": float(scores["accuracy"]),
                "confusion_matrix": self.confusion.tolist(),
                "num_images": len(self._dice_per_image),
                "hd95_unit": "px" if self.spacing is None else "um",
            }
        )

    def _class_indices(self, classes: Sequence[int | str] | None) -> np.ndarray:
        if classes is None:
            return np.arange(1, self.num_classes)
        idx = []
        for c in classes:
            if isinstance(c, str):
                if c not in self.class_names:
                    raise InputError("classes", f"unknown class name {c!r}")
                c = self.class_names.index(c)
            if not 0 <= c < self.num_classes:
                raise InputError("classes", f"class index {c} outside 0..{self.num_classes - 1}")
            idx.append(c)
        return np.array(idx, dtype=np.int64)

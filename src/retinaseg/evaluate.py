"""``retinaseg evaluate``: score a trained model on a split of its (or another) config's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import track

from retinaseg.analysis.boundaries import boundaries_from_labels, boundary_mad
from retinaseg.analysis.layer_order import model_class_map
from retinaseg.data.dataset import PreparedSample, prepare_samples
from retinaseg.errors import InputError
from retinaseg.inference.checkpoint import load_model
from retinaseg.io.model_files import resolve_model_file
from retinaseg.io.output import EVALUATION, check_output_dir, staged_output_dir
from retinaseg.io.paths import resolve_data_path
from retinaseg.io.records import strict_json, write_json
from retinaseg.metrics.binary import BinaryEvaluator
from retinaseg.metrics.segmentation import SegmentationEvaluator
from retinaseg.models.trained import EvaluationSettings, TrainedModel
from retinaseg.numeric import finite_mean
from retinaseg.report.panels import PanelRow, panel_file_name, save_prediction_panels
from retinaseg.report.plots import plot_confusion_matrix, plot_pr_curve
from retinaseg.training.data import load_splits
from retinaseg.types import SampleSet


def evaluate_model(
    model: str | Path,
    out_dir: str | Path,
    config: dict[str, Any] | None = None,
    split: str = "test",
    overwrite: bool = False,
    device: str | None = None,
    panels: bool = True,
    threshold: float | str | None = None,
) -> dict[str, Any]:
    """Evaluate a trained model and write ``metrics.json`` and figures to ``out_dir``.

    Parameters
    ----------
    model
        A ``.ckpt`` written by ``retinaseg train``, a ``.pt`` weight file, an
        ``.onnx`` export or a shipped model name (:func:`~retinaseg.inference.checkpoint.load_model`).
    out_dir
        Output folder; written atomically (temp folder, then renamed).
    config
        Config naming the data, the split and the classes to score
        (``evaluation``); ``None`` uses the one stored with the model.
    split
        ``"train"``, ``"val"`` or ``"test"``.
    overwrite
        Replace an existing ``out_dir``; otherwise that is an error.
    device
        ``"cpu"``, ``"cuda"``...; default:
        :func:`~retinaseg.inference.checkpoint.default_device`.
    panels
        Write ``panels/<sample id>.png`` for each image: image, reference and
        prediction, and for binary tasks the TP/FP/FN/TN map
        (:mod:`retinaseg.report.panels`). Off saves time and disk on large splits.
    threshold
        Binary tasks: foreground where its probability is at least this.
        ``None``: the evaluation config's ``threshold`` (the model's own
        when no config is given); :data:`FROM_VALIDATION` (``"val"``): the
        threshold with the best F1 pooled over the validation images of the
        config's split (on a grid of 1/1000), chosen before the evaluated
        split is looked at. ``metrics.json`` records the value and how it
        was chosen.

    Returns
    -------
    dict
        The contents of ``metrics.json``: ``summary`` (headline numbers),
        ``segmentation`` (per-class scores), ``binary`` (binary tasks),
        ``boundaries`` (OCT layer boundary errors when configured).
    """
    out_dir = Path(out_dir)
    model_file = resolve_model_file(model)
    check_output_dir(out_dir, EVALUATION, overwrite=overwrite, inputs=[model_file])  # fail before the long part
    trained = load_model(model_file, device)
    if trained.task != "binary" and threshold is not None:
        raise InputError("--threshold", "applies to binary tasks only; this model has more than two classes")
    if threshold == FROM_VALIDATION and split == "val":
        raise InputError("--threshold", "val chooses the threshold on the validation images: score another split with it")
    config = config or trained.config
    inputs = [model_file, resolve_data_path(config["data"]["root"])]
    check_output_dir(out_dir, EVALUATION, overwrite=overwrite, inputs=inputs)
    sample_set, splits = load_splits(config)
    if split not in splits:
        raise InputError("--split", f"unknown split {split!r}; use train, val or test")
    samples = splits[split]
    if len(samples) == 0:
        raise InputError(f"data.split.{split}", "no samples in this split")
    class_names = trained.class_names
    if list(sample_set.class_names) != class_names:
        raise InputError(model, f"model classes {class_names} differ from the data's {sample_set.class_names}")

    # What is scored follows the evaluation config given, which need not be the model's own.
    settings = EvaluationSettings.from_config(config["evaluation"], len(class_names))
    trained.evaluation = settings  # and so is how the model is applied (flips, windows)
    binary = None
    if samples.task == "binary":
        value, how_chosen = _operating_threshold(trained, splits["val"], config, settings.threshold, threshold)
        binary = BinaryEvaluator(threshold=value)
    prepared = prepare_samples(samples, trained.preprocessing, config["data"]["fov"])
    spacing = samples.samples[0].spacing_um
    segmentation = SegmentationEvaluator(len(class_names), class_names, spacing=spacing)
    boundary_classes, fluid_classes = list(settings.boundary_classes), list(settings.fluid_classes)
    pred_boundaries, true_boundaries = [], []
    with staged_output_dir(out_dir, EVALUATION, overwrite=overwrite, inputs=inputs) as staging:
        for sample, stored in zip(track(prepared, description=f"evaluating {split}"), samples.samples, strict=True):
            probabilities = _probabilities(trained, sample)
            prediction = model_class_map(trained, probabilities, None if binary is None else binary.threshold)
            segmentation.update(prediction, sample.label, mask=sample.fov)
            if binary is not None:
                binary.update(probabilities[1], sample.label == 1, fov=sample.fov)
            if boundary_classes:
                pred_boundaries.append(boundaries_from_labels(prediction, boundary_classes, fluid_classes))
                true_boundaries.append(boundaries_from_labels(sample.label, boundary_classes, fluid_classes))
            if panels:  # written now, so only one image's arrays are held at a time
                row = PanelRow(sample.id, stored.image, sample.label, prediction, sample.fov)
                save_prediction_panels(
                    [row], class_names, staging / "panels" / panel_file_name(sample.id), binary=binary is not None
                )

        chosen = list(settings.metric_classes)
        seg_result = segmentation.result()
        summary: dict[str, Any] = {
            "mean_dice": segmentation.mean_dice(chosen),
            "mean_iou": finite_mean([seg_result["classes"][class_names[c]]["iou"] for c in chosen]),  # None (undefined) skipped
            "accuracy": seg_result["accuracy"],  # pixel-pooled inside the FOV; binary tasks: at the threshold
        }
        summary.update(
            {f"dice_{class_names[c]}": seg_result["classes"][class_names[c]]["dice"] for c in range(1, len(class_names))}
        )
        metrics: dict[str, Any] = {
            "model": str(model),
            "split": split,
            "subjects": samples.subjects(),
            "num_images": len(samples),
            "metric_classes": [class_names[c] for c in chosen],
            "segmentation": seg_result,
        }
        if binary is not None:
            binary_result = binary.result()
            metrics["binary"] = binary_result
            metrics["threshold"] = {"value": binary.threshold, "chosen": how_chosen}
            summary.update({f"{k}": binary_result["at_threshold"][k] for k in ("f1", "sensitivity", "specificity", "accuracy")})
            summary["auc"] = binary_result["roc_auc"]
        if boundary_classes:
            axial_um = None if spacing is None else spacing[0]
            mad = boundary_mad(
                np.concatenate(pred_boundaries, axis=1), np.concatenate(true_boundaries, axis=1), axial_um=axial_um
            )
            metrics["boundaries"] = {
                "classes": [class_names[c] for c in boundary_classes],
                "definition": "top row of each class per column",
                **{key: np.asarray(value).tolist() for key, value in mad.items()},
            }
            if axial_um is not None:
                summary["mean_boundary_mad_um"] = finite_mean(mad["mad_um"])
            summary["mean_boundary_mad_px"] = finite_mean(mad["mad_px"])
        metrics["summary"] = summary
        metrics = strict_json(metrics)

        write_json(staging / "metrics.json", metrics)
        plot_confusion_matrix(np.asarray(seg_result["confusion_matrix"]), class_names, staging / "confusion_matrix.png")
        if binary is not None:
            curve = metrics["binary"]["pr_curve"]
            plot_pr_curve(np.asarray(curve["precision"]), np.asarray(curve["recall"]), staging / "pr_curve.png")
    return metrics


FROM_VALIDATION = "val"
"""``threshold`` value: choose it on the validation images (:func:`evaluate_model`)."""


def parse_threshold(text: str | None) -> float | str | None:
    """A ``--threshold`` value: ``None``, :data:`FROM_VALIDATION`, or a number in (0, 1).

    Raises
    ------
    InputError
        Anything else.
    """
    if text is None or text == FROM_VALIDATION:
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise InputError("--threshold", f"must be a number in (0, 1) or {FROM_VALIDATION!r}, got {text!r}")
    return value


def _operating_threshold(
    trained: TrainedModel, validation: SampleSet, config: dict[str, Any], default: float, threshold: float | str | None
) -> tuple[float, str]:
    """The binary threshold to score at, and how it was chosen (``threshold`` as for :func:`evaluate_model`)."""
    if threshold is None:
        return default, "evaluation.threshold of the config"
    if threshold != FROM_VALIDATION:
        value = parse_threshold(str(threshold))
        assert isinstance(value, float)
        return value, "given"
    if len(validation) == 0:
        raise InputError("data.split.val", "no validation images to choose the threshold on")
    evaluator = BinaryEvaluator()
    prepared = prepare_samples(validation, trained.preprocessing, config["data"]["fov"])
    for sample in track(prepared, description="choosing the threshold on val"):
        evaluator.update(_probabilities(trained, sample)[1], sample.label == 1, fov=sample.fov)
    best = evaluator.result()["at_best_threshold_optimistic"]["threshold"]
    if best is None or not 0 < best < 1:  # no foreground, or nothing better than calling every pixel foreground
        raise InputError("data.split.val", f"the validation images give no usable threshold (best F1 at {best})")
    return float(best), f"best pooled F1 over the {len(validation)} validation images ({', '.join(validation.subjects())})"


def _probabilities(trained: TrainedModel, sample: PreparedSample) -> np.ndarray:
    """``(K, H, W)`` class probabilities of one prepared sample, on the CPU."""
    return trained.predict(torch.from_numpy(sample.image)[None], probabilities=True)[0].cpu().numpy()

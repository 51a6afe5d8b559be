"""``retinaseg train`` end to end: fit, training curves, test evaluation, results table.

A run lives in ``<runs_dir>/<name>/``: ``config.yaml`` (fully resolved),
``best.ckpt``, ``last.ckpt`` and ``metrics.csv`` (one row per epoch) from
:func:`retinaseg.training.train.train`; then ``curves.png`` and ``test/``
(the evaluation of ``best.ckpt`` on the test split,
:func:`retinaseg.evaluate.evaluate_model`). A run without validation
(``data.split.val: []``) is tested with ``last.ckpt``, and that model is also
scored on its own training images (``train/``): nothing else tells whether
some class was never learnt. One row per finished run is
appended to ``<runs_dir>/results.csv``. With ``trainer.snapshot_every: N``,
``snapshots/epoch_XXX.png`` shows the predictions on the first validation
images every ``N`` epochs (:class:`PredictionSnapshots`).

Training and evaluation know nothing of each other; this module, above both,
puts them in sequence.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from retinaseg.data.augment import build_augmentation
from retinaseg.data.dataset import PreparedSample, WholeImageDataset
from retinaseg.evaluate import evaluate_model
from retinaseg.io.atomic import write_text_atomic
from retinaseg.models.registry import get_model_spec
from retinaseg.models.trained import TrainedModel
from retinaseg.report.panels import PanelRow, save_prediction_panels
from retinaseg.report.plots import plot_training_curves
from retinaseg.training.module import SegmentationModule
from retinaseg.training.train import TrainResult, train

SNAPSHOT_IMAGES = 4
"""Validation images shown in each prediction snapshot (the first ones, so every snapshot shows the same)."""


@dataclass
class ExperimentResult:
    """A finished run: how training went, and the test metrics (``None`` without a test split, or in DDP's other processes)."""

    training: TrainResult
    test_metrics: dict[str, Any] | None
    train_metrics: dict[str, Any] | None = None
    """The model on its training images; only for a run without validation."""


def run_experiment(config: dict[str, Any], resume: str | Path | None = None, overwrite: bool = False) -> ExperimentResult:
    """Train as configured, then plot, test and record the run; see the module docstring for the outputs.

    Parameters are those of :func:`retinaseg.training.train.train`; bad input
    raises :class:`~retinaseg.errors.InputError` before the run folder is touched.
    """
    every = config["trainer"]["snapshot_every"]
    snapshots = [] if every is None else [PredictionSnapshots(Path(config["output"]["runs_dir"]) / config["name"], every)]
    started = time.perf_counter()
    training = train(config, resume=resume, overwrite=overwrite, callbacks=snapshots)
    if not training.is_main_process:  # DDP's other processes leave the writing to the first
        return ExperimentResult(training, None)
    run_dir = training.run_dir
    plot_training_curves(run_dir / "metrics.csv", run_dir / "curves.png")
    test_metrics = train_metrics = None
    if training.test_images > 0:
        test_metrics = evaluate_model(training.best_checkpoint, run_dir / "test", config=config, split="test", overwrite=True)
    append_results_row(
        Path(config["output"]["runs_dir"]) / "results.csv",
        config,
        training,
        test_metrics,
        wall_seconds=time.perf_counter() - started,
    )
    if not training.validated:
        # A seed can leave a class unlearnt (seen: fluid and OPL of a Duke run); validation would have shown it.
        train_metrics = evaluate_model(
            training.best_checkpoint, run_dir / "train", config=config, split="train", overwrite=True, panels=False
        )
    return ExperimentResult(training, test_metrics, train_metrics)


class PredictionSnapshots(Callback):
    """Every ``every`` epochs, a panel of the predictions on the first validation images.

    Writes ``<run_dir>/snapshots/epoch_XXX.png`` (``XXX``: epochs done, from
    001) with up to :data:`SNAPSHOT_IMAGES` rows of image / reference /
    prediction (and the TP/FP/FN/TN map for binary tasks;
    :func:`~retinaseg.report.panels.save_prediction_panels`). Taken when a
    validation round ends, so only epochs that validate are shown: choose
    ``every`` as a multiple of ``trainer.check_val_every_n_epoch``.

    Parameters
    ----------
    run_dir
        The run folder.
    every
        Epochs between snapshots, >= 1.
    """

    def __init__(self, run_dir: Path, every: int) -> None:
        self.folder = run_dir / "snapshots"
        self.every = every

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epochs_done = trainer.current_epoch + 1
        if trainer.sanity_checking or not trainer.is_global_zero or epochs_done % self.every:
            return
        if not isinstance(pl_module, SegmentationModule):
            raise TypeError(f"prediction snapshots need a SegmentationModule, got {type(pl_module).__name__}")
        model = pl_module.trained_model
        loader = trainer.val_dataloaders
        if loader is None:  # Lightning sets up the validation data before a validation round
            raise RuntimeError("a validation round ended without a validation data loader")
        if not isinstance(loader.dataset, WholeImageDataset):
            raise TypeError(f"prediction snapshots need whole validation images, got a {type(loader.dataset).__name__}")
        # Lightning restores the training mode after validation; eval() makes the mode explicit here.
        model.eval()
        rows = [_snapshot_row(model, sample) for sample in loader.dataset.samples[:SNAPSHOT_IMAGES]]
        save_prediction_panels(
            rows,
            model.class_names,
            self.folder / f"epoch_{epochs_done:03d}.png",
            binary=model.task == "binary",
            title=f"Epoch {epochs_done}",
        )


def _snapshot_row(model: TrainedModel, sample: PreparedSample) -> PanelRow:
    """One validation image with its reference and the model's prediction (no gradients: ``predict``)."""
    prediction = model.predict(torch.from_numpy(sample.image)[None])[0].argmax(dim=0).cpu().numpy().astype(np.uint8)
    return PanelRow(sample.id, _display(sample.image), sample.label, prediction, sample.fov)


def _display(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` grey or ``(H, W, 3)`` RGB view of a ``(C, H, W)`` network input (1 or 3 channels)."""
    return image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)


def append_results_row(
    path: Path,
    config: dict[str, Any],
    training: TrainResult,
    test_metrics: dict[str, Any] | None,
    *,
    wall_seconds: float,
) -> None:
    """Append one run's summary to the shared results table (header on first use; columns: the union over runs).

    Parameters
    ----------
    path
        The table, ``<runs_dir>/results.csv``.
    config
        The run's resolved config.
    training
        How training went.
    test_metrics
        :func:`~retinaseg.evaluate.evaluate_model`'s result on the test split,
        or ``None``; its ``summary`` becomes the ``test_*`` columns (mean Dice
        and IoU, accuracy, Dice per class (fluid for OCT), boundary MAD in µm
        or px, F1 and AUC for binary tasks).
    wall_seconds
        Wall-clock time of the whole run: training, curves and test evaluation.
    """
    summary = (test_metrics or {}).get("summary", {})
    data = config["data"]
    row = {
        "name": config["name"],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "data": f"{data['source']}:{data['root']}",
        "model": config["model"]["name"],
        "model_options": json.dumps(config["model"]["options"], sort_keys=True),
        "family": get_model_spec(config["model"]["name"]).family,
        "parameters": training.parameters,
        "batch_size": data["batch_size"],
        "input": _training_input(data),
        "augment": "off" if build_augmentation(data["augment"]).is_identity else "on",
        "loss": config["loss"]["name"],
        "optimizer": f"{config['optimizer']['name']} lr={config['optimizer']['lr']}",
        "lr": config["optimizer"]["lr"],
        "seed": config["seed"],
        "epochs": training.epochs,
        "train_minutes": round(training.train_seconds / 60, 2),
        "wall_minutes": round(wall_seconds / 60, 2),
        "device": training.device,
        "precision": training.precision,
        # Threads of this (the launching) process: what CPU training and evaluation ran with.
        "torch_threads": torch.get_num_threads(),
        f"best_{config['trainer']['monitor']}": round(training.best_score, 4) if training.validated else "",
        **{f"test_{k}": v for k, v in summary.items()},
    }
    rows = []
    if path.exists():
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    rows.append({k: str(v) for k, v in row.items()})
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, table.getvalue())


def _training_input(data: dict[str, Any]) -> str:
    """What the network was trained on: ``patch HxW``, ``resize HxW`` or ``whole`` images at their own size."""
    for key, kind in (("patch_size", "patch"), ("resize", "resize")):
        if data[key] is not None:
            return f"{kind} {data[key][0]}x{data[key][1]}"
    return "whole"

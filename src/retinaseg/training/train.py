"""``retinaseg train``: data -> split -> Lightning fit -> best checkpoint -> test metrics.

Each run lives in ``<runs_dir>/<name>/``: ``config.yaml`` (fully resolved),
``best.ckpt``, ``last.ckpt``, ``metrics.csv`` (one row per epoch),
``curves.png`` and ``test/`` (the evaluation of ``best.ckpt`` on the test
split). One row per finished run is appended to ``<runs_dir>/results.csv``.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar
from torch.utils.data import DataLoader

from retinaseg.data.augment import build_augmentation
from retinaseg.data.dataset import PatchDataset, WholeImageDataset, prepare_samples
from retinaseg.errors import InputError
from retinaseg.inference.evaluate import evaluate_checkpoint
from retinaseg.models import count_parameters
from retinaseg.report.plots import plot_training_curves
from retinaseg.training.config import save_config
from retinaseg.training.data import load_splits, resolve_preprocessing
from retinaseg.training.module import SegmentationModule


@dataclass
class TrainResult:
    """Where a finished run put its outputs, and its test metrics."""

    run_dir: Path
    best_checkpoint: Path
    test_metrics: dict[str, Any] | None
    train_seconds: float
    is_main_process: bool = True


def precision_for(requested: str) -> str:
    """``auto``: bf16 mixed precision on GPUs that have it, else full float32."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def train(config: dict[str, Any], resume: str | Path | None = None, overwrite: bool = False) -> TrainResult:
    """Train one model as configured; see the module docstring for the outputs.

    Parameters
    ----------
    config
        Resolved config from :func:`retinaseg.training.config.load_config`.
    resume
        Checkpoint to continue from (e.g. ``runs/<name>/last.ckpt``); the run
        folder may then exist already.
    overwrite
        Replace an existing run folder of the same name. Without it (and
        without ``resume``) an existing run folder is an error, so results are
        never overwritten silently.
    """
    L.seed_everything(config["seed"], workers=True, verbose=False)
    runs_dir = Path(config["output"]["runs_dir"])
    run_dir = runs_dir / str(config["name"])
    trainer_cfg = config["trainer"]
    is_launcher = _global_rank() == 0
    replace_run = is_launcher and run_dir.exists() and resume is None
    if replace_run and not overwrite:
        raise InputError(run_dir, "run folder exists; pick another name (--set name=...), --resume it or --overwrite")

    sample_set, splits = load_splits(config)
    for split in ("train", "val"):
        if len(splits[split]) == 0:
            raise InputError(f"data.split.{split}", f"no samples in the {split} split of {config['data']['root']}")
    preprocessing = resolve_preprocessing(config, sample_set)
    data = config["data"]
    fov_mode = data["fov"]
    train_set = PatchDataset(
        prepare_samples(splits["train"], preprocessing, fov_mode),
        patch_size=data["patch_size"],
        patches_per_image=data["patches_per_image"],
        augment=build_augmentation(data["augment"], seed=config["seed"]),
        foreground_crop_prob=data["foreground_crop_prob"],
        seed=config["seed"],
    )
    val_set = WholeImageDataset(prepare_samples(splits["val"], preprocessing, fov_mode))
    loader_args = {"num_workers": data["num_workers"], "persistent_workers": data["num_workers"] > 0}
    train_loader = DataLoader(train_set, batch_size=data["batch_size"], shuffle=True, drop_last=len(train_set) > data["batch_size"], **loader_args)
    val_loader = DataLoader(val_set, batch_size=1, **loader_args)

    module = SegmentationModule(config, sample_set.class_names, sample_set.task, preprocessing.to_dict())
    # The run folder is made only now, so bad data or a bad model leave nothing behind.
    if replace_run:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    monitor = trainer_cfg["monitor"]
    mode = "min" if monitor == "val_loss" else "max"
    checkpoint = ModelCheckpoint(dirpath=run_dir, filename="best", monitor=monitor, mode=mode, save_last=True, enable_version_counter=False)
    callbacks: list[Callback] = [
        checkpoint,
        EarlyStopping(monitor=monitor, mode=mode, patience=trainer_cfg["patience"]),
        EpochTable(run_dir / "metrics.csv"),
        _EpochSetter(train_set),
        RichProgressBar(),
    ]
    max_time = trainer_cfg["max_time_minutes"]
    trainer = L.Trainer(
        accelerator=trainer_cfg["accelerator"],
        devices=trainer_cfg["devices"],
        strategy=trainer_cfg["strategy"],
        precision=precision_for(trainer_cfg["precision"]),
        max_epochs=trainer_cfg["max_epochs"],
        max_time=None if max_time is None else {"minutes": float(max_time)},
        check_val_every_n_epoch=trainer_cfg["check_val_every_n_epoch"],
        limit_train_batches=trainer_cfg["limit_train_batches"],
        deterministic=trainer_cfg["deterministic"],
        callbacks=callbacks,
        logger=False,
        default_root_dir=run_dir,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    if trainer.is_global_zero:
        save_config(config, run_dir / "config.yaml")
    started = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=None if resume is None else str(resume))
    train_seconds = time.perf_counter() - started
    best = Path(checkpoint.best_model_path or run_dir / "last.ckpt")
    if not trainer.is_global_zero:
        return TrainResult(run_dir, best, None, train_seconds, is_main_process=False)

    plot_training_curves(run_dir / "metrics.csv", run_dir / "curves.png")
    test_metrics = None
    if len(splits["test"]) > 0:
        test_metrics = evaluate_checkpoint(best, run_dir / "test", config=config, split="test", overwrite=True)
    append_results_row(
        runs_dir / "results.csv",
        config,
        parameters=count_parameters(module.model),
        epochs=trainer.current_epoch,
        train_seconds=train_seconds,
        best_score=float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else float("nan"),
        test_metrics=test_metrics,
    )
    return TrainResult(run_dir, best, test_metrics, train_seconds)


class EpochTable(Callback):
    """Writes ``metrics.csv``: one row per epoch with losses, val_dice, lr and time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._validated: dict[str, float] = {}
        self._started = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # on_validation_end runs after the module has logged val_dice.
        if not trainer.sanity_checking:
            self._validated = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        row = {
            "epoch": trainer.current_epoch,
            "train_loss": float(metrics["train_loss"]) if "train_loss" in metrics else "",
            "val_loss": self._validated.get("val_loss", ""),
            "val_dice": self._validated.get("val_dice", ""),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "elapsed_s": round(time.perf_counter() - self._started, 1),
        }
        self._validated = {}
        new = not self.path.exists()
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


class _EpochSetter(Callback):
    """Gives the patch dataset the epoch number so crops change every epoch."""

    def __init__(self, dataset: PatchDataset) -> None:
        self.dataset = dataset

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.dataset.set_epoch(trainer.current_epoch)


def append_results_row(
    path: Path,
    config: dict[str, Any],
    *,
    parameters: int,
    epochs: int,
    train_seconds: float,
    best_score: float,
    test_metrics: dict[str, Any] | None,
) -> None:
    """Append one run's summary to the shared results table (header on first use)."""
    summary = (test_metrics or {}).get("summary", {})
    row = {
        "name": config["name"],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "data": f"{config['data']['source']}:{config['data']['root']}",
        "model": config["model"]["name"],
        "model_options": json.dumps(config["model"]["options"], sort_keys=True),
        "parameters": parameters,
        "loss": config["loss"]["name"],
        "optimizer": f"{config['optimizer']['name']} lr={config['optimizer']['lr']}",
        "seed": config["seed"],
        "epochs": epochs,
        "train_minutes": round(train_seconds / 60, 2),
        f"best_{config['trainer']['monitor']}": round(best_score, 4),
        **{f"test_{k}": v for k, v in summary.items()},
    }
    rows = []
    if path.exists():
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    rows.append({k: str(v) for k, v in row.items()})
    fields = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _global_rank() -> int:
    import os

    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))

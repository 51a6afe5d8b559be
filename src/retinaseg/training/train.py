"""Training: data -> split -> Lightning fit -> best checkpoint.

Each run lives in ``<runs_dir>/<name>/``; :func:`train` writes
``config.yaml`` (fully resolved), ``best.ckpt``, ``last.ckpt`` and
``metrics.csv`` (one row per epoch); a run without validation
(``data.split.val: []``) has no ``best.ckpt``: its model is ``last.ckpt``. ``retinaseg train`` then adds the
curves, the test evaluation and the row of the results table
(:mod:`retinaseg.experiment`).

Everything a run is told is checked before the work starts: the config
(:func:`~retinaseg.training.config.validate_config`), the run folder
(:func:`check_run_folder`), the checkpoint to resume (:func:`check_resume`)
and the hardware; what only the data can tell is checked once it is read, but
still before the run folder is made. The run folder is made when training
starts, and carries the marker of folders that retinaseg wrote
(:mod:`retinaseg.io.output`): only such a folder is ever replaced.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeGuard, get_args

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    RichProgressBar,
)
from torch.utils.data import DataLoader

from retinaseg.data.augment import build_augmentation
from retinaseg.data.dataset import PatchDataset, WholeImageDataset, prepare_samples, resize_samples
from retinaseg.errors import InputError, describe_exception, unknown_name
from retinaseg.io.atomic import write_text_atomic
from retinaseg.io.output import TRAINING_RUN, check_output_dir, mark_output_dir, replaced_on_success
from retinaseg.io.paths import resolve_data_path
from retinaseg.io.torch_files import read_torch_file
from retinaseg.models import count_parameters
from retinaseg.models.registry import get_model_spec
from retinaseg.training.config import (
    PRECISIONS,
    LightningPrecision,
    save_config,
    validate_against_data,
    validate_config,
    validates,
)
from retinaseg.training.data import load_splits, resolve_preprocessing
from retinaseg.training.module import SegmentationModule, monitor_mode
from retinaseg.training.precision import CpuPrecision, PrecisionChoice, choose_cpu_precision

_RESUME_KEYS = ("state_dict", "hyper_parameters", "optimizer_states", "lr_schedulers", "loops", "callbacks", "epoch")
"""What Lightning needs to continue a run; a weight file (``export-model``) has only the first two."""


@dataclass
class TrainResult:
    """Where a finished run put its outputs, and how it went.

    Attributes
    ----------
    run_dir
        The run folder.
    best_checkpoint
        The checkpoint of the best monitored score (the last one without validation).
    best_score
        That score; NaN when none was logged.
    validated
        ``False`` for a run without validation (``data.split.val: []``).
    epochs
        Epochs trained.
    parameters
        Trainable parameters of the network.
    test_images
        Images in the test split (0: nothing to test on).
    train_seconds
        Wall-clock time of the fit.
    is_main_process
        ``False`` in DDP's other processes, which write nothing.
    device
        Kind of device trained on: ``"cpu"``, ``"cuda"``, ``"mps"``.
    precision
        Lightning precision trained in (``"32-true"``, ``"bf16-mixed"``...).
    precision_note
        How ``trainer.precision: auto`` chose it on a CPU, with the step
        times measured (:mod:`retinaseg.training.precision`); ``None`` otherwise.
    """

    run_dir: Path
    best_checkpoint: Path
    best_score: float
    epochs: int
    parameters: int
    test_images: int
    train_seconds: float
    is_main_process: bool = True
    device: str = "cpu"
    precision: str = "32-true"
    precision_note: str | None = None
    validated: bool = True


def precision_for(requested: str) -> LightningPrecision:
    """``auto``: bf16 mixed precision on GPUs that have it, else full float32; other names as they are.

    On a CPU, :func:`train` then times both for the run's network and may
    choose bf16-mixed (:func:`~retinaseg.training.precision.choose_cpu_precision`).

    Raises
    ------
    InputError
        ``requested`` is not one of :data:`~retinaseg.training.config.PRECISIONS`.
    """
    if requested == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return "bf16-mixed"
        return "32-true"
    if not _is_lightning_precision(requested):
        raise InputError("trainer.precision", unknown_name("precision", requested, PRECISIONS))
    return requested


def _is_lightning_precision(name: str) -> TypeGuard[LightningPrecision]:
    return name in get_args(LightningPrecision)


def train(
    config: dict[str, Any],
    resume: str | Path | None = None,
    overwrite: bool = False,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train one model as configured; see the module docstring for the outputs.

    Parameters
    ----------
    config
        Resolved config from :func:`retinaseg.training.config.load_config`.
    resume
        Checkpoint to continue from (e.g. ``runs/<name>/last.ckpt``); the run
        folder may then exist already. It is read with the restricted
        unpickler: resuming never runs code from the file.
    overwrite
        Replace an existing run folder of the same name, if retinaseg wrote
        it. Without it (and without ``resume``) an existing run folder is an
        error, so results are never overwritten silently.
    callbacks
        Extra Lightning callbacks, run after the built-in ones; how a caller
        above training adds its own outputs to the run folder (e.g. the
        prediction snapshots of :mod:`retinaseg.experiment`).

    Raises
    ------
    InputError
        Any bad input, before the run folder is touched.
    """
    validate_config(config)
    runs_dir = Path(config["output"]["runs_dir"])
    run_dir = runs_dir / config["name"]
    is_launcher = _global_rank() == 0
    if is_launcher:  # DDP's other processes start when rank 0 has already made the folder
        check_run_folder(config, resume=resume, overwrite=overwrite)
    resume_point = None if resume is None else check_resume(resume, config)
    check_hardware(config["trainer"])
    L.seed_everything(config["seed"], workers=True, verbose=False)
    monitor = config["trainer"]["monitor"]
    validating = validates(config)
    checkpoint = (
        ModelCheckpoint(
            dirpath=run_dir, filename="best", monitor=monitor, mode=monitor_mode(monitor), enable_version_counter=False
        )
        if validating
        else None
    )
    all_callbacks = [latest_checkpoint(run_dir), *callbacks]
    requested_precision = config["trainer"]["precision"]
    with _lightning_quiet(resuming=resume is not None):
        trainer = _build_trainer(config, run_dir, checkpoint, all_callbacks, precision_for(requested_precision))

    sample_set, splits = load_splits(config)
    for split in ("train", "val") if validating else ("train",):
        if len(splits[split]) == 0:
            hint = "; data.split.val: [] trains without validation" if split == "val" else ""
            raise InputError(f"data.split.{split}", f"no samples in the {split} split of {config['data']['root']}{hint}")
    validate_against_data(config, sample_set.class_names, [sample.image.shape[:2] for sample in splits["train"].samples])
    preprocessing = resolve_preprocessing(config, sample_set)
    data = config["data"]
    train_set = PatchDataset(
        resize_samples(prepare_samples(splits["train"], preprocessing, data["fov"]), preprocessing.resize),
        patch_size=data["patch_size"],
        patches_per_image=data["patches_per_image"],
        augment=build_augmentation(data["augment"], seed=config["seed"]),
        foreground_crop_prob=data["foreground_crop_prob"],
        seed=config["seed"],
    )
    loader_args = {"num_workers": data["num_workers"], "persistent_workers": data["num_workers"] > 0}
    train_loader = DataLoader(
        train_set, batch_size=data["batch_size"], shuffle=True, drop_last=len(train_set) > data["batch_size"], **loader_args
    )
    val_loader = None
    if validating:
        # Validated at the training size (data.resize); the test evaluation scores at the labels' own size.
        val_set = WholeImageDataset(
            resize_samples(prepare_samples(splits["val"], preprocessing, data["fov"]), preprocessing.resize)
        )
        val_loader = DataLoader(val_set, batch_size=1, **loader_args)

    module = SegmentationModule(config, sample_set.class_names, sample_set.task, preprocessing.to_dict())
    if resume is not None and resume_point is not None:
        _check_weights_fit(resume, resume_point.shapes, module)
    choice = None
    if requested_precision == "auto":
        choice = _cpu_precision(trainer, config, train_set, module, None if resume_point is None else resume_point.precision)
    if choice is not None and choice.precision != trainer.precision:
        # The first trainer refused bad settings before the data was read; this one trains in the measured precision.
        with _lightning_quiet(resuming=resume is not None):
            trainer = _build_trainer(config, run_dir, checkpoint, all_callbacks, choice.precision)
    if choice is not None and is_launcher:
        print(choice.describe(), flush=True)  # before the progress bar: the timing took a while
    replacing = is_launcher and resume is None and run_dir.exists()
    if replacing:  # checked again: the folder may have changed while the data was read
        check_output_dir(run_dir, TRAINING_RUN, overwrite=overwrite, inputs=[resolve_data_path(data["root"])])
    started = time.perf_counter()
    # The old run is kept aside until the new one has finished, and comes back if it fails.
    with (
        replaced_on_success(run_dir, TRAINING_RUN) if replacing else nullcontext(),
        _lightning_quiet(resuming=resume is not None),
    ):
        trainer.fit(module, train_loader, val_loader, ckpt_path=None if resume is None else str(resume), weights_only=True)
    train_seconds = time.perf_counter() - started
    best_path, best_score = run_dir / "last.ckpt", float("nan")
    if checkpoint is not None and checkpoint.best_model_path:
        best_path = Path(checkpoint.best_model_path)
    if checkpoint is not None and checkpoint.best_model_score is not None:
        best_score = float(checkpoint.best_model_score)
    return TrainResult(
        run_dir=run_dir,
        best_checkpoint=best_path,
        best_score=best_score,
        epochs=trainer.current_epoch,
        parameters=count_parameters(module.model),
        test_images=len(splits["test"]),
        train_seconds=train_seconds,
        is_main_process=trainer.is_global_zero,
        device=trainer.strategy.root_device.type,
        precision=str(trainer.precision),
        precision_note=None if choice is None else choice.describe(),
        validated=validating,
    )


def check_run_folder(config: dict[str, Any], *, resume: str | Path | None = None, overwrite: bool = False) -> Path:
    """The run folder ``<runs_dir>/<name>``, if this run may write there; nothing is changed.

    Rules: the runs folder is not inside the input data folder; an existing,
    non-empty run folder needs ``overwrite`` or ``resume``, and even then is
    written into only if retinaseg wrote it (it holds
    :data:`~retinaseg.io.output.MARKER_NAME`); the location rules of
    :func:`~retinaseg.io.output.check_output_dir` hold. ``name`` itself is a
    plain folder name (:func:`~retinaseg.training.config.validate_config`).

    Raises
    ------
    InputError
        The rule that is broken.
    """
    if resume is not None and overwrite:
        raise InputError("--overwrite", "cannot be combined with --resume, which continues the run in its own folder")
    runs_dir = Path(config["output"]["runs_dir"])
    run_dir = runs_dir / config["name"]
    data_root = resolve_data_path(config["data"]["root"])
    if data_root.is_dir() and runs_dir.resolve().is_relative_to(data_root.resolve()):
        raise InputError(
            "output.runs_dir", f"{runs_dir} is inside the input data folder {data_root}; choose a folder outside the data"
        )
    if run_dir.is_dir() and any(run_dir.iterdir()) and resume is None and not overwrite:
        raise InputError(run_dir, "run folder exists; pick another name (--set name=...), --resume it or --overwrite")
    check_output_dir(run_dir, TRAINING_RUN, overwrite=True, inputs=[data_root])
    return run_dir


@dataclass(frozen=True)
class ResumePoint:
    """What :func:`train` needs of a checkpoint it resumes: weight shapes, and the precision it trained in."""

    shapes: dict[str, tuple[int, ...]]
    precision: CpuPrecision | None


def check_resume(path: str | Path, config: dict[str, Any]) -> ResumePoint:
    """The weight shapes and precision of a checkpoint to resume, read without running code from it, if it fits ``config``.

    Only these are kept: Lightning reads the file again to resume. The
    precision is the one :class:`PrecisionRecord` stored (``None`` for
    checkpoints without it, or with another value than a CPU precision).

    Raises
    ------
    InputError
        Not a readable PyTorch file, holds more than plain data (it could run
        code), not a training checkpoint of ``retinaseg train``, one of
        another network than ``config`` describes, or one of a run that
        validated when ``config`` does not (or the other way round).
    """
    payload = read_torch_file(path, "checkpoint")
    missing = [key for key in _RESUME_KEYS if key not in payload]
    if missing:
        raise InputError(
            path, f"not a training checkpoint of retinaseg train (no {missing[0]!r}); only a .ckpt of a run can be resumed"
        )
    stored_config = _stored_config(payload)
    stored, wanted = stored_config.get("model"), config["model"]
    if (
        not isinstance(stored, dict)
        or stored.get("name") != wanted["name"]
        or _resolved_options(stored) != _resolved_options(wanted)
    ):
        raise InputError(path, f"was trained with model {stored}, the config asks for {wanted}; resume with the run's own config")
    validated = _stored_validates(stored_config)
    if validated is not None and validated != validates(config):
        # Switching halfway would leave a best.ckpt of part of the run, or stop validating a run that chose by it.
        was = "with validation" if validated else "without validation (data.split.val: [])"
        raise InputError(path, f"was trained {was}; resume it the same way, with the run's own config")
    state_dict = payload["state_dict"]
    if not isinstance(state_dict, dict):
        raise InputError(path, "not a training checkpoint of retinaseg train (its state_dict is not a mapping)")
    shapes = {key: tuple(value.shape) for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    record = payload["callbacks"].get(PrecisionRecord.__qualname__) if isinstance(payload["callbacks"], dict) else None
    stored_precision = record.get("precision") if isinstance(record, dict) else None
    return ResumePoint(shapes, stored_precision if stored_precision in get_args(CpuPrecision) else None)


def check_hardware(trainer_cfg: dict[str, Any]) -> None:
    """The configured accelerator and number of devices exist on this machine."""
    accelerator, devices = trainer_cfg["accelerator"], trainer_cfg["devices"]
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise InputError("trainer.accelerator", f"{accelerator!r} needs a CUDA GPU and PyTorch finds none; use cpu or auto")
        if devices != "auto" and devices > torch.cuda.device_count():
            raise InputError("trainer.devices", f"{devices} GPUs asked for, {torch.cuda.device_count()} found")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise InputError("trainer.accelerator", "'mps' needs an Apple GPU and PyTorch finds none; use cpu or auto")


def _cpu_precision(
    trainer: L.Trainer,
    config: dict[str, Any],
    train_set: PatchDataset,
    module: SegmentationModule,
    resumed: CpuPrecision | None,
) -> PrecisionChoice | None:
    """``auto``'s precision for a run in one CPU process, timed on its network and batch shape; else ``None``.

    A resumed run keeps the precision its checkpoint records (``resumed``),
    so that one run never changes precision halfway. Multi-process CPU runs
    keep float32: their processes would time, and might choose, apart.
    """
    if trainer.strategy.root_device.type != "cpu" or trainer.world_size != 1:
        return None
    if resumed is not None:
        return PrecisionChoice(resumed, reason="as the run resumed")
    data = config["data"]
    channels, *whole_image = train_set.samples[0].image.shape
    height, width = data["patch_size"] or whole_image
    batch_shape = (min(data["batch_size"], len(train_set)), channels, height, width)
    return choose_cpu_precision(
        module.model,
        module.loss,
        batch_shape,
        len(module.trained_model.class_names),
        channels_last=config["trainer"]["channels_last"],
    )


def latest_checkpoint(run_dir: Path) -> ModelCheckpoint:
    """Callback keeping ``run_dir/last.ckpt`` at the latest epoch, what ``--resume`` continues from.

    Saved at the end of every training epoch, after that epoch's validation
    and ``best.ckpt`` (so the best score it records is current), and also
    for epochs without validation. Not ``ModelCheckpoint(save_last=True)``:
    since Lightning 2.6 that writes ``last.ckpt`` only when the monitored
    score improves, so after a run's best epoch it stays a copy of
    ``best.ckpt``, and a resumed run would repeat every epoch after it.
    """
    return ModelCheckpoint(
        dirpath=run_dir,
        filename="last",
        monitor=None,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )


def _build_trainer(
    config: dict[str, Any],
    run_dir: Path,
    checkpoint: ModelCheckpoint | None,
    extra_callbacks: Sequence[Callback],
    precision: LightningPrecision,
) -> L.Trainer:
    """``checkpoint``: the best-score checkpoint, with early stopping on that score; ``None`` for a run without validation."""
    trainer_cfg = config["trainer"]
    monitor = trainer_cfg["monitor"]
    choosing: list[Callback] = []
    if checkpoint is not None:
        choosing = [checkpoint, EarlyStopping(monitor=monitor, mode=monitor_mode(monitor), patience=trainer_cfg["patience"])]
    callbacks: list[Callback] = [
        _RunFolder(run_dir, config),
        PrecisionRecord(precision),
        *choosing,
        EpochTable(run_dir / "metrics.csv"),
        _EpochSetter(),
        RichProgressBar(),
        *extra_callbacks,
    ]
    max_time = trainer_cfg["max_time_minutes"]
    try:
        return L.Trainer(
            accelerator=trainer_cfg["accelerator"],
            devices=trainer_cfg["devices"],
            strategy=trainer_cfg["strategy"],
            precision=precision,
            max_epochs=trainer_cfg["max_epochs"],
            max_time=None if max_time is None else timedelta(minutes=float(max_time)),
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
    except (MisconfigurationException, ValueError, TypeError) as err:  # combinations only Lightning knows, e.g. fsdp on a CPU
        raise InputError("trainer", f"Lightning refuses these settings ({describe_exception(err)})") from err


def _stored_config(payload: dict[str, Any]) -> dict[str, Any]:
    """The config stored in a checkpoint, ``{}`` if there is none; the file's layout is not trusted."""
    hyper_parameters = payload["hyper_parameters"]
    config = hyper_parameters.get("config") if isinstance(hyper_parameters, dict) else None
    return config if isinstance(config, dict) else {}


def _stored_validates(stored: dict[str, Any]) -> bool | None:
    """Whether the run of a stored config validated (:func:`validates`), ``None`` if the config does not say."""
    data = stored.get("data")
    split = data.get("split") if isinstance(data, dict) else None
    return split.get("val") != [] if isinstance(split, dict) and "val" in split else None


def _resolved_options(model_cfg: dict[str, Any]) -> dict[str, Any] | None:
    """A model section's options over the model's defaults; ``None`` for options that are not valid."""
    try:
        return get_model_spec(model_cfg["name"]).resolve(model_cfg.get("options"))
    except (InputError, TypeError, ValueError):  # a checkpoint's options may be anything
        return None


def _check_weights_fit(path: str | Path, found: dict[str, tuple[int, ...]], module: SegmentationModule) -> None:
    """The stored weight shapes ``found`` are ``module``'s, so Lightning can load them (classes, channels)."""
    expected = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    if found != expected:
        differing = sorted(set(expected) ^ set(found)) or sorted(key for key in expected if expected[key] != found[key])
        raise InputError(
            path,
            f"its weights do not fit the configured model and data (first difference: {differing[0]}); classes or channels differ",
        )


@contextmanager
def _lightning_quiet(resuming: bool) -> Iterator[None]:
    """Lightning without its INFO messages, and without warnings about what is meant to be.

    Lightning logs at INFO level what it set up (devices, precision), why fit
    stopped, and tips for its cloud products; retinaseg reports a run
    itself. Lightning's warnings still show, but three that are expected.
    """
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # Lightning 2.6 builds torch's LeafSpec for every set of data loaders; torch 2.13 deprecates it.
            warnings.filterwarnings(
                "ignore",
                message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                category=FutureWarning,
                module=r"lightning\.",
            )
            # Runs without validation (data.split.val: []) pass no validation loader on purpose.
            warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")
            if resuming:
                # A resumed run replaces the checkpoints in its own folder on purpose.
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty", category=UserWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class _RunFolder(Callback):
    """Makes the run folder when training starts: marker and ``config.yaml``.

    Not earlier, so bad data or a bad model leave nothing behind, and not
    before Lightning's checkpoint callback has looked at the folder, which
    warns when it is not empty.
    """

    def __init__(self, run_dir: Path, config: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.config = config

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            mark_output_dir(self.run_dir, TRAINING_RUN)
            save_config(self.config, self.run_dir / "config.yaml")


class PrecisionRecord(Callback):
    """Stores the precision a run trains in with its checkpoints, so that ``--resume`` continues in it."""

    def __init__(self, precision: str) -> None:
        self.precision = precision

    def state_dict(self) -> dict[str, Any]:
        return {"precision": self.precision}


class EpochTable(Callback):
    """Writes ``metrics.csv``: one row per epoch with losses, val_dice, lr and time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._validated: dict[str, float] = {}
        self._started = time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.perf_counter()  # elapsed_s counts training, not what came before it

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
            "val_iou": self._validated.get("val_iou", ""),
            "val_accuracy": self._validated.get("val_accuracy", ""),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
            "elapsed_s": round(time.perf_counter() - self._started, 1),
        }
        self._validated = {}
        # Rewritten whole, atomically: a resumed run continues the table of its first part.
        table = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        line = io.StringIO()
        writer = csv.DictWriter(line, fieldnames=list(row))
        if not table:
            writer.writeheader()
        writer.writerow(row)
        write_text_atomic(self.path, table + line.getvalue())


class _EpochSetter(Callback):
    """Gives the patch dataset the epoch number so crops change every epoch."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loader = trainer.train_dataloader
        if loader is None:  # Lightning sets up the training data before the first epoch starts
            raise RuntimeError("the training epoch started without a training data loader")
        loader.dataset.set_epoch(trainer.current_epoch)


def _global_rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))

"""Hostile training input: every bad config value, run name or checkpoint is refused up front.

The rule: one line naming the key (or file), exit code 2, nothing created (no
run folder, no results table), no traceback, and before any data is read.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from retinaseg.data.phantom import make_phantom_set
from retinaseg.errors import InputError
from retinaseg.io.dataset_format import write_dataset
from retinaseg.io.output import MARKER_NAME
from retinaseg.training.config import (
    DEFAULTS,
    FREE_FORM,
    load_config,
    validate_against_data,
    validate_config,
    validate_split,
)

from conftest import file_contents

REQUIRED = ["name=run", "data.source=retinaseg", "data.root=somewhere"]
_SCRIPT = Path(sys.executable).with_name("retinaseg")
RETINASEG = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "retinaseg.cli"]
CliRunner = Callable[..., tuple[int, str, str]]

# (override, key named in the error, words of the problem); at least one row per key of DEFAULTS.
BAD_VALUES = [
    ("name=/some/absolute/path", "name", "plain name"),
    ("name=''", "name", "plain name"),
    ("name=../../x", "name", "plain name"),
    ("name=a/b", "name", "plain name"),
    ("name=..", "name", "plain name"),
    ("name=42", "name", "plain name"),
    ("name=" + "x" * 129, "name", "at most 128"),
    ("seed=x", "seed", "integer from 0"),
    ("seed=-1", "seed", "integer from 0"),
    ("data.source=retinasge", "data.source", "did you mean 'retinaseg'"),
    ("data.root=''", "data.root", "non-empty"),
    ("data.options={annotator: 2}", "data.options.annotator", "unknown retinaseg source option"),
    ("data.split.train=[1, 2]", "data.split.train", "subject ids"),
    ("data.split.val=phantom_01", "data.split.val", "subject ids"),
    ("data.split.test={a: 1}", "data.split.test", "subject ids"),
    ("data.channels=gren", "data.channels", "did you mean 'green'"),
    ("data.clahe=yes", "data.clahe", "true or false"),
    ("data.clahe=1", "data.clahe", "true or false"),
    ("data.normalize=zscroe", "data.normalize", "did you mean 'zscore'"),
    ("data.fov=off", "data.fov", "unknown FOV mode"),
    ("data.patch_size=0", "data.patch_size", "two integers >= 1"),
    ("data.patch_size=[-1, 64]", "data.patch_size", "two integers >= 1"),
    ("data.patch_size=b", "data.patch_size", "two integers >= 1"),
    ("data.patch_size=[64]", "data.patch_size", "two integers >= 1"),
    ("data.patch_size=[9, 64]", "data.patch_size", "needs at least 16 pixels per side"),
    ("data.patch_size=[20, 64]", "data.patch_size", "multiples of 8"),
    ("data.resize=[0, 64]", "data.resize", "two integers >= 1"),
    ("data.resize=128", "data.resize", "two integers >= 1"),
    ("data.resize=[128, 9]", "data.resize", "needs at least 16 pixels per side"),
    ("data.patches_per_image=0", "data.patches_per_image", "integer >= 1"),
    ("data.foreground_crop_prob=1.5", "data.foreground_crop_prob", "in [0, 1]"),
    ("data.foreground_crop_prob=.nan", "data.foreground_crop_prob", "in [0, 1]"),
    ("data.batch_size=0", "data.batch_size", "integer >= 1"),
    ("data.batch_size=-1", "data.batch_size", "integer >= 1"),
    ("data.batch_size=x", "data.batch_size", "integer >= 1"),
    ("data.num_workers=-1", "data.num_workers", "integer >= 0"),
    ("data.augment={hflp: true}", "data.augment.hflp", "did you mean 'hflip'"),
    ("data.augment={p: 2}", "data.augment.p", "[0, 1]"),
    ("data.augment={rotate_deg: .inf}", "data.augment.rotate_deg", "finite"),
    ("data.relabel={class_names: [a], map: {0: 0}}", "data.relabel.class_names", "must name 2 to"),
    ("data.relabel={class_names: [a, b]}", "data.relabel.map", "mapping"),
    ("data.relabel={class_names: [a, b], map: {0: 5}}", "data.relabel.map", "new ids 0-1"),
    ("data.relabel={class_names: [a, b], map: {0: 0}, mapp: 1}", "data.relabel.mapp", "did you mean 'map'"),
    ("model.name=unte", "model.name", "did you mean 'unet'"),
    ("model.options={depth: 40}", "model.options.depth", "in [2, 6]"),
    ("model.options={depth: x}", "model.options.depth", "integer"),
    ("model.options={dpeth: 3}", "model.options.dpeth", "did you mean 'depth'"),
    ("model.options={norm: btach}", "model.options.norm", "did you mean 'batch'"),
    ("model.options={dropout: 1.5}", "model.options.dropout", "in [0, 1]"),
    ("loss.name=dice_cee", "loss.name", "did you mean 'dice_ce'"),
    ("loss.class_weights=[0, 0]", "loss.class_weights", "not all 0"),
    ("loss.class_weights=[1, x]", "loss.class_weights", "finite numbers"),
    ("loss.boundary_weight=-1", "loss.boundary_weight", ">= 0"),
    ("optimizer.name=rmsprop", "optimizer.name", "unknown optimizer 'rmsprop'"),
    ("optimizer.momentum=1", "optimizer.momentum", "in [0, 1)"),
    ("optimizer.name=adamx", "optimizer.name", "did you mean"),
    ("optimizer.lr=.nan", "optimizer.lr", "finite number > 0"),
    ("optimizer.lr=-1", "optimizer.lr", "finite number > 0"),
    ("optimizer.lr=0", "optimizer.lr", "finite number > 0"),
    ("optimizer.lr=x", "optimizer.lr", "finite number > 0"),
    ("optimizer.weight_decay=-1e-4", "optimizer.weight_decay", ">= 0"),
    ("scheduler.name=cosin", "scheduler.name", "did you mean 'cosine'"),
    ("scheduler.patience=-1", "scheduler.patience", "integer >= 0"),
    ("scheduler.factor=1", "scheduler.factor", "in (0, 1)"),
    ("scheduler.min_lr=-1", "scheduler.min_lr", ">= 0"),
    ("trainer.max_epochs=0", "trainer.max_epochs", "integer >= 1, got 0"),
    ("trainer.max_epochs=-5", "trainer.max_epochs", "integer >= 1"),
    ("trainer.max_epochs=1.5", "trainer.max_epochs", "integer >= 1"),
    ("trainer.max_epochs=x", "trainer.max_epochs", "integer >= 1"),
    ("trainer.max_time_minutes=0", "trainer.max_time_minutes", "> 0"),
    ("trainer.monitor=val_banana", "trainer.monitor", "unknown monitor 'val_banana'"),
    ("trainer.patience=-1", "trainer.patience", "integer >= 0"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch", "integer >= 1"),
    ("trainer.check_val_every_n_epoch=200", "trainer.check_val_every_n_epoch", "never validate"),
    ("trainer.accelerator=tpu", "trainer.accelerator", "unknown accelerator 'tpu'"),
    ("trainer.devices=0", "trainer.devices", "integer >= 1 or 'auto'"),
    ("trainer.devices=[0, 1]", "trainer.devices", "integer >= 1 or 'auto'"),
    ("trainer.strategy=dpp", "trainer.strategy", "did you mean 'ddp'"),
    ("trainer.precision=bf16", "trainer.precision", "did you mean 'bf16"),
    ("trainer.precision=32", "trainer.precision", "unknown precision"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches", "fraction in (0, 1]"),
    ("trainer.limit_train_batches=1.5", "trainer.limit_train_batches", "fraction in (0, 1]"),
    ("trainer.deterministic=yes", "trainer.deterministic", "true or false"),
    ("trainer.channels_last=1", "trainer.channels_last", "true or false"),
    ("trainer.snapshot_every=0", "trainer.snapshot_every", "integer >= 1, got 0"),
    ("trainer.snapshot_every=-1", "trainer.snapshot_every", "integer >= 1"),
    ("trainer.snapshot_every=x", "trainer.snapshot_every", "integer >= 1"),
    ("evaluation.metric_classes=[]", "evaluation.metric_classes", "at least one"),
    ("evaluation.metric_classes=[1, 1]", "evaluation.metric_classes", "distinct class ids"),
    ("evaluation.roi_size=[0, 64]", "evaluation.roi_size", "two integers >= 1"),
    ("evaluation.overlap=1", "evaluation.overlap", "in [0, 1)"),
    ("evaluation.sw_batch_size=0", "evaluation.sw_batch_size", "integer >= 1"),
    ("evaluation.boundary_classes=[x]", "evaluation.boundary_classes", "class ids"),
    ("evaluation.fluid_classes=9", "evaluation.fluid_classes", "class ids"),
    ("evaluation.threshold=1", "evaluation.threshold", "in (0, 1)"),
    ("evaluation.threshold=0", "evaluation.threshold", "in (0, 1)"),
    ("evaluation.flips=[horizontl]", "evaluation.flips", "did you mean 'horizontal'"),
    ("evaluation.flips=[vertical, vertical]", "evaluation.flips", "list of distinct flips"),
    ("evaluation.flips=horizontal", "evaluation.flips", "list of distinct flips"),
    ("evaluation.flips=[[horizontal]]", "evaluation.flips", "unknown flip"),
    ("evaluation.ordered_layers=1", "evaluation.ordered_layers", "true or false"),
    ("output.runs_dir=''", "output.runs_dir", "non-empty"),
]


def leaf_keys(tree: dict, prefix: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys of DEFAULTS' values; a free-form section counts as one value."""
    keys = []
    for key, value in tree.items():
        where = (*prefix, key)
        if isinstance(value, dict) and value and where not in FREE_FORM:
            keys += leaf_keys(value, where)
        else:
            keys.append(".".join(where))
    return keys


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 phantom subjects, 1 B-scan of 64x32 pixels (16 µm axial) each, as a retinaseg dataset."""
    root = tmp_path_factory.mktemp("phantom") / "dataset"
    phantoms = make_phantom_set(n_subjects=3, bscans_per_subject=1, height=64, width=32, axial_um=16.0, seed=0)
    return write_dataset(phantoms, root)


def write_config(folder: Path, data_root: Path | str, **top: object) -> Path:
    """A tiny training config (2-level U-Net, 1 epoch) in ``folder/config.yaml``, runs in ``folder/runs``."""
    config = {
        "name": "tiny",
        "data": {
            "source": "retinaseg",
            "root": str(data_root),
            "split": {"train": ["phantom_01"], "val": ["phantom_02"], "test": []},
            "channels": "grey",
        },
        "model": {"name": "unet", "options": {"depth": 2, "base_channels": 2}},
        "trainer": {"max_epochs": 1, "accelerator": "cpu"},
        "output": {"runs_dir": str(folder / "runs")},
        **top,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_refused(result: tuple[int, str, str], where: str | Path, folder: Path, before: dict[str, bytes]) -> None:
    """Exit 2, one stderr line naming ``where``, and ``folder`` exactly as it was."""
    code, _, stderr = result
    assert code == 2, stderr
    (line,) = stderr.splitlines()
    assert line.startswith(f"retinaseg: error: {where}: "), line
    assert file_contents(folder) == before
    assert not (folder / "runs").exists()


# --- every key of the config -------------------------------------------------------------------


@pytest.mark.parametrize(("override", "where", "problem"), BAD_VALUES, ids=[row[0][:40] for row in BAD_VALUES])
def test_bad_value_is_named(override: str, where: str, problem: str) -> None:
    with pytest.raises(InputError) as error:
        load_config(None, [*REQUIRED, override])
    assert (error.value.where, problem in error.value.problem) == (where, True), str(error.value)


def test_every_key_has_a_bad_value_case() -> None:
    named = {where for _, where, _ in BAD_VALUES}
    missing = [key for key in leaf_keys(DEFAULTS) if not any(w == key or w.startswith(f"{key}.") for w in named)]
    assert missing == []


@pytest.mark.parametrize(
    "override",
    [
        "name=run-1.b_2",
        "seed=4294967295",
        "data.patch_size=[64, 32]",
        "data.resize=[224, 224]",
        "data.foreground_crop_prob=1",
        "data.clahe=true",
        "optimizer.lr=1e-3",
        "optimizer.weight_decay=0",
        "scheduler.name=none",
        "scheduler.name=null",
        "trainer.max_time_minutes=0.5",
        "trainer.devices=auto",
        "trainer.strategy=ddp",
        "trainer.precision=bf16-mixed",
        "trainer.limit_train_batches=0.5",
        "trainer.limit_train_batches=3",
        "trainer.snapshot_every=1",
        "trainer.snapshot_every=null",
        "evaluation.overlap=0",
        "evaluation.fluid_classes=[]",
        "evaluation.threshold=0.73",
        "evaluation.flips=[horizontal, vertical]",
        "data.split.train=rest",
        "model.options={depth: 6, norm: none, dropout: 0}",
    ],
)
def test_good_edge_values_pass(override: str) -> None:
    load_config(None, [*REQUIRED, override])


def test_resize_and_patches_are_exclusive() -> None:
    with pytest.raises(InputError, match="cannot be combined with data.patch_size") as error:
        load_config(None, [*REQUIRED, "data.patch_size=[64, 64]", "data.resize=[128, 128]"])
    assert error.value.where == "data.resize"


def test_deeplabv3_needs_batches_of_two() -> None:
    model = ["model.name=deeplabv3_resnet50", "model.options={width: 4}", "data.patch_size=[64, 64]"]
    with pytest.raises(InputError, match="batches of at least 2, got 1") as error:
        load_config(None, [*REQUIRED, *model, "data.batch_size=1"])
    assert error.value.where == "data.batch_size"
    load_config(None, [*REQUIRED, *model, "data.batch_size=2"])
    load_config(None, [*REQUIRED, "model.name=fcn_resnet50", "data.patch_size=[64, 64]", "data.batch_size=1"])
    one_item = load_config(None, [*REQUIRED, *model, "data.batch_size=2", "data.patches_per_image=1"])
    with pytest.raises(InputError, match="1 training item.s. per epoch make a batch of 1") as error:
        validate_against_data(one_item, ["a", "b"], [(64, 64)])
    assert error.value.where == "data.split.train"
    validate_against_data(one_item, ["a", "b"], [(64, 64), (64, 64)])


def test_resized_images_need_neither_one_size_nor_a_size_above_the_patch() -> None:
    # Whole images of different sizes batch once resized; the model's minimum applies to the resize alone.
    config = load_config(None, [*REQUIRED, "data.resize=[16, 16]", "data.batch_size=2"])
    validate_against_data(config, ["a", "b"], [(8, 8), (80, 32)])


def test_yaml_reads_dates_as_text_and_only_true_false_as_booleans() -> None:
    config = load_config(None, [*REQUIRED, "name=2024-05-01", "data.clahe=True"])
    assert (config["name"], config["data"]["clahe"]) == ("2024-05-01", True)


def test_builder_refusals_name_the_model_options() -> None:
    with pytest.raises(InputError, match="cannot be built") as error:
        load_config(None, [*REQUIRED, "model.name=basic_unet", "model.options={features: [8, 8]}"])
    assert error.value.where == "model.options"


def test_values_that_are_not_plain_data_are_refused() -> None:
    # A numpy number would make checkpoints unreadable by the restricted unpickler.
    config = load_config(None, REQUIRED)
    config["optimizer"]["lr"] = np.float64(1e-3)
    with pytest.raises(InputError, match="plain data") as error:
        validate_config(config)
    assert error.value.where == "optimizer.lr"


@pytest.mark.parametrize(
    ("split", "where", "problem"),
    [
        ({"train": None, "val": "rest", "test": []}, "data.split.val", "only one split"),
        ({"train": ["a", "b"], "val": ["b"], "test": None}, "data.split.val", "also in split 'train'"),
    ],
)
def test_split_plan_is_checked(split: dict, where: str, problem: str) -> None:
    config = load_config(None, REQUIRED)
    config["data"]["split"] = split
    with pytest.raises(InputError, match=problem) as error:
        validate_split(config)
    assert error.value.where == where


@pytest.mark.parametrize(
    ("override", "where", "problem"),
    [
        ("evaluation.metric_classes=[1, 3]", "evaluation.metric_classes", "class ids [3] do not exist"),
        ("evaluation.fluid_classes=[9]", "evaluation.fluid_classes", "class ids [9] do not exist"),
        ("loss.class_weights=[1, 2]", "loss.class_weights", "one weight per class (3"),
        ("data.patch_size=[72, 16]", "data.patch_size", "larger than the smallest training image (64 x 32)"),
        ("data.batch_size=2", "data.patch_size", "differ in size"),
        ("model.options={depth: 6}", "model.options", "needs 64 pixels per side"),
    ],
)
def test_values_that_do_not_fit_the_data(override: str, where: str, problem: str) -> None:
    config = load_config(None, [*REQUIRED, override])
    with pytest.raises(InputError) as error:
        validate_against_data(config, ["a", "b", "c"], [(64, 32), (80, 32)])
    assert error.value.where == where and problem in error.value.problem, str(error.value)


# --- through the command line: nothing is created ----------------------------------------------


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("data.batch_size=x", "data.batch_size"),
        ("optimizer.lr=.nan", "optimizer.lr"),
        ("seed=x", "seed"),
        ("data.patch_size=-3", "data.patch_size"),
        ("optimizer.name=rmsprop", "optimizer.name"),
        ("scheduler.name=step", "scheduler.name"),
        ("trainer.monitor=val_banana", "trainer.monitor"),
        ("trainer.devices=0", "trainer.devices"),
        ("trainer.accelerator=tpu", "trainer.accelerator"),
        ("data.num_workers=-1", "data.num_workers"),
        ("model.options={depth: 40}", "model.options.depth"),
    ],
)
def test_train_refuses_bad_values_before_any_work(override: str, where: str, tmp_path: Path, run_cli: CliRunner) -> None:
    config = write_config(tmp_path, tmp_path / "no_data_needed")
    before = file_contents(tmp_path)
    assert_refused(run_cli("train", config, "--set", override), where, tmp_path, before)


@pytest.mark.parametrize(
    ("override", "where"),
    [("data.patch_size=[72, 16]", "data.patch_size"), ("evaluation.metric_classes=[12]", "evaluation.metric_classes")],
)
def test_train_refuses_values_that_do_not_fit_the_data_before_the_run_folder(
    override: str, where: str, phantom_dir: Path, tmp_path: Path, run_cli: CliRunner
) -> None:
    config = write_config(tmp_path, phantom_dir)
    before = file_contents(tmp_path)
    assert_refused(run_cli("train", config, "--set", override), where, tmp_path, before)


@pytest.mark.parametrize("name", ["VICTIM", "", "''", "../../x", "."])
def test_run_name_never_reaches_outside_the_runs_folder(name: str, tmp_path: Path, run_cli: CliRunner) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "best.ckpt").write_text("someone else's file\n")
    name = str(victim) if name == "VICTIM" else name
    config = write_config(tmp_path, tmp_path / "data")
    before = file_contents(tmp_path)
    code, _, stderr = run_cli("train", config, "--set", f"name={name}", "--overwrite")
    assert code == 2 and stderr.startswith("retinaseg: error: name: "), stderr
    assert file_contents(tmp_path) == before


def test_overwrite_keeps_a_folder_retinaseg_did_not_write(tmp_path: Path, run_cli: CliRunner) -> None:
    config = write_config(tmp_path, tmp_path / "data")
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    (tmp_path / "runs" / "tiny" / "notes.txt").write_text("mine\n")
    before = file_contents(tmp_path)
    code, _, stderr = run_cli("train", config, "--overwrite")
    assert code == 2 and f"{tmp_path / 'runs' / 'tiny'}: was not written by retinaseg" in stderr
    assert file_contents(tmp_path) == before


def test_runs_folder_inside_the_data_is_refused(phantom_dir: Path, tmp_path: Path, run_cli: CliRunner) -> None:
    config = write_config(tmp_path, phantom_dir, output={"runs_dir": str(phantom_dir / "runs")})
    before = file_contents(phantom_dir)
    code, _, stderr = run_cli("train", config)
    assert code == 2 and stderr.startswith("retinaseg: error: output.runs_dir: "), stderr
    assert file_contents(phantom_dir) == before


def test_resume_and_overwrite_together_are_refused(tmp_path: Path, run_cli: CliRunner) -> None:
    config = write_config(tmp_path, tmp_path / "data")
    (tmp_path / "last.ckpt").write_bytes(b"")
    before = file_contents(tmp_path)
    assert_refused(run_cli("train", config, "--resume", tmp_path / "last.ckpt", "--overwrite"), "--overwrite", tmp_path, before)


def test_demo_refuses_a_bad_time_budget(tmp_path: Path, run_cli: CliRunner) -> None:
    code, _, stderr = run_cli("demo", "--out", tmp_path / "demo", "--minutes", "0")
    assert code == 2 and stderr.startswith("retinaseg: error: --minutes: "), stderr
    assert not (tmp_path / "demo").exists()


# --- --resume reads the checkpoint without running code from it -------------------------------


class _TouchOnLoad:
    """Unpickling this calls ``Path.touch(path)``: what a crafted checkpoint could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.path,))


def _crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": _TouchOnLoad(marker)}, path)
    return path


def test_crafted_checkpoint_would_run_code_when_unpickled(tmp_path: Path) -> None:
    # Shows the payload below is live: the restricted unpickler is what stops it.
    marker = tmp_path / "ran"
    torch.load(_crafted_checkpoint(tmp_path / "crafted.ckpt", marker), weights_only=False)
    assert marker.exists()


def _garbage(path: Path, marker: Path) -> None:
    path.write_bytes(b"PK\x03\x04 not really a zip archive" * 10)


def _absent(path: Path, marker: Path) -> None:
    """No file at all."""


def _tensor(path: Path, marker: Path) -> None:
    torch.save(torch.zeros(2), path)


def _weight_file(path: Path, marker: Path) -> None:
    torch.save({"format": "retinaseg-weights-1", "hyper_parameters": {}, "state_dict": {}}, path)


def _other_model(path: Path, marker: Path) -> None:
    keys = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks", "epoch")
    torch.save({**{key: {} for key in keys}, "hyper_parameters": {"config": {"model": {"name": "dynunet", "options": {}}}}}, path)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_crafted_checkpoint, "could run code"),
        (_garbage, "not a"),
        (_absent, "checkpoint not found"),
        (_tensor, "not a"),
        (_weight_file, "only a .ckpt of a run"),
        (_other_model, "was trained with model {'name': 'dynunet'"),
    ],
    ids=["crafted-pickle", "garbage", "absent", "tensor", "weight-file", "other-model"],
)
def test_resume_refuses_unsafe_or_foreign_files(
    make: Callable[[Path, Path], object], problem: str, tmp_path: Path, run_cli: CliRunner
) -> None:
    config = write_config(tmp_path, tmp_path / "data")
    checkpoint, marker = tmp_path / "resume.ckpt", tmp_path / "ran"
    make(checkpoint, marker)
    before = file_contents(tmp_path)
    result = run_cli("train", config, "--resume", checkpoint)
    assert_refused(result, checkpoint, tmp_path, before)
    assert problem in result[2] and not marker.exists()


# --- a real run: quiet, and --overwrite replaces only what train wrote -------------------------


@pytest.mark.slow
def test_train_output_is_free_of_library_noise_and_overwrite_replaces_our_run(phantom_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, phantom_dir)
    for extra in ([], ["--overwrite"]):
        done = subprocess.run(
            [*RETINASEG, "train", str(config), *extra], check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr[-3000:]
        for noise in ("Tip:", "GPU available", "LeafSpec", "exists and is not empty", "`Trainer.fit` stopped", "Traceback"):
            assert noise not in done.stderr + done.stdout, noise
    run_dir = tmp_path / "runs" / "tiny"
    assert {MARKER_NAME, "config.yaml", "best.ckpt", "last.ckpt", "metrics.csv"} <= {p.name for p in run_dir.iterdir()}
    with (tmp_path / "runs" / "results.csv").open() as handle:
        assert len(handle.read().splitlines()) == 3  # header and one row per run

"""Tests for retinaseg.training: configs, losses and smoke training runs on phantom B-scans."""

from __future__ import annotations

import copy
import csv
import json
import math
import shutil
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from retinaseg.conventions import DUKE_CLASS_NAMES
from retinaseg.data.phantom import make_phantom_set
from retinaseg.errors import InputError
from retinaseg.experiment import ExperimentResult, run_experiment
from retinaseg.io.dataset_format import write_dataset
from retinaseg.models import get_model_spec
from retinaseg.models.trained import TrainedModel
from retinaseg.training import train as train_module
from retinaseg.training.config import DEFAULTS, load_config
from retinaseg.training.losses import LOSS_NAMES, build_loss, label_edges
from retinaseg.training.precision import PrecisionChoice
from retinaseg.training.train import latest_checkpoint

from conftest import file_contents

REQUIRED = ["name=run", "data.source=retinaseg", "data.root=somewhere"]
EPOCH_COLUMNS = ["epoch", "train_loss", "val_loss", "val_dice", "val_iou", "val_accuracy", "lr", "elapsed_s"]
# What results.csv records of every run with a test split (OCT runs add boundary MAD, binary ones F1 and AUC).
RESULT_COLUMNS = [
    "name", "finished", "data", "model", "model_options", "family", "parameters", "batch_size", "input", "augment",
    "loss", "optimizer", "lr", "seed", "epochs", "train_minutes", "wall_minutes", "device", "precision", "torch_threads",
    "best_val_dice", "test_mean_dice", "test_mean_iou", "test_accuracy",
]  # fmt: skip
# Duke classes 1-7 and fluid (9) are retina; vitreous (0) and choroid (8) are not.
RETINA_RELABEL = {
    "class_names": ["background", "retina"],
    "map": {0: 0, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 0, 9: 1},
}


def tiny_config(dataset_dir: Path, runs_dir: Path, name: str, *overrides: str) -> dict:
    """A U-Net with 3 levels and 4 base channels, trained on whole 272x64 phantom B-scans."""
    return load_config(
        None,
        [
            f"name={name}",
            "data.source=retinaseg",
            f"data.root={dataset_dir}",
            "data.split.train=[phantom_01, phantom_02]",
            "data.split.val=[phantom_03]",
            "data.split.test=[phantom_04]",
            "data.channels=grey",
            "data.batch_size=2",
            "model.options={depth: 3, base_channels: 4}",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            f"output.runs_dir={runs_dir}",
            *overrides,
        ],
    )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --- configs -----------------------------------------------------------------------------------


def test_defaults_fill_everything_not_given() -> None:
    config = load_config(None, REQUIRED)
    assert config["name"] == "run" and config["data"]["root"] == "somewhere"
    assert config["trainer"] == DEFAULTS["trainer"]
    assert config["loss"] == {"name": "dice_ce", "class_weights": None, "boundary_weight": 0.0}


def test_file_values_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("name: from_file\ndata: {source: folder, root: data}\ntrainer: {max_epochs: 10, patience: 3}\n")
    config = load_config(path, ["trainer.max_epochs=5"])
    assert config["name"] == "from_file"
    assert (config["trainer"]["max_epochs"], config["trainer"]["patience"]) == (5, 3)
    assert config["trainer"]["monitor"] == "val_dice"  # sibling keys keep their defaults


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("data.patch_size=[256, 128]", ("data", "patch_size"), [256, 128]),
        ("data.split.train=[a, b]", ("data", "split", "train"), ["a", "b"]),
        ("data.clahe=true", ("data", "clahe"), True),
        ("trainer.max_epochs=7", ("trainer", "max_epochs"), 7),
        ("optimizer.lr=0.002", ("optimizer", "lr"), 0.002),
        ("trainer.max_time_minutes=", ("trainer", "max_time_minutes"), None),
        ("name='007'", ("name",), "007"),
        ("model.options={depth: 3, norm: instance}", ("model", "options"), {"depth": 3, "norm": "instance"}),
    ],
)
def test_override_values_keep_their_yaml_types(override: str, key: tuple[str, ...], expected: object) -> None:
    value = load_config(None, [*REQUIRED, override])
    for part in key:
        value = value[part]
    assert value == expected and type(value) is type(expected)


def test_exponent_without_dot_is_a_float() -> None:
    assert load_config(None, [*REQUIRED, "optimizer.lr=1e-3"])["optimizer"]["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("trainer.max_epoch=3", "trainer.max_epoch"),
        ("modle.name=unet", "modle"),
        ("data.split.training=[a]", "data.split.training"),
    ],
)
def test_unknown_key_is_named(override: str, where: str) -> None:
    with pytest.raises(InputError, match="unknown config key") as error:
        load_config(None, [*REQUIRED, override])
    assert error.value.where == where


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: x\ndata: {source: folder, root: data, bach_size: 4}\n")
    with pytest.raises(InputError) as error:
        load_config(path)
    assert error.value.where == "data.bach_size"


@pytest.mark.parametrize("missing", ["name", "data.source", "data.root"])
def test_missing_required_key_is_named(tmp_path: Path, missing: str) -> None:
    given = {"name": "x", "data": {"source": "folder", "root": "data"}}
    parent, _, leaf = missing.rpartition(".")
    del (given[parent] if parent else given)[leaf]
    path = tmp_path / "incomplete.yaml"
    path.write_text(yaml.safe_dump(given))
    with pytest.raises(InputError, match="missing config key") as error:
        load_config(path)
    assert error.value.where == missing and str(path) in error.value.problem


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\ndata: {source: folder\n")
    with pytest.raises(InputError, match="not valid YAML") as error:
        load_config(path)
    assert error.value.where == str(path)


@pytest.mark.parametrize(("text", "problem"), [("- a\n- b\n", "must be a mapping"), (None, "not found")])
def test_non_mapping_or_missing_file(tmp_path: Path, text: str | None, problem: str) -> None:
    path = tmp_path / "config.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=problem) as error:
        load_config(path)
    assert error.value.where == str(path)


def test_free_form_sections_take_their_components_options() -> None:
    config = load_config(
        None,
        [
            *REQUIRED,
            "data.source=chase_db1",
            "data.options={annotator: 2ndHO}",
            "data.augment={elastic: true, p: 0.3}",
            "model.options={depth: 5, dropout: 0.1}",
        ],
    )
    assert config["data"]["options"] == {"annotator": "2ndHO"}
    assert config["data"]["augment"] == {"elastic": True, "p": 0.3}
    assert config["model"]["options"] == {"depth": 5, "dropout": 0.1}


def test_relabel_section_can_be_set() -> None:
    relabel = load_config(None, [*REQUIRED, "data.relabel={class_names: [a, b], map: {0: 0, 1: 1}}"])["data"]["relabel"]
    assert relabel == {"class_names": ["a", "b"], "map": {0: 0, 1: 1}}


@pytest.mark.parametrize(
    ("override", "where"),
    [("data.options=5", "data.options"), ("trainer=5", "trainer"), ("trainer.max_epochs", "trainer.max_epochs")],
)
def test_malformed_values_are_named(override: str, where: str) -> None:
    with pytest.raises(InputError) as error:
        load_config(None, [*REQUIRED, override])
    assert error.value.where == where


# --- losses ------------------------------------------------------------------------------------


@pytest.mark.parametrize("class_weights", [None, [0.5, 1.0, 2.0]])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_loss_is_a_finite_scalar_with_gradients(name: str, class_weights: list[float] | None) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=generator, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    loss = build_loss(name, class_weights)(logits, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def _confident_logits(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits of +20 for the given class and -20 elsewhere: probabilities within 1e-9 of one-hot."""
    one_hot = torch.nn.functional.one_hot(classes, num_classes).permute(0, 3, 1, 2).float()
    return 40.0 * one_hot - 20.0


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_perfect_prediction_gives_zero_loss(name: str) -> None:
    target = torch.randint(0, 3, (2, 8, 8), generator=torch.Generator().manual_seed(1))
    assert build_loss(name)(_confident_logits(target, 3), target).item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize(("name", "expected"), [("dice", 1.0), ("jaccard", 1.0), ("dice_jaccard", 2.0)])
def test_overlap_losses_for_a_wrong_prediction(name: str, expected: float) -> None:
    # Every class occurs and every pixel is predicted as the next class: no overlap, Dice = IoU = 0.
    target = torch.arange(3).repeat_interleave(16).view(1, 6, 8)
    assert build_loss(name)(_confident_logits((target + 1) % 3, 3), target).item() == pytest.approx(expected, abs=1e-4)


def test_label_edges_are_the_pixels_beside_another_class() -> None:
    target = torch.tensor([[[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]])
    expected = torch.tensor([[[0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 0]]], dtype=torch.bool)
    assert torch.equal(label_edges(target), expected)


def test_boundary_weighted_cross_entropy_by_hand() -> None:
    # One row, classes 0 0 1: the last two pixels are edges (weight 11), the first is not (1).
    target = torch.tensor([[[0, 0, 1]]])
    logits = torch.tensor([[[[0.0, 2.0, 0.0]], [[0.0, 0.0, 0.0]]]])  # CE: ln 2, ln(1 + e^-2), ln 2
    expected = (math.log(2) + 11 * math.log(1 + math.exp(-2)) + 11 * math.log(2)) / 23
    assert build_loss("ce", boundary_weight=10)(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # Class weights weight the terms and the norm as PyTorch's weighted mean does: (1, 11 w0, 11 w1) with w = (1, 3).
    weighted = (math.log(2) + 11 * math.log(1 + math.exp(-2)) + 33 * math.log(2)) / (1 + 11 + 33)
    assert build_loss("ce", [1.0, 3.0], boundary_weight=10)(logits, target).item() == pytest.approx(weighted, rel=1e-6)


def test_boundary_weight_changes_nothing_without_boundaries() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=generator)
    target = torch.full((2, 8, 8), 1)
    for name in ("ce", "dice_ce"):
        torch.testing.assert_close(build_loss(name, boundary_weight=10)(logits, target), build_loss(name)(logits, target))
    with pytest.raises(InputError, match="weights the cross-entropy: use loss ce or dice_ce, not 'dice'"):
        build_loss("dice", boundary_weight=10)


def test_unknown_loss_is_named() -> None:
    with pytest.raises(InputError, match="focal") as error:
        build_loss("focal")
    assert error.value.where == "loss.name"


# --- training runs on phantom B-scans ----------------------------------------------------------


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 phantom subjects with 2 B-scans of 272x64 pixels (1.05 mm deep), as a retinaseg dataset."""
    root = tmp_path_factory.mktemp("phantom") / "dataset"
    return write_dataset(make_phantom_set(n_subjects=4, bscans_per_subject=2, height=272, width=64, seed=0), root)


@pytest.fixture(scope="module")
def smoke_run(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, ExperimentResult]:
    config = tiny_config(
        phantom_dir,
        tmp_path_factory.mktemp("runs"),
        "smoke",
        "trainer.max_epochs=2",
        "evaluation.boundary_classes=[1, 2, 3, 4, 5, 6, 7, 8]",
        "evaluation.fluid_classes=[9]",
        "trainer.snapshot_every=1",
    )
    return config, run_experiment(config)


@pytest.mark.slow
def test_run_folder_holds_every_output(smoke_run: tuple) -> None:
    config, result = smoke_run
    run_dir = Path(config["output"]["runs_dir"]) / "smoke"
    assert result.training.run_dir == run_dir and result.training.best_checkpoint == run_dir / "best.ckpt"
    for name in ("config.yaml", "best.ckpt", "last.ckpt", "metrics.csv", "curves.png", "test/metrics.json"):
        assert (run_dir / name).is_file(), name
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == config

    with (run_dir / "metrics.csv").open(newline="") as handle:
        assert next(csv.reader(handle)) == EPOCH_COLUMNS
    rows = read_rows(run_dir / "metrics.csv")
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for row in rows:
        assert 0.0 <= float(row["val_dice"]) <= 1.0
        assert math.isfinite(float(row["train_loss"])) and math.isfinite(float(row["val_loss"]))

    test_metrics = json.loads((run_dir / "test" / "metrics.json").read_text())
    assert test_metrics["split"] == "test" and test_metrics["subjects"] == ["phantom_04"]
    assert test_metrics["summary"]["mean_dice"] == pytest.approx(result.test_metrics["summary"]["mean_dice"])
    # 2 B-scans of 272x64, every pixel inside the (whole-image) OCT field of view.
    assert sum(map(sum, test_metrics["segmentation"]["confusion_matrix"])) == 2 * 272 * 64
    assert test_metrics["boundaries"]["classes"] == DUKE_CLASS_NAMES[1:9]


@pytest.mark.slow
def test_snapshots_and_test_panels_are_written(smoke_run: tuple) -> None:
    run_dir = smoke_run[1].training.run_dir
    assert sorted(p.name for p in (run_dir / "snapshots").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    # The single validation subject has 2 B-scans, each a row of the snapshot; the test subject 2 panels.
    assert len(list((run_dir / "test" / "panels").glob("*.png"))) == 2


@pytest.mark.slow
def test_saved_config_loads_back_unchanged(smoke_run: tuple) -> None:
    config, result = smoke_run
    assert load_config(result.training.run_dir / "config.yaml") == config


@pytest.mark.slow
def test_results_table_gains_a_row_per_run(smoke_run: tuple, phantom_dir: Path) -> None:
    config, _ = smoke_run
    runs_dir = Path(config["output"]["runs_dir"])
    (first,) = read_rows(runs_dir / "results.csv")
    assert (first["name"], first["model"], first["loss"], first["epochs"]) == ("smoke", "unet", "dice_ce", "2")
    assert json.loads(first["model_options"]) == {"base_channels": 4, "depth": 3}
    assert set(RESULT_COLUMNS) <= set(first) and all(first[column] != "" for column in RESULT_COLUMNS)
    assert (first["family"], first["input"], first["augment"], first["device"]) == ("U-Net", "whole", "on", "cpu")
    assert (first["batch_size"], float(first["lr"])) == ("2", 1e-3)
    assert float(first["wall_minutes"]) >= float(first["train_minutes"]) and int(first["torch_threads"]) >= 1
    for column in ("test_dice_fluid", "test_mean_boundary_mad_um", "test_mean_boundary_mad_px"):  # OCT: fluid and boundaries
        assert column in first, column

    # A binary run adds binary test scores: the table takes the union of the columns.
    binary = tiny_config(phantom_dir, runs_dir, "binary")
    binary["data"]["relabel"] = RETINA_RELABEL  # not through load_config: see test_relabel_section_can_be_set
    result = run_experiment(binary)
    assert (result.training.run_dir / "test" / "pr_curve.png").is_file()
    assert len(list((result.training.run_dir / "test" / "panels").glob("*.png"))) == 2
    assert not (result.training.run_dir / "snapshots").exists()  # snapshot_every is off by default
    assert 0.0 <= result.test_metrics["summary"]["auc"] <= 1.0
    rows = read_rows(runs_dir / "results.csv")
    assert [row["name"] for row in rows] == ["smoke", "binary"]
    assert rows[0]["test_auc"] == "" and float(rows[1]["test_auc"]) == result.test_metrics["summary"]["auc"]
    assert rows[0]["finished"] == first["finished"]


@pytest.mark.slow
def test_resized_run_predicts_and_scores_at_the_label_size(phantom_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(phantom_dir, tmp_path / "runs", "resized", "data.resize=[64, 32]", "data.augment=null")
    result = run_experiment(config)
    model = TrainedModel.from_pretrained(result.training.best_checkpoint)
    assert model.preprocessing.resize == (64, 32)
    assert model.predict(torch.rand(1, 1, 272, 64)).shape == (1, len(DUKE_CLASS_NAMES), 272, 64)
    # The test split (2 B-scans of 272x64) is scored at the labels' own size.
    test_metrics = json.loads((result.training.run_dir / "test" / "metrics.json").read_text())
    assert sum(map(sum, test_metrics["segmentation"]["confusion_matrix"])) == 2 * 272 * 64
    (row,) = read_rows(tmp_path / "runs" / "results.csv")
    assert set(RESULT_COLUMNS) <= set(row) and (row["input"], row["augment"]) == ("resize 64x32", "off")
    assert float(row["test_mean_iou"]) <= float(row["test_mean_dice"])  # IoU never exceeds Dice


@pytest.mark.slow
def test_same_name_again_is_refused_and_leaves_the_run_alone(smoke_run: tuple) -> None:
    config, result = smoke_run
    before = file_contents(result.training.run_dir)
    with pytest.raises(InputError, match="run folder exists") as error:
        run_experiment(config)
    assert error.value.where == str(result.training.run_dir)
    assert file_contents(result.training.run_dir) == before


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(smoke_run: tuple, tmp_path: Path) -> None:
    config, result = smoke_run
    # A copy, so the shared run stays as the other tests expect it.
    run_dir = shutil.copytree(result.training.run_dir, tmp_path / "runs" / "smoke")
    config = copy.deepcopy(config)
    config["trainer"]["max_epochs"] = 3
    config["output"]["runs_dir"] = str(tmp_path / "runs")
    config["data"]["split"]["test"] = []  # skips the test evaluation, checked above
    resumed = run_experiment(config, resume=run_dir / "last.ckpt")
    assert resumed.training.run_dir == run_dir and resumed.test_metrics is None
    assert [int(row["epoch"]) for row in read_rows(run_dir / "metrics.csv")] == [0, 1, 2]
    # Plain data only: the checkpoint loads with the restricted unpickler, as --resume reads it.
    assert torch.load(run_dir / "last.ckpt", weights_only=True)["epoch"] == 2


class _WorseEachEpoch(L.LightningModule):
    """One weight, and a validation score that only gets worse: the best epoch is the first."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return (self.weight - batch[0]).pow(2).mean()

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val_dice", -float(self.current_epoch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # Lightning 2.6 on torch 2.13, as train() silences it
def test_last_checkpoint_is_the_latest_epoch_when_the_score_gets_worse(tmp_path: Path) -> None:
    # Lightning 2.6's save_last would leave last.ckpt at the best epoch (0), and --resume would repeat epochs 1-2.
    loader = DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)
    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val_dice", mode="max", enable_version_counter=False)
    trainer = L.Trainer(
        max_epochs=3, callbacks=[best, latest_checkpoint(tmp_path)], logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(_WorseEachEpoch(), loader, loader)
    assert torch.load(tmp_path / "best.ckpt", weights_only=True)["epoch"] == 0
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.slow
def test_auto_precision_is_chosen_once_and_kept_when_the_run_resumes(
    phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[int, ...]] = []

    def faster_in_bf16(
        network: object, loss: object, batch_shape: tuple[int, ...], *args: object, **kwargs: object
    ) -> PrecisionChoice:
        asked.append(batch_shape)
        return PrecisionChoice("bf16-mixed", seconds_32=0.3, seconds_bf16=0.2)

    monkeypatch.setattr(train_module, "choose_cpu_precision", faster_in_bf16)
    config = tiny_config(phantom_dir, tmp_path / "runs", "auto")
    first = train_module.train(config)
    assert first.precision == "bf16-mixed" and asked == [(2, 1, 272, 64)]  # whole 272x64 B-scans, batch 2
    config["trainer"]["max_epochs"] = 2
    resumed = train_module.train(config, resume=first.run_dir / "last.ckpt")
    assert resumed.precision == "bf16-mixed" and len(asked) == 1  # taken from the checkpoint, not timed again
    assert resumed.precision_note is not None and "as the run resumed" in resumed.precision_note


@pytest.mark.slow
def test_last_checkpoint_includes_epochs_without_validation(phantom_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(
        phantom_dir, tmp_path / "runs", "sparse", "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2",
        "trainer.precision=32-true",
    )  # fmt: skip
    result = train_module.train(config)
    assert torch.load(result.run_dir / "best.ckpt", weights_only=True)["epoch"] == 1  # the one validated epoch
    assert torch.load(result.run_dir / "last.ckpt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_run_without_validation_keeps_its_last_epoch(phantom_dir: Path, tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    config = tiny_config(
        phantom_dir, tmp_path / "runs", "final", "data.split.train=[phantom_01, phantom_02, phantom_03]",
        "data.split.val=[]", "trainer.max_epochs=2", "trainer.precision=32-true",
    )  # fmt: skip
    result = run_experiment(config)
    run_dir = result.training.run_dir
    assert result.training.best_checkpoint == run_dir / "last.ckpt" and not (run_dir / "best.ckpt").exists()
    assert torch.load(run_dir / "last.ckpt", weights_only=True)["epoch"] == 1
    assert [row["val_dice"] for row in read_rows(run_dir / "metrics.csv")] == ["", ""]
    assert result.test_metrics is not None and (run_dir / "curves.png").is_file()
    # Scored on its 6 training B-scans, its only check.
    assert result.train_metrics is not None and result.train_metrics["num_images"] == 6
    assert (run_dir / "train" / "metrics.json").is_file()
    row = read_rows(run_dir.parent / "results.csv")[-1]
    assert row["best_val_dice"] == "" and row["epochs"] == "2"
    assert not [w for w in recwarn if "val_dataloader" in str(w.message)]  # meant, so not shown
    # Resuming it as a validating run would leave a best.ckpt of part of the run.
    with pytest.raises(InputError, match="trained without validation"):
        train_module.train(tiny_config(phantom_dir, tmp_path / "runs", "final"), resume=run_dir / "last.ckpt")


@pytest.mark.slow
def test_validation_split_left_empty_by_the_rest_is_refused(phantom_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(
        phantom_dir, tmp_path / "runs", "empty", "data.split.train=[phantom_01, phantom_02, phantom_03]",
        "data.split.val=rest",
    )  # fmt: skip
    with pytest.raises(InputError, match=r"no samples in the val split .*data.split.val: \[\] trains without") as error:
        train_module.train(config)
    assert error.value.where == "data.split.val" and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("scheduler.name=plateau", "scheduler.name"),
        ("trainer.snapshot_every=1", "trainer.snapshot_every"),
        ("trainer.max_time_minutes=5", "trainer.max_time_minutes"),
    ],
)
def test_what_needs_validation_is_refused_without_it(override: str, where: str) -> None:
    with pytest.raises(InputError, match=r"data.split.val is \[\]") as error:
        load_config(None, [*REQUIRED, "data.split.val=[]", override])
    assert error.value.where == where


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load_and_build(path: Path) -> None:
    config = load_config(path)
    assert config["name"] == path.stem
    spec = get_model_spec(config["model"]["name"])
    spec.resolve(config["model"]["options"])
    build_loss(config["loss"]["name"], config["loss"]["class_weights"])
    relabel = config["data"]["relabel"]
    assert relabel is None or set(relabel) == {"class_names", "map"}


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a step outside a Trainer, on purpose
def test_channels_last_training_steps_and_saves_a_model_that_loads_as_any(tmp_path: Path) -> None:
    from retinaseg.training.module import SegmentationModule

    config = load_config(
        None,
        [
            "name=cl",
            "data.source=retinaseg",
            "data.root=unused",
            "model.options={depth: 3, base_channels: 4}",
            "trainer.channels_last=true",
        ],
    )
    preprocessing = {"channels": "grey", "clahe": False, "normalize": "percentile"}
    module = SegmentationModule(config, list(DUKE_CLASS_NAMES), "multiclass", preprocessing)
    weights = [p for p in module.model.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(2, 1, 32, 24, generator=generator),
        "label": torch.randint(0, 10, (2, 32, 24), generator=generator),
    }
    loss = module.training_step(batch, 0)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and all(p.grad is not None for p in weights)
    saved = TrainedModel.from_pretrained(module.trained_model.save_pretrained(tmp_path / "cl.pt", half=False))
    images = torch.rand(1, 1, 40, 48, generator=generator)
    torch.testing.assert_close(saved.predict(images), module.trained_model.eval().predict(images), rtol=1e-4, atol=1e-5)

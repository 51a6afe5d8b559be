"""Tests for the ``retinaseg`` command line: bad input gives one stderr line and exit code 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from retinaseg.cli import app
from retinaseg.data.phantom import make_phantom_set
from retinaseg.io.dataset_format import read_dataset, write_dataset
from retinaseg.io.images import read_image, read_label_image, write_image_atomic

_SCRIPT = Path(sys.executable).with_name("retinaseg")
# The console script as installed; Lightning's DDP relaunches it with the same arguments.
RETINASEG = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "retinaseg.cli"]


def assert_one_error_line(stderr: str, where: str | Path) -> None:
    (line,) = stderr.splitlines()
    assert line.startswith(f"retinaseg: error: {where}: "), line


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 phantom subjects with 2 B-scans of 272x64 pixels, as a retinaseg dataset."""
    root = tmp_path_factory.mktemp("phantom") / "dataset"
    return write_dataset(make_phantom_set(n_subjects=4, bscans_per_subject=2, height=272, width=64, seed=0), root)


def write_config(path: Path, phantom_dir: Path, runs_dir: Path, **sections: dict) -> Path:
    """A tiny training config (3-level U-Net, 4 base channels, 1 epoch) as a YAML file."""
    config = {
        "name": "tiny",
        "data": {
            "source": "retinaseg",
            "root": str(phantom_dir),
            "split": {"train": ["phantom_01", "phantom_02"], "val": ["phantom_03"], "test": []},
            "channels": "grey",
            "batch_size": 2,
        },
        "model": {"name": "unet", "options": {"depth": 3, "base_channels": 4}},
        "trainer": {"max_epochs": 1},
        "output": {"runs_dir": str(runs_dir)},
    }
    for section, values in sections.items():
        config[section].update(values)
    path.write_text(yaml.safe_dump(config))
    return path


# --- help and listings -------------------------------------------------------------------------


def test_models_lists_the_registered_networks() -> None:
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for name in ("unet", "basic_unet", "attention_unet", "dynunet"):
        assert f" {name} " in result.output


def test_models_pretrained_lists_every_shipped_model_with_its_card_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from retinaseg.io.model_files import PRETRAINED_DIR, model_card_facts, pretrained_models

    monkeypatch.setattr("retinaseg.cli.console", Console(width=1000))  # no wrapping inside the cells
    result = CliRunner().invoke(app, ["models", "--pretrained"])
    assert result.exit_code == 0, result.output
    assert pretrained_models()
    for name in pretrained_models():
        assert (PRETRAINED_DIR / f"{name}.md").is_file()
        facts = model_card_facts(name)
        assert name in result.output and facts["test"]["data"] in result.output


@pytest.mark.parametrize(
    "command", ["train", "evaluate", "predict", "convert", "models", "analyze", "export-model", "ensemble", "demo"]
)
def test_help_shows_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert f"Example: retinaseg {command}" in result.output


# --- bad input: exit code 2, one line on stderr naming the file or key, no output ---------------


def _folder_dataset(root: Path) -> None:
    """root/images/{a,b}.png with root/masks/{a,b}.png: 8x8 grey images, 0/255 masks."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for stem in ("a", "b"):
        write_image_atomic(root / "images" / f"{stem}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
        write_image_atomic(root / "masks" / f"{stem}.png", rng.random((8, 8)) < 0.3)


def _corrupt_image(root: Path) -> tuple[list[str], Path]:
    path = root / "images" / "b.png"
    path.write_bytes(path.read_bytes()[:40])
    return [], path


def _text_as_image(root: Path) -> tuple[list[str], Path]:
    path = root / "images" / "b.png"
    path.write_text("not a picture\n")
    return [], path


def _mask_value_without_class(root: Path) -> tuple[list[str], Path]:
    path = root / "masks" / "b.png"
    write_image_atomic(path, np.arange(64, dtype=np.uint8).reshape(8, 8) % 3)
    return ["--option", "class_names=[background, vessel]"], path


def _mask_size_mismatch(root: Path) -> tuple[list[str], Path]:
    path = root / "masks" / "b.png"
    write_image_atomic(path, np.zeros((8, 9), dtype=np.uint8))
    return [], path


def _missing_mask(root: Path) -> tuple[list[str], Path]:
    (root / "masks" / "b.png").unlink()
    return [], root / "masks"


def _empty_folders(root: Path) -> tuple[list[str], Path]:
    for path in (*root.glob("images/*"), *root.glob("masks/*")):
        path.unlink()
    return [], root / "images"


def _bad_option(root: Path) -> tuple[list[str], Path]:
    return ["--option", "mask_sufix=_mask"], Path("mask_sufix")


SPOILERS = [
    _corrupt_image,
    _text_as_image,
    _mask_value_without_class,
    _mask_size_mismatch,
    _missing_mask,
    _empty_folders,
    _bad_option,
]


@pytest.mark.parametrize("spoil", SPOILERS)
def test_convert_bad_input(
    spoil: Callable[[Path], tuple[list[str], Path]],
    tmp_path: Path,
    run_cli: Callable[..., tuple[int, str, str]],
) -> None:
    root = tmp_path / "source"
    _folder_dataset(root)
    options, where = spoil(root)
    out = tmp_path / "converted"
    code, _, stderr = run_cli("convert", "folder", root, "--out", out, *options)
    assert code == 2
    assert_one_error_line(stderr, where)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]  # no output, no staging folder


def test_convert_bad_input_through_the_console_script(tmp_path: Path) -> None:
    root = tmp_path / "source"
    _folder_dataset(root)
    _, corrupt = _corrupt_image(root)
    done = subprocess.run(
        [*RETINASEG, "convert", "folder", str(root), "--out", str(tmp_path / "converted")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert_one_error_line(done.stderr, corrupt)
    assert not (tmp_path / "converted").exists()


def test_train_missing_config_key(phantom_dir: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> None:
    config = write_config(tmp_path / "config.yaml", phantom_dir, tmp_path / "runs")
    given = yaml.safe_load(config.read_text())
    del given["data"]["root"]
    config.write_text(yaml.safe_dump(given))
    code, _, stderr = run_cli("train", config)
    assert code == 2
    assert_one_error_line(stderr, "data.root")
    assert not (tmp_path / "runs").exists()


def test_train_unknown_model_is_named_and_leaves_no_run_folder(
    phantom_dir: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    config = write_config(tmp_path / "config.yaml", phantom_dir, tmp_path / "runs")
    code, _, stderr = run_cli("train", config, "--set", "model.name=nope")
    assert code == 2
    assert_one_error_line(stderr, "model.name")
    assert "nope" in stderr and "unet" in stderr
    assert not (tmp_path / "runs" / "tiny").exists()


# --- distributed training on the CPU -----------------------------------------------------------


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(phantom_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", phantom_dir, tmp_path / "runs", trainer={"max_epochs": 1})
    done = subprocess.run(
        [
            *RETINASEG,
            "train",
            str(config),
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--accelerator",
            "cpu",
            "--set",
            "trainer.limit_train_batches=2",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny"
    assert (run_dir / "best.ckpt").is_file() and (run_dir / "last.ckpt").is_file()
    with (run_dir / "metrics.csv").open(newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert 0.0 <= float(row["val_dice"]) <= 1.0
    with (tmp_path / "runs" / "results.csv").open(newline="") as handle:
        assert [r["name"] for r in csv.DictReader(handle)] == ["tiny"]  # written once, by rank 0


# --- convert on real data ----------------------------------------------------------------------


@pytest.mark.slow
def test_convert_chase_db1(chase_root: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]) -> None:
    out = tmp_path / "chase"
    code, stdout, stderr = run_cli("convert", "chase_db1", chase_root, "--out", out)
    assert (code, stderr) == (0, "")
    assert "28 samples of 14 subjects" in stdout
    manifest = json.loads((out / "dataset.json").read_text())
    assert len(manifest["samples"]) == 28
    assert len({s["subject"] for s in manifest["samples"]}) == 14

    converted = {s.id: s for s in read_dataset(out).samples}["Image_11R"]
    np.testing.assert_array_equal(converted.image, read_image(chase_root / "Image_11R.jpg"))
    np.testing.assert_array_equal(converted.label, read_label_image(chase_root / "Image_11R_1stHO.png"))
    assert (converted.subject, converted.fov) == ("11", None)


@pytest.mark.parametrize(("flags", "retina_rows"), [((), False), (("--retina-rows",), True)])
def test_analyze_gives_the_network_the_retina_rows_on_request(
    flags: tuple[str, ...], retina_rows: bool, monkeypatch: pytest.MonkeyPatch, run_cli, tmp_path: Path
) -> None:
    seen: dict = {}

    def analyze_file(scan: Path, out: Path, **settings: object) -> tuple[Path, dict]:
        seen.update(settings)
        return out / "report.html", {}

    monkeypatch.setattr("retinaseg.analyze.analyze_file", analyze_file)
    code, _, stderr = run_cli("analyze", tmp_path / "scan.vol", "--out", tmp_path / "out", *flags)
    assert code == 0, stderr
    assert seen["retina_rows"] is retina_rows

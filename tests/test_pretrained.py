"""Shipped models reproduce their model cards: each card's facts (``NAME.json``) hold the scores of
one test subject, which ``evaluate`` must give again on the shared data (skipped where it is absent).

A check may name the data itself (``check.data``: a source, the shared dataset folder and paths
inside it), for models trained on a converted copy of a shared dataset, which the test reads from
the original instead. The shipped Duke models give ordered layer maps (``evaluation.ordered_layers``).
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from retinaseg.analysis.layer_order import ordered_layer_map
from retinaseg.conventions import DUKE_FLUID_CLASS, DUKE_LAYER_CLASSES
from retinaseg.evaluate import evaluate_model
from retinaseg.inference.checkpoint import export_ensemble, export_weights
from retinaseg.io.images import read_image, write_image_atomic
from retinaseg.io.model_files import model_card_facts, pretrained_models
from retinaseg.io.paths import find_dataset
from retinaseg.models.trained import TrainedModel
from retinaseg.predict import predict_files


@pytest.mark.parametrize("name", sorted(pretrained_models()))
def test_shipped_model_reproduces_its_card_on_a_test_subject(name: str, tmp_path: Path) -> None:
    check = model_card_facts(name).get("check")
    assert check, f"{name}.json has no check: the scores of one test subject"
    model = TrainedModel.from_pretrained(pretrained_models()[name])
    config = copy.deepcopy(model.config)
    data = check.get("data")
    dataset = data["dataset"] if data else config["data"]["root"]
    folder = find_dataset(dataset)
    if folder is None:
        pytest.skip(f"dataset {dataset!r} not found: set RETINASEG_DATA or place it in ../shared/data")
    if data:
        config["data"]["source"], config["data"]["root"] = data["source"], str(folder / data["root"])
        paths = {key: str(folder / value) for key, value in data.get("paths", {}).items()}
        config["data"]["options"] = {**data.get("options", {}), **paths}
    config["data"]["split"][check["split"]] = check["subjects"]
    metrics = evaluate_model(name, tmp_path / "eval", config=config, split=check["split"], panels=False, device="cpu")
    for key, value in check["summary"].items():
        assert metrics["summary"][key] == pytest.approx(value, abs=1e-3), key


def test_the_shipped_duke_model_predicts_the_ordered_layer_map(duke_npy_root: Path, tmp_path: Path) -> None:
    """A B-scan where the small model draws choroid into the vitreous: predict gives the ordered map instead."""
    image = tmp_path / "Subject_10_05.png"
    write_image_atomic(image, np.load(duke_npy_root / "DukeData" / "test" / "images" / "Subject_10_05.npy"))
    plain = export_weights("duke_layers_unet_small", tmp_path / "plain.pt", {"ordered_layers": False})
    for model, out in ((plain, tmp_path / "plain"), ("duke_layers_unet_small", tmp_path / "shipped")):
        predict_files(model, [image], out, device="cpu")
    raw, shipped = (read_image(tmp_path / name / "Subject_10_05_classes.png") for name in ("plain", "shipped"))
    expected = ordered_layer_map(raw, DUKE_LAYER_CLASSES, [DUKE_FLUID_CLASS])
    assert (expected != raw).sum() > 100
    np.testing.assert_array_equal(shipped, expected)


def test_the_ensemble_of_the_shipped_duke_models_reproduces_its_benchmark(duke_npy_root: Path, tmp_path: Path) -> None:
    """The README's ensemble of the three shipped Duke models, on test subject 06 (all five: BENCHMARKS.md)."""
    joined = export_ensemble(["duke_layers_unet", "duke_layers_unet_small", "duke_layers_unet_boundary"], tmp_path / "trio.pt")
    config = copy.deepcopy(TrainedModel.from_pretrained(joined).config)
    config["data"]["root"], config["data"]["split"]["test"] = str(duke_npy_root), ["Subject_06"]
    metrics = evaluate_model(joined, tmp_path / "eval", config=config, split="test", panels=False, device="cpu")
    expected = {"mean_dice": 0.8583, "dice_fluid": 0.7006, "mean_boundary_mad_um": 4.8922}
    for key, value in expected.items():
        assert metrics["summary"][key] == pytest.approx(value, abs=1e-3), key

"""Shipped models reproduce their model cards: each card's facts (``NAME.json``) hold the scores of
one test subject, which ``evaluate`` must give again on the shared data (skipped where it is absent).

A check may name the data itself (``check.data``: a source, the shared dataset folder and paths
inside it), for models trained on a converted copy of a shared dataset, which the test reads from
the original instead.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from retinaseg.evaluate import evaluate_model
from retinaseg.io.model_files import model_card_facts, pretrained_models
from retinaseg.io.paths import find_dataset
from retinaseg.models.trained import TrainedModel


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

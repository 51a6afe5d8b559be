"""The binary operating threshold: given, the model's own, or chosen on the validation images only."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from retinaseg.errors import InputError
from retinaseg.evaluate import evaluate_model, parse_threshold
from retinaseg.io.model_files import pretrained_models
from retinaseg.models.trained import TrainedModel


@pytest.mark.parametrize("text", ["0", "1", "1.5", "-0.1", "nan", "best", ""])
def test_thresholds_outside_the_open_unit_interval_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="--threshold"):
        parse_threshold(text)


def test_threshold_values() -> None:
    assert parse_threshold(None) is None and parse_threshold("val") == "val" and parse_threshold("0.35") == 0.35


def test_a_threshold_for_a_multiclass_model_exits_2_before_any_output(
    tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    code, _, err = run_cli("evaluate", "--model", "duke_layers_unet", "--out", tmp_path / "eval", "--threshold", "0.4")
    assert code == 2 and "--threshold" in err and "binary" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "eval").exists()


def test_the_chase_threshold_is_chosen_on_validation_images_only(chase_root: Path, tmp_path: Path) -> None:
    """Child 09 chooses the threshold; the test child 11 is then scored at it, as if at that fixed value."""
    model = TrainedModel.from_pretrained(pretrained_models()["chase_vessels_unet"])
    config = copy.deepcopy(model.config)
    config["data"]["root"] = str(chase_root)
    config["data"]["split"] = {"train": ["01"], "val": ["09"], "test": ["11"]}
    chosen = evaluate_model("chase_vessels_unet", tmp_path / "val", config=config, threshold="val", panels=False, device="cpu")
    value = chosen["threshold"]["value"]
    assert 0 < value < 1 and "validation images (09)" in chosen["threshold"]["chosen"]
    fixed = evaluate_model("chase_vessels_unet", tmp_path / "fixed", config=config, threshold=value, panels=False, device="cpu")
    assert fixed["threshold"] == {"value": value, "chosen": "given"}
    assert fixed["summary"] == chosen["summary"] and fixed["summary"]["f1"] is not None
    # the model's own threshold (0.5) scores differently unless the choice happened to land there
    default = evaluate_model("chase_vessels_unet", tmp_path / "own", config=config, panels=False, device="cpu")
    assert default["threshold"]["value"] == 0.5
    assert (default["summary"]["f1"] == fixed["summary"]["f1"]) == (value == 0.5)
    # the test images have no say: other test images, the same choice
    config["data"]["split"]["test"] = ["12"]
    other = evaluate_model("chase_vessels_unet", tmp_path / "other", config=config, threshold="val", panels=False, device="cpu")
    assert other["threshold"]["value"] == value
    with pytest.raises(InputError, match="val chooses the threshold on the validation images"):
        evaluate_model("chase_vessels_unet", tmp_path / "val_on_val", config=config, split="val", threshold="val")
    assert not (tmp_path / "val_on_val").exists()

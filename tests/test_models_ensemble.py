"""Ensembles (retinaseg.models.ensemble, retinaseg ensemble): the mean of members' logits, saved and loaded as one model."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from test_models import small_trained_model

from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError
from retinaseg.inference.checkpoint import load_model
from retinaseg.models import build_model, model_size_multiple
from retinaseg.models.ensemble import ensemble_of
from retinaseg.models.registry import check_model_options, model_min_batch_size
from retinaseg.models.trained import TrainedModel

UNET = {"name": "unet", "options": {"depth": 3, "base_channels": 4}}
DEEPER = {"name": "unet", "options": {"depth": 4, "base_channels": 4}}


def test_an_ensemble_of_models_predicts_the_mean_of_their_logits(tmp_path: Path) -> None:
    unet, sa_unet = small_trained_model("unet"), small_trained_model("sa_unet")
    joined = ensemble_of([unet, sa_unet], ["unet.pt", "sa_unet.pt"])
    assert joined.size_multiple == math.lcm(unet.size_multiple, sa_unet.size_multiple)
    image = torch.rand(1, 1, 2 * joined.size_multiple, 3 * joined.size_multiple, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(joined.predict(image), (unet.predict(image) + sa_unet.predict(image)) / 2)
    loaded = TrainedModel.from_pretrained(joined.save_pretrained(tmp_path / "pair.pt", half=False))
    assert loaded.config["model"]["name"] == "ensemble" and loaded.evaluation == unet.evaluation
    torch.testing.assert_close(loaded.predict(image), joined.predict(image), rtol=0, atol=0)


def test_members_must_segment_the_same_classes_from_the_same_input() -> None:
    unet = small_trained_model("unet")
    for other, problem in (
        (small_trained_model("unet", 4), "different classes"),
        (
            TrainedModel(unet.network, unet.config, unet.class_names, "multiclass", Preprocessing(clahe=True)),
            "different preprocessing",
        ),
    ):
        with pytest.raises(InputError, match=problem) as error:
            ensemble_of([unet, other], ["a.pt", "b.pt"])
        assert error.value.where == "b.pt"
    with pytest.raises(InputError, match="2 to 8 member networks, got 1"):
        ensemble_of([unet], ["a.pt"])
    pair = ensemble_of([unet, unet], ["a.pt", "a.pt"])
    with pytest.raises(InputError, match="is an ensemble already") as error:
        ensemble_of([unet, pair], ["a.pt", "pair.pt"])
    assert error.value.where == "pair.pt"


@pytest.mark.parametrize(
    ("members", "where", "problem"),
    [
        ([UNET], "model.options.members", "2 to 8 member networks, got 1"),
        ([UNET] * 9, "model.options.members", "got 9"),
        ([UNET, "unet"], "model.options.members", "must be a non-empty list of dict values"),
        ([UNET, {**UNET, "weights": 1}], "model.options.members[1]", "must be a mapping of name and options"),
        ([UNET, {"name": "unett"}], "model.options.members[1].name", "did you mean 'unet'"),
        ([UNET, {"name": "unet", "options": {"depthh": 3}}], "model.options.members[1].options.depthh", "did you mean 'depth'"),
        ([UNET, {"name": "ensemble", "options": {}}], "model.options.members[1].name", "cannot hold another ensemble"),
        ([UNET, {"name": ["unet"]}], "model.options.members[1].name", "must be the name of a network"),
        ([UNET, {"name": "unet", "options": [1]}], "model.options.members[1].options", "must be a mapping"),
    ],
)
def test_a_bad_member_is_named(members: list, where: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as error:
        build_model("ensemble", 1, 3, {"members": members})
    assert error.value.where == where
    with pytest.raises(InputError, match=problem) as error:  # as a training config checks it
        check_model_options("ensemble", {"members": members})
    assert error.value.where == where


def test_an_ensemble_trains_on_batches_its_members_can_learn_from() -> None:
    deeplab = {"name": "deeplabv3_resnet50", "options": {"width": 4}}
    assert model_min_batch_size("ensemble", {"members": [UNET, DEEPER]}) == 1
    assert model_min_batch_size("ensemble", {"members": [UNET, deeplab]}) == 2


def test_a_config_builds_an_ensemble_that_trains_as_one_network() -> None:
    options = {"members": [UNET, DEEPER]}
    network = build_model("ensemble", 1, 3, options)
    assert model_size_multiple("ensemble", options) == 8
    x = torch.rand(2, 1, 16, 24, requires_grad=True)
    network(x).mean().backward()
    assert all(p.grad is not None for p in network.parameters())


def test_loading_an_ensemble_never_reads_its_members_initial_weights(tmp_path: Path) -> None:
    """A member's backbone_weights only mattered when training started: a crafted path is not opened."""
    model = small_trained_model("unet")
    config = {**model.config, "model": {"name": "ensemble", "options": {"members": [UNET, UNET]}}}
    joined = TrainedModel(
        build_model("ensemble", 1, 3, config["model"]["options"]), config, model.class_names, model.task, model.preprocessing
    )
    path = joined.save_pretrained(tmp_path / "pair.pt")
    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload["metadata"])
    resnet = {"name": "fcn_resnet50", "options": {"width": 4, "backbone_weights": str(tmp_path / "missing.pth")}}
    metadata["config"]["model"]["options"]["members"][1] = resnet
    payload["state_dict"] = {
        **{k: v for k, v in payload["state_dict"].items() if k.startswith("members.0.")},
        **{f"members.1.{k}": v for k, v in build_model("fcn_resnet50", 1, 3, {"width": 4}).state_dict().items()},
    }
    torch.save({**payload, "metadata": json.dumps(metadata)}, tmp_path / "edited.pt")
    loaded = load_model(tmp_path / "edited.pt", "cpu")
    assert loaded.predict(torch.rand(1, 1, 16, 16)).shape == (1, 3, 16, 16)


def _crafted_checkpoint(path: Path, model_config: dict) -> Path:
    """A training checkpoint (metadata as pickled hyper_parameters) of a multiclass model with ``model_config``."""
    config = copy.deepcopy(small_trained_model("unet").config)
    config["model"] = model_config
    metadata = {"class_names": ["a", "b", "c"], "task": "multiclass", "preprocessing": {}, "config": config}
    torch.save({"hyper_parameters": metadata, "state_dict": {}}, path)
    return path


def test_a_crafted_deep_ensemble_is_refused_at_once(tmp_path: Path) -> None:
    """Members shared by reference pickle small but would unfold into 2**40 configs: refused before any walk."""
    node: dict = {"name": "unet", "options": {}}
    for _ in range(40):
        node = {"name": "ensemble", "options": {"members": [node, node]}}
    path = _crafted_checkpoint(tmp_path / "deep.ckpt", node)
    assert path.stat().st_size < 20_000
    started = time.perf_counter()
    with pytest.raises(InputError, match="cannot hold another ensemble") as error:
        load_model(path, "cpu")
    assert error.value.where == str(path) and time.perf_counter() - started < 5


def test_members_without_options_load_with_their_defaults(tmp_path: Path) -> None:
    model = build_model("ensemble", 1, 3, {"members": [UNET, {"name": "unet", "options": None}]})
    path = _crafted_checkpoint(
        tmp_path / "pair.ckpt", {"name": "ensemble", "options": {"members": [UNET, {"name": "unet", "options": None}]}}
    )
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = {f"model.{key}": value for key, value in model.state_dict().items()}
    torch.save(payload, path)
    assert load_model(path, "cpu").predict(torch.rand(1, 1, 8, 8)).shape == (1, 3, 8, 8)


def test_a_binary_ensemble_starts_at_the_untuned_threshold() -> None:
    unet = small_trained_model("unet", 2)
    config = {**unet.config, "evaluation": {**unet.config["evaluation"], "threshold": 0.9}}
    binary = TrainedModel(unet.network, config, unet.class_names, "binary", unet.preprocessing)
    other = small_trained_model("sa_unet", 2)
    other = TrainedModel(other.network, other.config, other.class_names, "binary", other.preprocessing)
    assert ensemble_of([binary, other], ["a.pt", "b.pt"]).evaluation.threshold == 0.5


def test_the_ensemble_command_writes_one_model_file(tmp_path: Path, run_cli: Callable) -> None:
    a, b = small_trained_model("unet"), small_trained_model("sa_unet")
    files = [a.save_pretrained(tmp_path / "a.pt"), b.save_pretrained(tmp_path / "b.pt")]
    out = tmp_path / "pair.pt"
    code, stdout, _ = run_cli("ensemble", *files, "--out", out)
    assert code == 0 and "2 networks" in stdout
    joined, members = load_model(out, "cpu"), [load_model(f, "cpu") for f in files]
    assert [m["name"] for m in joined.config["model"]["options"]["members"]] == ["unet", "sa_unet"]
    image = torch.rand(1, 1, 2 * joined.size_multiple, 2 * joined.size_multiple)
    torch.testing.assert_close(joined.predict(image), (members[0].predict(image) + members[1].predict(image)) / 2)
    flipped = tmp_path / "flipped.pt"
    assert run_cli("ensemble", *files, "--out", flipped, "--set", "evaluation.flips=[horizontal]")[0] == 0
    assert load_model(flipped, "cpu").evaluation.flips == ("horizontal",)
    code, _, stderr = run_cli("ensemble", *files, "--out", out)
    assert code == 2 and "exists; retinaseg never replaces a file" in stderr
    refused = tmp_path / "refused.pt"
    for args, problem in (
        ([files[0]], "models: an ensemble needs 2 to 8 member networks, got 1"),
        ([files[0], out], f"{out}: is an ensemble already"),
        ([files[0], "chase_vessels_unet"], "chase_vessels_unet: cannot join"),
        ([files[0], tmp_path / "missing.pt"], "missing.pt: no such file"),
        ([files[0], files[0]], f"{files[0]}: given twice"),
    ):
        code, _, stderr = run_cli("ensemble", *args, "--out", refused)
        assert code == 2 and len(stderr.strip().splitlines()) == 1 and problem in stderr, stderr
    assert not refused.exists()

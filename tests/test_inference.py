"""Evaluating and applying a model trained on phantom B-scans: retinaseg.evaluate, retinaseg.predict, model files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from retinaseg.analysis.layer_order import ordered_layer_map
from retinaseg.conventions import DUKE_CLASS_NAMES, DUKE_FLUID_CLASS, DUKE_LAYER_CLASSES
from retinaseg.data.phantom import make_phantom_set
from retinaseg.errors import InputError
from retinaseg.evaluate import evaluate_model
from retinaseg.inference.checkpoint import export_weights, load_model
from retinaseg.io.dataset_format import write_dataset
from retinaseg.io.images import read_image, write_image_atomic
from retinaseg.io.output import MARKER_NAME
from retinaseg.models.trained import WEIGHTS_FORMAT
from retinaseg.predict import predict_files
from retinaseg.training.config import load_config
from retinaseg.training.train import train

from conftest import file_contents

SPLIT = {"train": ["phantom_01", "phantom_02"], "val": ["phantom_03"], "test": ["phantom_04"]}
BOUNDARY_CLASSES = list(DUKE_LAYER_CLASSES)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One epoch of a 3-level U-Net on 4 phantom subjects (2 B-scans of 272x64 each)."""
    dataset_dir = write_dataset(
        make_phantom_set(n_subjects=4, bscans_per_subject=2, height=272, width=64, seed=0),
        tmp_path_factory.mktemp("phantom") / "dataset",
    )
    config = load_config(
        None,
        [
            "name=tiny",
            "data.source=retinaseg",
            f"data.root={dataset_dir}",
            f"data.split.train={SPLIT['train']}",
            f"data.split.val={SPLIT['val']}",
            "data.split.test=[]",  # no test evaluation during training: the tests below do it
            "data.channels=grey",
            "data.batch_size=2",
            "model.options={depth: 3, base_channels: 4}",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            f"evaluation.boundary_classes={BOUNDARY_CLASSES}",
            f"evaluation.fluid_classes=[{DUKE_FLUID_CLASS}]",
            f"output.runs_dir={tmp_path_factory.mktemp('runs')}",
        ],
    )
    return {"dataset": dataset_dir, "config": config, "checkpoint": train(config).best_checkpoint}


# --- evaluate ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_with_the_checkpoints_own_config(trained: dict, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    metrics = evaluate_model(trained["checkpoint"], out, split="val")
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME, "confusion_matrix.png", "metrics.json", "panels"]
    panels = sorted((out / "panels").iterdir())  # one per image: image / reference / prediction, no TP/FP map
    assert len(panels) == 2 and all(p.suffix == ".png" and p.stat().st_size > 0 for p in panels)
    assert json.loads((out / "metrics.json").read_text())["summary"] == metrics["summary"]
    assert (metrics["split"], metrics["subjects"], metrics["num_images"]) == ("val", SPLIT["val"], 2)

    segmentation = metrics["segmentation"]
    assert list(segmentation["classes"]) == DUKE_CLASS_NAMES
    for scores in segmentation["classes"].values():
        assert {"dice", "iou", "precision", "recall", "hd95"} <= set(scores)
    # Dice of each class from the confusion matrix (rows: truth): 2 TP / (truth + predicted).
    confusion = np.array(segmentation["confusion_matrix"])
    assert confusion.sum() == 2 * 272 * 64
    with np.errstate(invalid="ignore"):
        dice = 2 * np.diag(confusion) / (confusion.sum(axis=0) + confusion.sum(axis=1))
    reported = np.array([np.nan if s["dice"] is None else s["dice"] for s in segmentation["classes"].values()])
    np.testing.assert_allclose(reported, dice)
    assert metrics["summary"]["mean_dice"] == pytest.approx(np.nanmean(dice[1:]))

    boundaries = metrics["boundaries"]
    assert boundaries["classes"] == [DUKE_CLASS_NAMES[c] for c in BOUNDARY_CLASSES]
    assert len(boundaries["mad_px"]) == len(boundaries["mad_um"]) == len(BOUNDARY_CLASSES)
    assert "mean_boundary_mad_um" in metrics["summary"] and "mean_boundary_mad_px" in metrics["summary"]


@pytest.mark.slow
def test_evaluate_cli_with_another_config_and_split(
    trained: dict, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    # A config as a user writes it: the same data, with a test split and no boundary evaluation.
    config = tmp_path / "config.yaml"
    data = {"source": "retinaseg", "root": str(trained["dataset"]), "split": SPLIT, "channels": "grey"}
    config.write_text(yaml.safe_dump({"name": "tiny", "data": data}))
    out = tmp_path / "eval"
    args = ["--checkpoint", trained["checkpoint"], "--config", config, "--split", "test", "--out", out, "--no-panels"]
    code, stdout, stderr = run_cli("evaluate", *args)
    assert (code, stderr) == (0, "")
    assert "mean_dice" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["split"], metrics["subjects"]) == ("test", SPLIT["test"])
    assert "boundaries" not in metrics and "mean_boundary_mad_px" not in metrics["summary"]
    assert not (out / "panels").exists()


def test_evaluate_refuses_an_existing_folder(trained: dict, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    out.mkdir()
    (out / "notes.txt").write_text("earlier results")
    with pytest.raises(InputError, match="exists") as error:
        evaluate_model(trained["checkpoint"], out, split="val")
    assert error.value.where == str(out)
    assert file_contents(out) == {"notes.txt": b"earlier results"}


def test_evaluate_unknown_split_is_named(trained: dict, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="validation") as error:
        evaluate_model(trained["checkpoint"], tmp_path / "eval", split="validation")
    assert error.value.where == "--split"
    assert not (tmp_path / "eval").exists()


def _truncated_checkpoint(trained: dict) -> bytes:
    data = Path(trained["checkpoint"]).read_bytes()
    return data[: len(data) // 2]


def _other_torch_file(trained: dict) -> bytes:
    path = Path(trained["checkpoint"]).with_name("weights.pt")
    torch.save({"weights": torch.zeros(3)}, path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "make_bytes",
    [
        pytest.param(lambda trained: b"", id="empty"),
        pytest.param(_truncated_checkpoint, id="truncated"),
        pytest.param(_other_torch_file, id="not-lightning"),
        pytest.param(
            lambda trained: b"model weights, honest\n" * 20,
            id="text",
        ),
    ],
)
def test_garbage_checkpoint_is_named(trained: dict, tmp_path: Path, make_bytes: Callable[[dict], bytes]) -> None:
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(make_bytes(trained))
    with pytest.raises(InputError, match="checkpoint") as error:
        evaluate_model(checkpoint, tmp_path / "eval", config=trained["config"], split="val")
    assert error.value.where == str(checkpoint)
    assert not (tmp_path / "eval").exists()


# --- predict -----------------------------------------------------------------------------------


@pytest.fixture
def images(trained: dict, tmp_path: Path) -> list[Path]:
    """A phantom B-scan (272x64), the same padded to 273x67, a 101x75 RGB image and a 16-bit TIFF."""
    bscan = read_image(trained["dataset"] / "images" / "phantom_04_00.png")
    folder = tmp_path / "inputs"
    folder.mkdir()
    paths = [folder / "bscan.png", folder / "odd.png", folder / "colour.png", folder / "deep.tif"]
    write_image_atomic(paths[0], bscan)
    write_image_atomic(paths[1], np.pad(bscan, ((0, 1), (0, 3)), mode="edge"))
    write_image_atomic(paths[2], np.random.default_rng(0).integers(0, 256, (101, 75, 3), dtype=np.uint8))
    tifffile.imwrite(paths[3], bscan[:150, :45].astype(np.uint16) * 257)
    return paths


@pytest.mark.slow
def test_predict_writes_every_output_at_input_size(trained: dict, images: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "predictions"
    written = predict_files(trained["checkpoint"], images, out, probabilities=True)
    stems = [path.stem for path in images]
    assert written == [out / f"{stem}_classes.png" for stem in stems]
    kinds = ("classes.png", "colour.png", "overlay.png", "probabilities.npy")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MARKER_NAME, "legend.png", "palette.json", *(f"{stem}_{kind}" for stem in stems for kind in kinds)]
    )
    palette_json = json.loads((out / "palette.json").read_text())
    assert list(palette_json) == DUKE_CLASS_NAMES
    palette = np.array(list(palette_json.values()), dtype=np.uint8)
    assert palette.shape == (10, 3)

    for path in images:
        height, width = read_image(path).shape[:2]
        classes = read_image(out / f"{path.stem}_classes.png")
        assert classes.shape == (height, width) and classes.dtype == np.uint8
        assert classes.max() < len(DUKE_CLASS_NAMES)
        np.testing.assert_array_equal(read_image(out / f"{path.stem}_colour.png"), palette[classes])
        assert read_image(out / f"{path.stem}_overlay.png").shape == (height, width, 3)
        probabilities = np.load(out / f"{path.stem}_probabilities.npy")
        assert probabilities.shape == (10, height, width) and probabilities.dtype == np.float16
        probabilities = probabilities.astype(np.float32)
        np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, atol=1e-2)
        # The class map is the most probable class, up to float16 rounding (< 1e-3 below 1).
        chosen = np.take_along_axis(probabilities, classes[None].astype(np.intp), axis=0)[0]
        assert (chosen >= probabilities.max(axis=0) - 1e-3).all()


@pytest.mark.slow
def test_sliding_window_prediction_keeps_the_input_size(trained: dict, images: list[Path], tmp_path: Path) -> None:
    odd = images[1]
    (written,) = predict_files(trained["checkpoint"], [odd], tmp_path / "windows", roi_size=(136, 40))
    classes = read_image(written)
    assert classes.shape == (273, 67) and classes.max() < len(DUKE_CLASS_NAMES)


def test_predict_refuses_an_existing_folder(trained: dict, images: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "predictions"
    out.mkdir()
    (out / "bscan_classes.png").write_bytes(b"earlier result")
    with pytest.raises(InputError, match="exists") as error:
        predict_files(trained["checkpoint"], images[:1], out)
    assert error.value.where == str(out)
    assert file_contents(out) == {"bscan_classes.png": b"earlier result"}


def test_predict_input_errors_are_named(trained: dict, images: list[Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    twin = tmp_path / "twin"
    twin.mkdir()
    write_image_atomic(twin / "bscan.png", np.zeros((8, 8), np.uint8))
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would block forever
    for inputs, where in [
        ([empty], empty),
        ([tmp_path / "missing.png"], tmp_path / "missing.png"),
        ([fifo], fifo),
        ([images[0], twin], "bscan"),  # two inputs named bscan would write the same outputs
    ]:
        with pytest.raises(InputError) as error:
            predict_files(trained["checkpoint"], inputs, tmp_path / "out")
        assert error.value.where == str(where)
    assert not (tmp_path / "out").exists()


def test_corrupt_input_exits_2_and_writes_nothing(
    trained: dict, images: list[Path], tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    corrupt = images[0].with_name("truncated.png")
    corrupt.write_bytes(images[0].read_bytes()[:200])
    out = tmp_path / "predictions"
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ["--checkpoint", trained["checkpoint"], *images, corrupt, "--out", out]
    code, _, stderr = run_cli("predict", *args)
    assert code == 2
    (line,) = stderr.splitlines()
    assert line.startswith(f"retinaseg: error: {corrupt}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no staging folder left


# --- weight files and shipped models ---------------------------------------------------------


def test_export_model_stores_how_the_model_is_applied(trained: dict, tmp_path: Path, run_cli: Callable) -> None:
    weights = tmp_path / "operating.pt"
    settings = ["--set", "evaluation.overlap=0.5", "--set", "evaluation.flips=[horizontal]"]
    assert run_cli("export-model", trained["checkpoint"], weights, *settings)[0] == 0
    exported, original = load_model(weights, "cpu"), load_model(trained["checkpoint"], "cpu")
    assert (exported.evaluation.overlap, exported.evaluation.flips) == (0.5, ("horizontal",))
    assert {**exported.config, "evaluation": original.config["evaluation"]} == original.config  # nothing else changed
    again = tmp_path / "again.pt"  # a weight file takes new settings too
    assert run_cli("export-model", weights, again, "--set", "evaluation.flips=[]")[0] == 0
    assert load_model(again, "cpu").evaluation.flips == ()
    shipped = tmp_path / "shipped.pt"  # and a shipped model, by name
    assert run_cli("export-model", "duke_layers_unet_small", shipped, "--set", "evaluation.flips=[horizontal]")[0] == 0
    assert load_model(shipped, "cpu").evaluation.flips == ("horizontal",)
    refused = tmp_path / "refused.pt"
    code, _, stderr = run_cli("export-model", trained["checkpoint"], refused, "--set", "trainer.max_epochs=3")
    assert code == 2 and stderr.startswith("retinaseg: error: trainer.max_epochs: only how the model is applied can be set")
    code, _, stderr = run_cli("export-model", trained["checkpoint"], refused, "--set", "evaluation.threshold=0.3")
    assert code == 2 and "evaluation.threshold: applies to binary models only" in stderr  # a multiclass model
    code, _, stderr = run_cli("export-model", weights, weights)
    assert code == 2 and "exists; retinaseg never replaces a file" in stderr
    assert not refused.exists()


def test_predict_with_ordered_layers_writes_the_maps_of_the_ordered_surfaces(
    trained: dict, images: list[Path], tmp_path: Path, run_cli: Callable
) -> None:
    plain, ordered = tmp_path / "plain.pt", tmp_path / "ordered.pt"  # both with the same half-precision weights
    assert run_cli("export-model", trained["checkpoint"], plain)[0] == 0
    assert run_cli("export-model", trained["checkpoint"], ordered, "--set", "evaluation.ordered_layers=true")[0] == 0
    assert load_model(ordered, "cpu").evaluation.ordered_layers and not load_model(plain, "cpu").evaluation.ordered_layers
    for model, out in ((plain, tmp_path / "raw"), (ordered, tmp_path / "ordered")):
        predict_files(model, [images[0]], out, device="cpu")
    raw, rebuilt = (read_image(tmp_path / name / "bscan_classes.png") for name in ("raw", "ordered"))
    expected = ordered_layer_map(raw, BOUNDARY_CLASSES, [DUKE_FLUID_CLASS])
    np.testing.assert_array_equal(rebuilt, expected)


def test_ordered_layers_are_refused_for_a_model_without_layers(tmp_path: Path, run_cli: Callable) -> None:
    out = tmp_path / "vessels.pt"
    code, _, stderr = run_cli("export-model", "chase_vessels_unet", out, "--set", "evaluation.ordered_layers=true")
    assert code == 2 and "evaluation.ordered_layers: needs two or more layer classes" in stderr
    assert not out.exists()


def test_a_model_file_with_unknown_flips_is_refused_on_loading(trained: dict, tmp_path: Path) -> None:
    payload = torch.load(export_weights(trained["checkpoint"], tmp_path / "good.pt"), weights_only=True)
    metadata = json.loads(payload["metadata"])
    metadata["config"]["evaluation"]["flips"] = ["diagonal"]  # written by hand: retinaseg writes no such file
    torch.save({**payload, "metadata": json.dumps(metadata)}, tmp_path / "edited.pt")
    with pytest.raises(InputError, match="evaluation.flips must list names of horizontal, vertical"):
        load_model(tmp_path / "edited.pt", "cpu")


def test_evaluate_applies_the_flips_of_the_config_it_is_given(trained: dict, tmp_path: Path) -> None:
    own = evaluate_model(trained["checkpoint"], tmp_path / "own", split="val", panels=False)
    config = {**trained["config"], "evaluation": {**trained["config"]["evaluation"], "flips": ["horizontal"]}}
    flipped = evaluate_model(trained["checkpoint"], tmp_path / "flipped", config=config, split="val", panels=False)
    assert flipped["segmentation"] != own["segmentation"]  # a one-epoch network is not mirror-symmetric


def test_exported_weights_give_the_checkpoints_predictions(trained: dict, tmp_path: Path) -> None:
    weights = export_weights(trained["checkpoint"], tmp_path / "tiny.pt")
    assert weights.stat().st_size < Path(trained["checkpoint"]).stat().st_size
    assert torch.load(weights, weights_only=True)["format"] == WEIGHTS_FORMAT
    original, exported = load_model(trained["checkpoint"], "cpu"), load_model(weights, "cpu")
    assert exported.class_names == original.class_names and exported.preprocessing == original.preprocessing
    assert exported.config == original.config and exported.evaluation == original.evaluation
    image = torch.rand(1, 1, 272, 64)
    torch.testing.assert_close(exported.predict(image), original.predict(image), atol=0.05, rtol=0.01)  # half-precision weights
    with pytest.raises(InputError, match="exists"):
        export_weights(trained["checkpoint"], weights)


def test_weight_files_of_the_first_format_still_load(trained: dict, tmp_path: Path) -> None:
    """Format 1 (retinaseg 0.1 export-model): the checkpoint's hyper_parameters and half-precision state_dict."""
    checkpoint = torch.load(trained["checkpoint"], weights_only=True)
    state_dict = {key: value.half() if value.is_floating_point() else value for key, value in checkpoint["state_dict"].items()}
    old = tmp_path / "old.pt"
    torch.save(
        {"format": "retinaseg-weights-1", "hyper_parameters": checkpoint["hyper_parameters"], "state_dict": state_dict}, old
    )
    image = torch.rand(1, 1, 272, 64)
    current = load_model(export_weights(trained["checkpoint"], tmp_path / "current.pt"), "cpu")
    assert torch.equal(load_model(old, "cpu").predict(image), current.predict(image))


def test_shipped_model_loads_by_name_and_unknown_names_are_listed(tmp_path: Path) -> None:
    from retinaseg.io.model_files import pretrained_models

    assert "duke_layers_unet" in pretrained_models()
    assert (pretrained_models()["duke_layers_unet"].with_suffix(".md")).is_file()  # its model card
    assert torch.load(pretrained_models()["duke_layers_unet"], weights_only=True)["format"] == WEIGHTS_FORMAT
    model = load_model("duke_layers_unet", "cpu")
    assert model.class_names[1] == "RNFL" and not model.network.training
    assert (model.size_multiple, model.evaluation.boundary_classes) == (16, tuple(range(1, 9)))
    with pytest.raises(InputError, match=r"not a shipped model \(shipped: .*duke_layers_unet"):
        load_model("no_such_model")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="not a retinaseg weight file"):
        load_model(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(InputError, match="not a retinaseg weight file .no retinaseg weight-file header"):
        load_model(foreign)


def test_predict_with_a_fundus_model_calls_nothing_outside_the_field_of_view(tmp_path: Path) -> None:
    from retinaseg.data.preprocess import Preprocessing
    from retinaseg.models.trained import TrainedModel

    config = load_config(
        None, ["name=f", "data.source=retinaseg", "data.root=unused", "model.options={depth: 2, base_channels: 4}"]
    )
    fundus = TrainedModel.from_config(config, ["background", "vessel"], "binary", Preprocessing(channels="green"))
    with torch.no_grad():  # a foreground bias: without the field of view every pixel would be a vessel
        final = [module for module in fundus.network.modules() if isinstance(module, torch.nn.Conv2d)][-1]
        final.bias.copy_(torch.tensor([-50.0, 50.0]))
    weights = fundus.eval().save_pretrained(tmp_path / "fundus.pt")
    rows, cols = np.mgrid[:64, :80]
    inside = (rows - 32) ** 2 + (cols - 40) ** 2 < 28**2
    photo = np.zeros((64, 80, 3), dtype=np.uint8)
    photo[inside] = (180, 90, 40)  # an orange disc on black: the camera's field
    write_image_atomic(tmp_path / "photo.png", photo)

    out = tmp_path / "out"
    predict_files(weights, [tmp_path / "photo.png"], out, probabilities=True)
    fov = read_image(out / "photo_fov.png") > 0
    classes = read_image(out / "photo_classes.png")
    assert (fov <= inside).all() and fov.sum() > 0.8 * inside.sum()  # the disc less its eroded rim
    assert (classes[~fov] == 0).all() and (classes[fov] == 1).all()
    assert (read_image(out / "photo_probability.png")[~fov] == 0).all()


@pytest.mark.parametrize("flips", [["horizontal"], ["horizontal", "vertical"]])
def test_test_time_flips_make_predictions_mirror_symmetric(flips: list[str]) -> None:
    from retinaseg.data.preprocess import Preprocessing
    from retinaseg.models.trained import FLIPS, TrainedModel

    def model(flip_names: list[str]) -> TrainedModel:
        torch.manual_seed(0)
        options = ["name=t", "data.source=retinaseg", "data.root=unused", "model.options={depth: 2, base_channels: 4}"]
        config = load_config(None, [*options, f"evaluation.flips={flip_names}"])
        return TrainedModel.from_config(config, ["background", "a", "b"], "multiclass", Preprocessing()).eval()

    image = torch.rand(2, 1, 24, 40)
    plain, flipped = model([]), model(flips)
    assert flipped.evaluation.flips == tuple(flips)
    for name in flips:
        axis = FLIPS[name]
        mirrored = flipped.predict(image.flip(axis)).flip(axis)
        torch.testing.assert_close(mirrored, flipped.predict(image), atol=1e-5, rtol=1e-5)
        # Random weights are not symmetric: without the flips the mirrored image gives other logits.
        assert not torch.allclose(plain.predict(image.flip(axis)).flip(axis), plain.predict(image), atol=1e-3)


@pytest.mark.parametrize(("threshold", "expected"), [(0.6, 1), (0.8, 0)])
def test_predict_uses_a_binary_models_own_threshold(tmp_path: Path, threshold: float, expected: int) -> None:
    from retinaseg.data.preprocess import Preprocessing
    from retinaseg.models.trained import TrainedModel

    config = load_config(
        None,
        [
            "name=b",
            "data.source=retinaseg",
            "data.root=unused",
            "model.options={depth: 2, base_channels: 4}",
            f"evaluation.threshold={threshold}",
        ],
    )
    model = TrainedModel.from_config(config, ["background", "vessel"], "binary", Preprocessing(channels="grey"))
    with torch.no_grad():  # every pixel's vessel probability about sigmoid(1) = 0.73
        for module in model.network.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
        final = [module for module in model.network.modules() if isinstance(module, torch.nn.Conv2d)][-1]
        final.bias.copy_(torch.tensor([-0.5, 0.5]))
    weights = model.eval().save_pretrained(tmp_path / "binary.pt")
    write_image_atomic(tmp_path / "image.png", np.full((32, 40), 100, dtype=np.uint8))
    predict_files(weights, [tmp_path / "image.png"], tmp_path / "out")
    assert (read_image(tmp_path / "out" / "image_classes.png") == expected).all()

"""ONNX export and ONNX Runtime inference: same logits as PyTorch, metadata kept, bad files refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from retinaseg.analyze import analyze_volume
from retinaseg.conventions import DEFAULT_MODEL, DUKE_CLASS_NAMES
from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError
from retinaseg.evaluate import evaluate_model
from retinaseg.inference.checkpoint import load_model
from retinaseg.inference.choose import allowed_options, model_for_inference
from retinaseg.inference.onnx_runtime import METADATA_KEY, OnnxNetwork, export_onnx
from retinaseg.inference.options import prepare_model
from retinaseg.io.images import write_image_atomic
from retinaseg.io.oct_files import read_oct
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config

onnx = pytest.importorskip("onnx", reason="the optional extra retinaseg[onnx] is not installed")
pytest.importorskip("onnxruntime", reason="the optional extra retinaseg[onnx] is not installed")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedModel, Path]:
    """A random-weight 3-level U-Net saved as a .pt file, and that file."""
    config = load_config(
        None, ["name=tiny", "data.source=retinaseg", "data.root=unused", "model.options={depth: 3, base_channels: 4}"]
    )
    torch.manual_seed(0)
    model = TrainedModel.from_config(
        config, DUKE_CLASS_NAMES, "multiclass", Preprocessing(channels="grey", clahe=False, normalize="percentile")
    ).eval()
    path = model.save_pretrained(tmp_path_factory.mktemp("tiny") / "tiny.pt", half=False)
    return model, path


@pytest.fixture(scope="module")
def tiny_onnx(tiny: tuple[TrainedModel, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    written, difference = export_onnx(tiny[1], tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    assert difference < 1e-4
    return written


@pytest.mark.parametrize("shape", [(3, 1, 37, 53), (1, 1, 200, 24), (2, 1, 5, 7)])
def test_an_exported_model_gives_pytorchs_logits_at_other_sizes_and_batches(
    tiny: tuple[TrainedModel, Path], tiny_onnx: Path, shape: tuple[int, int, int, int]
) -> None:
    model = load_model(tiny_onnx)
    assert isinstance(model.network, OnnxNetwork)
    assert model.class_names == tiny[0].class_names and model.preprocessing == tiny[0].preprocessing
    assert model.device == torch.device("cpu")
    images = torch.rand(*shape, generator=torch.Generator().manual_seed(1))  # not multiples of 8: padded first
    expected = tiny[0].predict(images)
    got = model.predict(images)
    assert got.shape == expected.shape == (shape[0], len(DUKE_CLASS_NAMES), *shape[2:])
    assert torch.allclose(got, expected, atol=1e-4)


def test_a_pytorch_model_runs_as_onnxruntime_exported_once(tiny: tuple[TrainedModel, Path]) -> None:
    model = TrainedModel.from_pretrained(tiny[1])
    first, second = prepare_model(model, "onnxruntime"), prepare_model(model, "onnxruntime")
    assert isinstance(first.network, OnnxNetwork) and second.network is first.network
    assert prepare_model(first, "onnxruntime") is first
    images = torch.rand(2, 1, 48, 40, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first.predict(images).argmax(1), model.predict(images).argmax(1))


def test_an_onnx_model_runs_as_onnxruntime_only(tiny_onnx: Path) -> None:
    model = load_model(tiny_onnx)
    assert model_for_inference(model, "auto", (64, 64), 1)[1].name == "onnxruntime"
    assert prepare_model(model, "onnxruntime") is model
    with pytest.raises(InputError, match="runs as 'onnxruntime' only"):
        prepare_model(model, "fp32_channels_last")
    with pytest.raises(InputError, match="runs on the CPU"):
        load_model(tiny_onnx, "cuda")
    with pytest.raises(TypeError, match="no PyTorch weights"):
        model.save_pretrained(tiny_onnx.with_suffix(".pt"))
    assert not tiny_onnx.with_suffix(".pt").exists()


def test_auto_never_exports_a_pytorch_model() -> None:
    assert "onnxruntime" not in allowed_options(torch.device("cpu"))


def test_export_refuses_an_existing_file_and_a_wrong_suffix(
    tiny: tuple[TrainedModel, Path], tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"mine")
    code, _, err = run_cli("export-onnx", tiny[1], existing)
    assert code == 2 and "exists" in err and str(existing) in err and len(err.strip().splitlines()) == 1
    assert existing.read_bytes() == b"mine"
    code, _, err = run_cli("export-onnx", tiny[1], tmp_path / "model.pt")
    assert code == 2 and ".onnx" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def _without_metadata(source: Path, target: Path, metadata: str | None) -> Path:
    proto = onnx.load_from_string(source.read_bytes())
    del proto.metadata_props[:]
    if metadata is not None:
        onnx.helper.set_model_props(proto, {"retinaseg_format": "retinaseg-onnx-1", METADATA_KEY: metadata})
    target.write_bytes(proto.SerializeToString())
    return target


def test_bad_onnx_files_are_refused_naming_the_file(
    tiny_onnx: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(tiny_onnx.read_bytes()[:5000])
    image = tmp_path / "image.png"
    write_image_atomic(image, np.zeros((16, 16), dtype=np.uint8))
    code, _, err = run_cli("predict", "--model", corrupt, image, "--out", tmp_path / "out")
    assert code == 2 and "not an ONNX model" in err and str(corrupt) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="is an ONNX model already"):
        export_onnx(tiny_onnx, tmp_path / "again.onnx")
    foreign = _without_metadata(tiny_onnx, tmp_path / "foreign.onnx", None)
    with pytest.raises(InputError, match="without retinaseg's class names"):
        load_model(foreign)
    metadata = json.loads(onnx.load(str(tiny_onnx)).metadata_props[-1].value)
    metadata["class_names"] = metadata["class_names"][:3]
    edited = _without_metadata(tiny_onnx, tmp_path / "edited.onnx", json.dumps(metadata))
    with pytest.raises(InputError, match="graph gives 10 classes, the metadata names 3"):
        load_model(edited)
    metadata = json.loads(onnx.load(str(tiny_onnx)).metadata_props[-1].value)
    metadata["preprocessing"]["channels"] = "rgb"
    edited = _without_metadata(tiny_onnx, tmp_path / "rgb.onnx", json.dumps(metadata))
    with pytest.raises(InputError, match="graph takes 1 channels, the metadata's preprocessing gives 3"):
        load_model(edited)


def test_the_shipped_layer_model_through_onnx_measures_a_real_volume_as_pytorch(
    duke_volumes_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    written, _ = export_onnx(DEFAULT_MODEL, tmp_path_factory.mktemp("shipped") / "layers.onnx")
    volume = read_oct(duke_volumes_root / "Subject_06.vol")
    reference = analyze_volume(volume, load_model(DEFAULT_MODEL, "cpu"), progress=False, inference="fp32")
    result = analyze_volume(volume, load_model(written), progress=False)
    ours, theirs = result.segmentation, reference.segmentation
    assert np.mean(ours.labels == theirs.labels) > 0.9999
    assert np.array_equal(np.isfinite(ours.boundaries_px), np.isfinite(theirs.boundaries_px))
    both = np.isfinite(theirs.boundaries_px)
    assert np.abs(ours.boundaries_px[both] - theirs.boundaries_px[both]).mean() < 0.01


@pytest.mark.parametrize(("option", "value"), [("--inference", "fp32_channels_last"), ("--device", "cuda")])
def test_analyze_refuses_what_an_onnx_model_cannot_do_before_any_work(
    tiny_onnx: Path, tmp_path: Path, run_cli: Callable[..., tuple[int, str, str]], option: str, value: str
) -> None:
    scan = tmp_path / "scan.vol"
    scan.write_bytes(b"never read")
    code, _, err = run_cli("analyze", scan, "--model", tiny_onnx, "--out", tmp_path / "out", option, value)
    assert code == 2 and option in err and "ONNX" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.vol"]


def test_a_network_the_exporter_cannot_translate_is_one_line(
    tiny: tuple[TrainedModel, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., tuple[int, str, str]]
) -> None:
    def unsupported(model: TrainedModel) -> bytes:
        raise RuntimeError("aten::made_up is not supported\nlong exporter report")

    monkeypatch.setattr("retinaseg.inference.onnx_runtime.onnx_graph", unsupported)
    code, _, err = run_cli("export-onnx", tiny[1], tmp_path / "model.onnx")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unet network could not be exported to ONNX" in err and "made_up" in err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_scores_an_exported_model_as_the_pytorch_one(chase_root: Path, tmp_path: Path) -> None:
    written, _ = export_onnx("chase_vessels_unet", tmp_path / "vessels.onnx")
    config = load_model("chase_vessels_unet", "cpu").config
    config["data"]["root"] = str(chase_root)
    config["data"]["split"] = {"train": ["01"], "val": ["09"], "test": ["11"]}
    scores = [
        evaluate_model(model, tmp_path / name, config=config, panels=False, device="cpu")["summary"]
        for name, model in (("pt", "chase_vessels_unet"), ("onnx", written))
    ]
    assert scores[0].keys() == scores[1].keys()
    assert all(scores[1][key] == pytest.approx(value, abs=1e-4) for key, value in scores[0].items())

"""Inference options (precision, memory layout), batch-norm folding and the option chooser and its cache, on small random-weight U-Nets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from retinaseg.conventions import DUKE_CLASS_NAMES
from retinaseg.data.phantom import make_phantom_oct_volume
from retinaseg.data.preprocess import Preprocessing, prepare_image
from retinaseg.errors import InputError
from retinaseg.inference import choose as choose_module
from retinaseg.inference.choice_cache import CACHE_FILE, CACHE_FORMAT
from retinaseg.inference.choose import allowed_options, choose_inference_option, default_batch_size
from retinaseg.inference.fold import fold_batch_norm
from retinaseg.inference.options import INFERENCE_OPTIONS, TORCH, OptimizedNetwork, prepare_model
from retinaseg.inference.volume import network_images, segment_volume
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config
from retinaseg.volume import OctVolume

# PyTorch's float32 options; onnxruntime (float32 too) is tested with the ONNX export in test_onnx.py.
FP32_OPTIONS = [name for name, option in INFERENCE_OPTIONS.items() if not option.reduced_precision and option.runtime == TORCH]


def _unet(*overrides: str) -> TrainedModel:
    """A 3-level U-Net with 4 base channels and random weights, its batch norms given random statistics.

    Fresh batch norms (mean 0, variance 1, unit scale) would make folding them trivial, and the
    random bias of the head would make one class win everywhere.
    """
    config = load_config(
        None,
        ["name=tiny", "data.source=retinaseg", "data.root=unused", "model.options={depth: 3, base_channels: 4}", *overrides],
    )
    torch.manual_seed(0)
    model = TrainedModel.from_config(
        config, DUKE_CLASS_NAMES, "multiclass", Preprocessing(channels="grey", clahe=False, normalize="percentile")
    )
    for module in model.network.modules():
        if isinstance(module, nn.BatchNorm2d):
            for name, low, high in (
                ("running_mean", -0.5, 0.5),
                ("running_var", 0.5, 2.0),
                ("weight", 0.5, 1.5),
                ("bias", -0.2, 0.2),
            ):
                nn.init.uniform_(getattr(module, name), low, high)
    head = model.network.get_submodule("head")
    assert isinstance(head, nn.Conv2d) and head.bias is not None
    nn.init.zeros_(head.bias)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> TrainedModel:
    return _unet()


@pytest.fixture(scope="module")
def volume() -> OctVolume:
    return make_phantom_oct_volume(seed=0, n_bscans=5, height=144, width=64)[0]


def _todays_labels(volume: OctVolume, model: TrainedModel, batch_size: int = 4) -> np.ndarray:
    """Class maps as segment_volume computed them before the options: float32 NCHW, ``model.predict`` batch by batch."""
    images = network_images(volume)
    labels = []
    for start in range(0, len(images), batch_size):
        batch = np.stack([prepare_image(image, model.preprocessing) for image in images[start : start + batch_size]])
        labels.append(model.predict(torch.from_numpy(batch)).argmax(dim=1).to(torch.uint8).numpy())
    return np.concatenate(labels)


@pytest.fixture
def float32_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """``auto`` chooses among the float32 options, whatever reduced precision gets validated later."""
    monkeypatch.setattr("retinaseg.inference.choose.VALIDATED_REDUCED_PRECISION", frozenset())


@pytest.mark.usefixtures("float32_only")
@pytest.mark.parametrize("inference", [*FP32_OPTIONS, "auto"])
def test_float32_options_give_todays_class_maps(volume: OctVolume, model: TrainedModel, inference: str) -> None:
    expected = _todays_labels(volume, model)
    assert len(np.unique(expected)) > 1  # a constant map would match anything
    for batch_size in (1, 4, None):
        labels = segment_volume(volume, model, batch_size=batch_size, progress=False, inference=inference)
        np.testing.assert_array_equal(labels, expected)


@pytest.mark.usefixtures("float32_only")
def test_the_old_call_still_works(volume: OctVolume, model: TrainedModel) -> None:
    np.testing.assert_array_equal(segment_volume(volume, model, batch_size=4, progress=True), _todays_labels(volume, model))


def test_folding_batch_norm_keeps_the_logits(model: TrainedModel) -> None:
    folded = copy.deepcopy(model.network)
    norms = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert norms > 0 and fold_batch_norm(folded) == norms
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    images = torch.rand((2, 1, 64, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, logits = model.network(images), folded(images)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4)


class _NormUsedTwice(nn.Module):
    """Convolution output read by a batch norm and by a shortcut: folding would change the shortcut."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.norm = nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm(y) + y


@pytest.mark.parametrize(
    "network",
    [
        _NormUsedTwice().eval(),
        nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train(),
        _unet("model.options.norm=instance").network,
    ],
    ids=["custom forward", "training mode", "instance norm"],
)
def test_networks_that_cannot_be_folded_are_left_as_they_are(network: nn.Module) -> None:
    before = copy.deepcopy(network.state_dict())
    assert fold_batch_norm(network) == 0
    assert all(torch.equal(value, before[key]) for key, value in network.state_dict().items())


@pytest.mark.parametrize("overrides", [[], ["evaluation.roi_size=[32, 32]"]], ids=["one pass", "sliding windows"])
def test_bfloat16_gives_float32_logits_of_the_input_size(overrides: list[str]) -> None:
    model = _unet(*overrides)
    original = copy.deepcopy(model.network.state_dict())
    prepared = prepare_model(model, "bf16_channels_last")
    logits = prepared.predict(torch.rand((2, 1, 50, 70), generator=torch.Generator().manual_seed(2)))
    assert logits.shape == (2, len(DUKE_CLASS_NAMES), 50, 70) and logits.dtype == torch.float32
    inner = prepared.network
    assert isinstance(inner, OptimizedNetwork) and {p.dtype for p in inner.parameters()} == {torch.bfloat16}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in inner.modules())
    # the caller's model is untouched: float32, batch norms in place, same weights
    state = model.network.state_dict()
    assert state.keys() == original.keys() and all(torch.equal(state[key], original[key]) for key in state)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.network.modules())


def test_bfloat16_autocast_gives_float32_logits(model: TrainedModel) -> None:
    logits = prepare_model(model, "bf16_autocast").predict(torch.rand((1, 1, 40, 40)))
    assert logits.shape == (1, len(DUKE_CLASS_NAMES), 40, 40) and logits.dtype == torch.float32


def test_the_chooser_times_each_allowed_option_and_caches(model: TrainedModel) -> None:
    choice = choose_inference_option(model, (48, 64))
    allowed = allowed_options(torch.device("cpu"))
    assert choice.option.name in allowed and list(choice.seconds_per_image) == list(allowed)
    assert all(seconds > 0 for seconds in choice.seconds_per_image.values())
    assert choice.seconds_per_image[choice.option.name] == min(choice.seconds_per_image.values())
    assert choice.batch_size == default_batch_size(torch.device("cpu")) and choice.option.name in choice.describe()
    assert choose_inference_option(model, (48, 64)) is choice


def test_reduced_precision_is_chosen_only_when_validated_or_named(model: TrainedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    assert all(not INFERENCE_OPTIONS[name].reduced_precision for name in allowed_options(cpu))
    monkeypatch.setattr("retinaseg.inference.choose.VALIDATED_REDUCED_PRECISION", frozenset({"bf16_channels_last"}))
    assert "bf16_channels_last" in allowed_options(cpu) and "bf16_autocast" not in allowed_options(cpu)
    named = choose_inference_option(model, (32, 32), candidates=["fp32", "bf16_autocast"], repeats=1)
    assert set(named.seconds_per_image) == {"fp32", "bf16_autocast"}


def test_unknown_options_are_refused_with_the_closest_name(volume: OctVolume, model: TrainedModel) -> None:
    with pytest.raises(InputError, match="unknown inference option 'fp32_channel_last'; did you mean 'fp32_channels_last'"):
        segment_volume(volume, model, progress=False, inference="fp32_channel_last")
    with pytest.raises(InputError, match="did you mean 'bf16_autocast'"):
        choose_inference_option(model, (32, 32), candidates=["bf16_autocats"])


def test_a_prepared_model_runs_as_prepared(volume: OctVolume, model: TrainedModel) -> None:
    prepared = prepare_model(model, "fp32_channels_last")
    np.testing.assert_array_equal(segment_volume(volume, prepared, progress=False), _todays_labels(volume, model))
    with pytest.raises(TypeError, match="prepare the original model"):
        prepare_model(prepared, "fp32")


def _forget_in_process_choices() -> None:
    """What a new process starts with: no choice in memory (the disk cache stays)."""
    choose_module._CHOICES.clear()


def test_a_later_process_reuses_the_timed_choice_without_timing(
    model: TrainedModel, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forget_in_process_choices()
    timed = choose_inference_option(model, (40, 56))
    assert not timed.remembered and json.loads((private_cache / CACHE_FILE).read_text())["format"] == CACHE_FORMAT
    _forget_in_process_choices()
    monkeypatch.setattr(choose_module, "_segment", lambda *args: pytest.fail("timed again"))
    again = choose_inference_option(model, (40, 56))
    assert again.remembered and again.option == timed.option and "earlier run" in again.describe()
    assert again.seconds_per_image == pytest.approx(timed.seconds_per_image)


@pytest.mark.parametrize("change", ["image size", "threads", "candidates"])
def test_another_size_thread_count_or_candidate_list_is_timed_anew(model: TrainedModel, change: str) -> None:
    _forget_in_process_choices()
    choose_inference_option(model, (40, 56))
    _forget_in_process_choices()
    threads = torch.get_num_threads()
    try:
        if change == "threads":
            torch.set_num_threads(threads + 1)
        shape = (40, 64) if change == "image size" else (40, 56)
        candidates = ["fp32", "fp32_channels_last"] if change == "candidates" else None
        assert not choose_inference_option(model, shape, candidates=candidates).remembered
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("content", ["{not json", '{"entries": {}}', "[1, 2]"], ids=["damaged", "no format", "a list"])
def test_a_cache_file_this_module_did_not_write_is_neither_read_nor_replaced(
    model: TrainedModel, private_cache: Path, content: str
) -> None:
    (private_cache / CACHE_FILE).write_text(content)
    for _ in range(2):
        _forget_in_process_choices()
        assert not choose_inference_option(model, (40, 56)).remembered
    assert (private_cache / CACHE_FILE).read_text() == content


@pytest.mark.parametrize("where", ["disabled", "unwritable"])
def test_without_a_usable_cache_folder_the_options_are_timed_each_time(
    model: TrainedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("RETINASEG_CACHE_DIR", "" if where == "disabled" else str(blocker / "cache"))
    for _ in range(2):
        _forget_in_process_choices()
        assert not choose_inference_option(model, (40, 56)).remembered
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a file"]

"""Every registered model: forward/backward shapes, save/load round trip, registry errors; TrainedModel.predict."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from retinaseg.data.geometry import resize_channels_first
from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError
from retinaseg.models import build_model, count_parameters, list_models, model_size_multiple
from retinaseg.models.profile import multiply_accumulates
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config

SMALL_OPTIONS = {
    "fcn_resnet50": {"width": 4, "aux_head": True},
    "fcn_resnet101": {"width": 4},
    "deeplabv3_resnet50": {"width": 4, "freeze_backbone": True},
    "deeplabv3_resnet101": {"width": 4},
    "relaynet": {"num_filters": 8},
    "sa_unet": {"base_channels": 4, "block_size": 3},
    "segresnet": {"init_filters": 8, "blocks_down": [1, 1, 1], "blocks_up": [1, 1]},
    "swin_unetr": {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2]},
    "flexible_unet": {"backbone": "resnet10", "decoder_channels": [16, 16, 8, 8, 4]},
    "cbam_unet": {"depth": 3, "base_channels": 4},
    "cmp_unet": {"depth": 3, "base_channels": 4},
    "deform_unet": {"depth": 3, "base_channels": 4},
    "fcn8s": {"fc_channels": 64, "width": 8},
    "vgg16_fcn": {"width": 8},
    "unet": {"base_channels": 4},
    "basic_unet": {"features": [4, 4, 8, 8, 16, 4]},
    "attention_unet": {"channels": [4, 8, 16]},
    "dynunet": {"filters": [4, 8, 16]},
    "ensemble": {
        "members": [{"name": "unet", "options": {"base_channels": 4}}, {"name": "sa_unet", "options": {"base_channels": 4}}]
    },
}


def test_registry_lists_the_seed_models():
    names = {spec.name for spec in list_models()}
    assert set(SMALL_OPTIONS) <= names


@pytest.mark.parametrize("name", sorted(SMALL_OPTIONS))
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_backward_shapes(name, in_channels):
    torch.manual_seed(0)
    options = SMALL_OPTIONS[name]
    model = build_model(name, in_channels, 5, options)
    multiple = model_size_multiple(name, options)
    x = torch.randn(2, in_channels, 2 * multiple, 3 * multiple, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 5, 2 * multiple, 3 * multiple)
    logits.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert count_parameters(model) > 0


@pytest.mark.parametrize("depth", [2, 3, 4, 5])
def test_unet_keeps_the_size_of_twice_its_size_multiple(depth):
    options = {"depth": depth, "base_channels": 4}
    multiple = model_size_multiple("unet", options)
    model = build_model("unet", 1, 2, options)
    x = torch.zeros(1, 1, 2 * multiple, 2 * multiple)
    assert model(x).shape == (1, 2, 2 * multiple, 2 * multiple)


def test_unknown_model_and_option_are_input_errors():
    with pytest.raises(InputError, match="unknown model 'nope'"):
        build_model("nope", 1, 2)
    with pytest.raises(InputError, match="model.options.depthh: unknown unet option .depthh.; did you mean .depth.?"):
        build_model("unet", 1, 2, {"depthh": 3})


# --- TrainedModel: save/load and predict ------------------------------------------------------


def small_trained_model(name: str, num_classes: int = 3, *config: str) -> TrainedModel:
    """Registered network ``name`` (small options) as a TrainedModel, with batch-norm statistics that are not the defaults."""
    overrides = ["name=t", "data.source=retinaseg", "data.root=unused", f"model.name={name}"]
    overrides.append(f"model.options={json.dumps(SMALL_OPTIONS.get(name, {}))}")
    config = load_config(None, [*overrides, *config])
    class_names = [f"class_{k}" for k in range(num_classes)]
    model = TrainedModel.from_config(config, class_names, "multiclass", Preprocessing())
    torch.manual_seed(0)
    with torch.no_grad():
        model.network.train()(torch.randn(2, 1, 2 * model.size_multiple, 2 * model.size_multiple))
    return model.eval()


def assert_round_trip(model: TrainedModel, folder: Path) -> None:
    """Saved and loaded, ``model`` keeps its settings and gives identical logits: in full precision those of
    ``model``, in half precision those of ``model`` with its weights rounded to float16."""
    # Sides that are not multiples of the size multiple: padding is part of the round trip.
    image = torch.rand(2, 1, 2 * model.size_multiple + 3, model.size_multiple + 5, generator=torch.Generator().manual_seed(1))
    rounded = copy.deepcopy(model)
    for value in rounded.network.state_dict().values():
        if value.is_floating_point():
            value.copy_(value.half().float())
    for half, expected in ((False, model), (True, rounded)):
        loaded = TrainedModel.from_pretrained(model.save_pretrained(folder / f"half_{half}.pt", half=half))
        assert loaded.metadata() == model.metadata() and not loaded.network.training
        assert (loaded.size_multiple, loaded.evaluation) == (model.size_multiple, model.evaluation)
        assert torch.equal(loaded.predict(image), expected.predict(image)), f"half={half}"


@pytest.mark.parametrize("name", [spec.name for spec in list_models()])
def test_save_and_load_give_identical_logits(name: str, tmp_path: Path) -> None:
    assert_round_trip(small_trained_model(name), tmp_path)


def test_predict_pads_to_the_size_multiple_and_windows_on_request() -> None:
    model = small_trained_model("unet", 4, "evaluation.roi_size=[16, 16]")
    multiple = model.size_multiple
    image = torch.rand(1, 1, 3 * multiple, 2 * multiple)
    with torch.no_grad():
        whole = model.network(image)
    # An image of whole multiples goes through the network unchanged, in one pass when asked for a window that covers it.
    torch.testing.assert_close(model.predict(image, roi_size=(3 * multiple, 2 * multiple)), whole)
    odd = torch.rand(1, 1, 3 * multiple - 1, 2 * multiple + 1)
    windowed = model.predict(odd)  # the config's 16x16 windows
    probabilities = model.predict(odd, probabilities=True)
    assert windowed.shape == probabilities.shape == (1, 4, 3 * multiple - 1, 2 * multiple + 1)
    torch.testing.assert_close(probabilities, torch.softmax(windowed, dim=1))


def test_predict_of_a_resized_model_has_the_input_size(tmp_path: Path) -> None:
    trained = small_trained_model("unet", 3)
    model = TrainedModel(trained.network, trained.config, trained.class_names, "multiclass", Preprocessing(resize=(32, 16)))
    odd = torch.rand(2, 1, 37, 23, generator=torch.Generator().manual_seed(2))
    logits = model.predict(odd)
    assert logits.shape == (2, 3, 37, 23) and torch.isfinite(logits).all()
    # At the training size nothing is resized: the network's own logits.
    at_size = torch.rand(1, 1, 32, 16)
    torch.testing.assert_close(model.predict(at_size), trained.predict(at_size))
    # The input is resized as training resized it, the logits back bilinearly.
    inputs = torch.from_numpy(resize_channels_first(odd[0].numpy(), (32, 16)))[None]
    back = torch.nn.functional.interpolate(trained.predict(inputs), size=(37, 23), mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits[:1], back)
    # Saved with the model: a weight file stores the size (as a JSON list) and reads it back.
    loaded = TrainedModel.from_pretrained(model.save_pretrained(tmp_path / "resized.pt", half=False))
    assert loaded.preprocessing.resize == (32, 16)
    torch.testing.assert_close(loaded.predict(odd), logits)


def test_a_file_of_another_kind_is_named(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"format": "something-else", "state_dict": {}}, path)
    with pytest.raises(InputError, match="no retinaseg weight-file header") as error:
        TrainedModel.from_pretrained(path)
    assert error.value.where == str(path)
    saved = small_trained_model("unet").save_pretrained(tmp_path / "unet.pt")
    edited = torch.load(saved, weights_only=True)
    edited["state_dict"].popitem()
    torch.save(edited, path)
    with pytest.raises(
        InputError, match="not a retinaseg weight file .ValueError: weights do not fit the network the file describes"
    ):
        TrainedModel.from_pretrained(path)


def test_multiply_accumulates_grow_with_the_pixels_and_count_the_padding() -> None:
    options = {"depth": 3, "base_channels": 4}
    small = multiply_accumulates("unet", 1, 2, 16, 16, options)
    assert small > 0
    assert multiply_accumulates("unet", 1, 2, 32, 32, options) == 4 * small  # fully convolutional
    assert multiply_accumulates("unet", 1, 2, 13, 15, options) == small  # padded to 16 x 16 first


@pytest.mark.parametrize("name", ["unet", "fcn_resnet50", "relaynet", "segresnet"])
def test_overfits_one_batch(name: str) -> None:
    """A representative of each family learns a fixed batch: the training signal reaches every part."""
    torch.manual_seed(0)
    options = SMALL_OPTIONS.get(name, {})
    model = build_model(name, 1, 3, options).train()
    multiple = model_size_multiple(name, options)
    side = max(4 * multiple, 32)
    image = torch.rand(2, 1, side, side)
    target = (torch.arange(side).view(1, side, 1).expand(2, side, side) * 3 // side).long()  # three bands
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(image), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]

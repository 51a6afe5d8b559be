"""Every registered model: forward/backward shapes, registry errors."""

from __future__ import annotations

import pytest
import torch

from retinaseg.errors import InputError
from retinaseg.models import build_model, count_parameters, list_models, model_size_multiple

SMALL_OPTIONS = {
    "unet": {"base_channels": 4},
    "basic_unet": {"features": [4, 4, 8, 8, 16, 4]},
    "attention_unet": {"channels": [4, 8, 16]},
    "dynunet": {"filters": [4, 8, 16]},
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
def test_unet_depth_sets_size_multiple(depth):
    options = {"depth": depth, "base_channels": 4}
    multiple = model_size_multiple("unet", options)
    assert multiple == 2 ** (depth - 1)
    model = build_model("unet", 1, 2, options)
    x = torch.zeros(1, 1, 2 * multiple, 2 * multiple)
    assert model(x).shape == (1, 2, 2 * multiple, 2 * multiple)


def test_unknown_model_and_option_are_input_errors():
    with pytest.raises(InputError, match="unknown model 'nope'"):
        build_model("nope", 1, 2)
    with pytest.raises(InputError, match="model.options.depthh: unknown unet option .depthh.; did you mean .depth.?"):
        build_model("unet", 1, 2, {"depthh": 3})

"""The plain-PyTorch U-Net blocks against MONAI's: same layers, same weight names, same outputs; the registry's module map."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from monai.networks.blocks import ADN, Convolution
from monai.networks.nets.basic_unet import Down, TwoConv, UpCat
from torch import nn

from retinaseg.models import blocks

MONAI_NORM = {"batch": "batch", "instance": ("instance", {"affine": True}), "none": None}
RELU = ("relu", {"inplace": True})


def _same(ours: nn.Module, theirs: nn.Module, *inputs: torch.Tensor) -> None:
    """``ours`` loads ``theirs``'s randomised state dict strictly and gives the same outputs in eval mode."""
    generator = torch.Generator().manual_seed(0)
    state = {
        key: torch.randn(value.shape, generator=generator) if value.is_floating_point() else value
        for key, value in theirs.state_dict().items()
    }
    state = {key: value.abs() if key.endswith("running_var") else value for key, value in state.items()}
    theirs.load_state_dict(state)
    ours.load_state_dict(state, strict=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.eval(), theirs.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(*inputs), theirs(*inputs), rtol=0, atol=0)


@pytest.mark.parametrize("norm", blocks.NORMS)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_blocks_equal_monais(norm: str, dropout: float) -> None:
    monai_norm = MONAI_NORM[norm]
    x = torch.randn(2, 3, 12, 10)
    _same(blocks.double_conv(3, 5, norm, dropout), TwoConv(2, 3, 5, RELU, monai_norm, True, dropout), x)
    _same(blocks.down_block(3, 5, norm, dropout), Down(2, 3, 5, RELU, monai_norm, True, dropout), x)
    dilated = Convolution(2, 3, 5, act=RELU, norm=monai_norm, dropout=dropout, dilation=2, padding=2)
    _same(blocks.conv_norm_act(3, 5, norm, dropout, dilation=2), dilated, x)
    deeper, skip = torch.randn(2, 8, 6, 5), torch.randn(2, 4, 12, 10)
    _same(blocks.UpCat(8, 4, 5, norm, dropout), UpCat(2, 8, 4, 5, RELU, monai_norm, True, dropout), deeper, skip)


@pytest.mark.parametrize("channel_dropout", [False, True])
def test_dropout_is_monais_in_training(channel_dropout: bool) -> None:
    """Convolution blocks drop activations; the deformable U-Net's ADN (norm_dim=2 only) drops whole maps."""
    theirs = ADN("NDA", 5, act=RELU, norm="batch", norm_dim=2, dropout=0.5, **({} if channel_dropout else {"dropout_dim": 1}))
    ours = blocks.norm_dropout_act(5, "batch", 0.5, channel_dropout=channel_dropout)
    assert [type(m) for m in ours] == [type(m) for m in theirs]


def test_upcat_repeats_the_last_row_and_column_for_an_odd_skip_as_monai_does() -> None:
    deeper, skip = torch.randn(1, 8, 6, 5), torch.randn(1, 4, 13, 11)
    _same(blocks.UpCat(8, 4, 5, "batch", 0.0), UpCat(2, 8, 4, 5, RELU, "batch", True, 0.0), deeper, skip)


def test_unknown_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="norm must be one of"):
        blocks.norm_dropout_act(4, "group", 0.0)


def test_the_registry_module_map_names_every_builtin_network_and_its_module() -> None:
    """Importing each network module alone registers exactly the networks the map sends to it."""
    code = (
        "import importlib, json, pkgutil\n"
        "import retinaseg.models as package\n"
        "from retinaseg.models import registry\n"
        "found = {}\n"
        "for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):\n"
        "    before = set(registry._REGISTRY)\n"
        "    importlib.import_module(f'retinaseg.models.{module}')\n"
        "    found.update({name: module for name in set(registry._REGISTRY) - before})\n"
        "print(json.dumps(found))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from retinaseg.models.registry import _BUILTIN_MODULES

    assert json.loads(result.stdout.strip().splitlines()[-1]) == _BUILTIN_MODULES

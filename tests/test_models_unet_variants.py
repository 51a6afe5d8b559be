"""Fundus-vessel U-Net variants: deformable convolution, attention blocks, residual U-Net, option checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from retinaseg.errors import InputError
from retinaseg.models import build_model, model_size_multiple
from retinaseg.models.attention_blocks import CBAM, MultiScaleChannelFusion
from retinaseg.models.deform import DeformConv2d
from retinaseg.models.registry import check_model_options
from retinaseg.models.unet import ResidualBlock

VARIANTS = ["cbam_unet", "cmp_unet", "deform_unet"]

# --- deformable convolution -------------------------------------------------------------------


@pytest.mark.parametrize(("padding", "dilation"), [(1, 1), (0, 1), (2, 2)])
def test_deform_conv_with_zero_offsets_is_an_ordinary_convolution(padding: int, dilation: int) -> None:
    torch.manual_seed(0)
    deform = DeformConv2d(2, 3, kernel_size=3, padding=padding, dilation=dilation)
    conv = nn.Conv2d(2, 3, kernel_size=3, padding=padding, dilation=dilation)
    with torch.no_grad():
        conv.weight.copy_(deform.weight)
        conv.bias.copy_(deform.bias)
    x = torch.randn(2, 2, 7, 9)
    # The offset predictor starts at zero, so the layer itself is the ordinary convolution.
    torch.testing.assert_close(deform(x), conv(x), atol=1e-5, rtol=0)


def bilinear(image: np.ndarray, y: float, x: float) -> float:
    """The 4-neighbour bilinear interpolation of ``image`` (H, W) at ``(y, x)``, zero outside the image."""
    y0, x0 = math.floor(y), math.floor(x)
    value = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < image.shape[0] and 0 <= xx < image.shape[1]:
                value += wy * wx * image[yy, xx]
    return value


def test_deform_conv_samples_the_bilinear_formula_at_the_offset_taps() -> None:
    torch.manual_seed(1)
    layer = DeformConv2d(2, 3, kernel_size=3, padding=1)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64)
    # Shifts up to 2.5 pixels: fractional taps, and taps that leave the image.
    offsets = (torch.rand(1, 18, 5, 6, dtype=torch.float64) - 0.5) * 5
    out = layer.double().deform(x, offsets)[0].detach().numpy()
    image, shift = x[0].numpy(), offsets[0].numpy()
    weight, bias = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    for h, w in [(0, 0), (2, 3), (4, 5), (1, 4), (3, 0)]:
        taps = np.zeros((2, 3, 3))
        for i in range(3):
            for j in range(3):
                t = 3 * i + j
                y, xx = h + i - 1 + shift[2 * t, h, w], w + j - 1 + shift[2 * t + 1, h, w]
                taps[:, i, j] = [bilinear(image[c], y, xx) for c in range(2)]
        expected = (weight * taps).sum(axis=(1, 2, 3)) + bias
        np.testing.assert_allclose(out[:, h, w], expected, atol=1e-10, err_msg=f"position {(h, w)}")


def test_gradients_reach_the_offsets() -> None:
    torch.manual_seed(2)
    layer = DeformConv2d(2, 3)
    x = torch.randn(1, 2, 5, 6)
    offsets = torch.full((1, 18, 5, 6), 0.3, requires_grad=True)
    layer.deform(x, offsets).square().sum().backward()
    assert offsets.grad is not None and offsets.grad.abs().sum() > 0
    # Through the layer's own predictor too, although its weights start at zero.
    layer.zero_grad()
    layer(x).square().sum().backward()
    assert layer.offset.weight.grad is not None and layer.offset.weight.grad.abs().sum() > 0


# --- attention blocks -------------------------------------------------------------------------


def test_cbam_with_neutral_attention_scales_by_a_quarter() -> None:
    cbam = CBAM(8)
    with torch.no_grad():
        for conv in (cbam[0].mlp[-1], cbam[1].conv):
            conv.weight.zero_()
            conv.bias.zero_()
    x = torch.randn(2, 8, 5, 6)
    # sigmoid(0) = 1/2 from each of the channel and the spatial attention.
    torch.testing.assert_close(cbam(x), x / 4)


def test_multi_scale_fusion_with_neutral_weights_averages_the_branches() -> None:
    fusion = MultiScaleChannelFusion(4, norm="batch").eval()
    with torch.no_grad():
        fusion.squeeze[-1].weight.zero_()
        fusion.squeeze[-1].bias.zero_()
    x = torch.randn(2, 4, 9, 8)
    expected = torch.stack([branch(x) for branch in fusion.branches]).mean(dim=0)
    torch.testing.assert_close(fusion(x), expected)


# --- networks ---------------------------------------------------------------------------------


def test_residual_unet_adds_shortcuts_and_keeps_the_plain_unet_unchanged() -> None:
    plain = build_model("unet", 1, 2, {"depth": 3, "base_channels": 4})
    residual = build_model("unet", 1, 2, {"depth": 3, "base_channels": 4, "residual": True})
    assert not any("shortcut" in key or "body" in key for key in plain.state_dict())
    shortcuts = [module for module in residual.modules() if isinstance(module, ResidualBlock)]
    assert len(shortcuts) == 5  # stem, two encoder and two decoder blocks
    x = torch.randn(2, 1, 8, 12, requires_grad=True)
    residual(x).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    block = shortcuts[0].eval()
    torch.testing.assert_close(block(x), block.body(x) + block.shortcut(x))


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("depth", [2, 6])
def test_variants_keep_the_size_at_the_depth_limits(name: str, depth: int) -> None:
    options = {"depth": depth, "base_channels": 2, "norm": "instance", "dropout": 0.1}
    multiple = model_size_multiple(name, options)
    assert multiple == 2 ** (depth - 1)
    model = build_model(name, 3, 4, options)
    assert model(torch.randn(1, 3, 2 * multiple, multiple)).shape == (1, 4, 2 * multiple, multiple)


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_options_are_checked(name: str) -> None:
    assert check_model_options(name, {"norm": "none"})["depth"] == 4
    with pytest.raises(InputError, match="model.options.depth: must be in"):
        build_model(name, 1, 2, {"depth": 7})
    with pytest.raises(InputError, match="model.options.norm"):
        build_model(name, 1, 2, {"norm": "group"})

"""The specialist networks (ReLayNet, SA-UNet) and the MONAI SegResNet, SwinUNETR and FlexibleUNet wrappers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from retinaseg.errors import InputError
from retinaseg.models import build_model
from retinaseg.models.monai_nets import FLEXIBLE_UNET_BACKBONES
from retinaseg.models.registry import check_model_options
from retinaseg.models.relaynet import ReLayNet
from retinaseg.models.sa_unet import DropBlock2d, SAUNet, SpatialAttention

# --- ReLayNet ---------------------------------------------------------------------------------


def test_relaynet_unpooling_puts_each_maximum_back_where_it_was() -> None:
    network = ReLayNet(1, 3, num_filters=4)
    x = torch.randn(2, 4, 8, 12, generator=torch.Generator().manual_seed(0))
    pooled, indices = network.pool(x)
    restored = network.unpool(pooled, indices)
    # The maximum of each 2 x 2 window, in place; every other pixel zero.
    window_max = F.interpolate(pooled, scale_factor=2, mode="nearest")
    assert torch.equal(restored, torch.where(x == window_max, x, torch.zeros_like(x)))


def test_relaynet_uses_tall_kernels_and_keeps_the_size() -> None:
    network = ReLayNet(1, 10, num_filters=8).eval()
    assert network.encoders[0][0].weight.shape == (8, 1, 7, 3)
    assert network(torch.zeros(1, 1, 16, 24)).shape == (1, 10, 16, 24)


def test_relaynet_refuses_even_kernels() -> None:
    with pytest.raises(InputError, match="kernel sides must be odd"):
        check_model_options("relaynet", {"kernel_h": 6})


# --- SA-UNet ----------------------------------------------------------------------------------


def fully_dropped_squares(dropped: torch.Tensor, size: int) -> torch.Tensor:
    """Pixels of ``dropped`` (``(B, C, H, W)``, 0/1) lying in some ``size x size`` square that is wholly dropped."""
    whole_squares = -F.max_pool2d(-dropped, size, stride=1)  # 1 at the top-left corner of each wholly dropped square
    return F.max_pool2d(F.pad(whole_squares, (size - 1,) * 4), size, stride=1)


def test_dropblock_drops_whole_squares_in_training_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    block = DropBlock2d(drop_prob=0.2, block_size=5).train()
    x = torch.ones(2, 8, 32, 32)
    out = block(x)
    dropped = (out == 0).float()
    assert 0.05 < dropped.mean() < 0.3
    # Every dropped pixel belongs to a dropped 5 x 5 square: the drops are blocks, not scattered pixels.
    assert torch.equal(fully_dropped_squares(dropped, 5), dropped)
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, x.numel() / kept.numel()))
    torch.testing.assert_close(out.mean(), torch.tensor(1.0))


def test_dropblock_keeps_the_mean_of_half_precision_maps_larger_than_float16_counts() -> None:
    torch.manual_seed(0)
    x = torch.ones(2, 4, 128, 160, dtype=torch.float16)  # 163,840 values: more than float16's largest number
    out = DropBlock2d(drop_prob=0.1, block_size=7).train()(x)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert abs(out.float().mean().item() - 1) < 1e-2


def test_dropblock_is_the_identity_in_evaluation_and_fits_small_maps() -> None:
    block = DropBlock2d(drop_prob=0.5, block_size=7)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(block.eval()(x), x)
    small = torch.ones(2, 3, 3, 5)  # shorter than the block: squares of side 3
    assert block.train()(small).shape == small.shape


def test_spatial_attention_scales_by_a_map_in_zero_one() -> None:
    torch.manual_seed(0)
    attention = SpatialAttention()
    x = torch.randn(2, 16, 8, 12)
    weights = attention.attention(x)
    assert weights.shape == (2, 1, 8, 12) and 0 <= weights.min() and weights.max() <= 1
    torch.testing.assert_close(attention(x), x * weights)
    torch.nn.init.zeros_(attention.conv.weight)
    torch.testing.assert_close(attention(x), x / 2)


def test_sa_unet_is_stochastic_only_in_training() -> None:
    torch.manual_seed(0)
    network = SAUNet(3, 2, base_channels=4, block_size=3, drop_prob=0.3)
    x = torch.randn(1, 3, 32, 32)
    assert not torch.equal(network.train()(x), network(x))
    with torch.no_grad():
        assert torch.equal(network.eval()(x), network(x))
    assert network(x).shape == (1, 2, 32, 32)


# --- MONAI ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", FLEXIBLE_UNET_BACKBONES)
def test_every_flexible_unet_backbone_builds_offline(backbone: str) -> None:
    assert check_model_options("flexible_unet", {"backbone": backbone})["backbone"] == backbone


def test_swin_unetr_passes_the_trial_build_and_needs_sides_of_multiples_of_32() -> None:
    options = {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2]}
    check_model_options("swin_unetr", options)
    network = build_model("swin_unetr", 1, 3, options).eval()
    with torch.no_grad():
        assert network(torch.zeros(1, 1, 32, 64)).shape == (1, 3, 32, 64)
        with pytest.raises(ValueError, match="divisible"):
            network(torch.zeros(1, 1, 48, 64))


@pytest.mark.parametrize(
    ("name", "options", "problem"),
    [
        ("segresnet", {"blocks_down": [1, 2], "blocks_up": [1, 1]}, "blocks_up needs"),
        ("segresnet", {"init_filters": 12}, "num_groups"),
        ("swin_unetr", {"depths": [2, 2, 2]}, "4 stages"),
        ("swin_unetr", {"feature_size": 16}, "divisible by 12"),
        ("flexible_unet", {"decoder_channels": [16, 8]}, "5 stages"),
    ],
)
def test_monai_options_the_networks_refuse_are_input_errors(name: str, options: dict, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        check_model_options(name, options)

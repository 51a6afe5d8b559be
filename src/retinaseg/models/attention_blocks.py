"""Attention blocks of the fundus-vessel U-Net variants (:mod:`retinaseg.models.unet_variants`).

* :class:`CBAM` (Woo et al. 2018): channel attention from average- and
  max-pooled descriptors through one shared MLP, then spatial attention from a
  7x7 convolution over the channel-wise average and maximum maps.
* :class:`MultiScaleChannelFusion`: parallel dilated 3x3 convolutions whose
  outputs are mixed per channel by a softmax over the branches, as in selective
  kernel units (Li et al. 2019).

All blocks keep the shape ``(B, C, H, W)`` of their input.
"""

from __future__ import annotations

import torch
from torch import nn

from retinaseg.models.blocks import conv_norm_act


def _squeeze_width(channels: int, reduction: int, minimum: int) -> int:
    """Hidden width of a squeeze MLP: ``channels // reduction``, at least ``minimum``."""
    return max(channels // reduction, minimum)


class ChannelAttention(nn.Module):
    """CBAM channel attention: ``x * sigmoid(MLP(avgpool(x)) + MLP(maxpool(x)))``.

    Parameters
    ----------
    channels
        Channels ``C`` of the input ``(B, C, H, W)``.
    reduction
        Squeeze ratio of the MLP's hidden layer (16 in the paper; at least one unit).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = _squeeze_width(channels, reduction, 1)
        # 1x1 convolutions on (B, C, 1, 1) descriptors: the MLP without reshaping.
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        average = self.mlp(x.mean(dim=(2, 3), keepdim=True))
        maximum = self.mlp(x.amax(dim=(2, 3), keepdim=True))
        return x * torch.sigmoid(average + maximum)


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(conv([mean_C(x), max_C(x)]))``.

    Parameters
    ----------
    kernel_size
        Odd side of the convolution over the two ``(B, 1, H, W)`` maps (7 in the paper).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class CBAM(nn.Sequential):
    """Convolutional block attention module: channel, then spatial attention.

    Parameters
    ----------
    channels
        Channels ``C`` of the input ``(B, C, H, W)``.
    reduction
        Squeeze ratio of the channel attention's MLP.
    kernel_size
        Side of the spatial attention's convolution.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__(ChannelAttention(channels, reduction), SpatialAttention(kernel_size))


class MultiScaleChannelFusion(nn.Module):
    """Dilated 3x3 branches mixed per channel by learned, input-dependent weights.

    Each branch is a convolution-norm-ReLU with its own dilation. The branches'
    sum is average-pooled and squeezed through an MLP to one logit per branch
    and channel; a softmax over the branches gives the weights of the output
    ``sum_b a_b * branch_b``, so every channel picks its receptive field.

    Parameters
    ----------
    channels
        Channels ``C`` of the input and output ``(B, C, H, W)``.
    norm
        Normalisation of the branches: ``"batch"``, ``"instance"`` or ``"none"``.
    dropout
        Dropout probability in each branch.
    dilations
        Dilation of each branch (1, 2 and 4: 3x3, 5x5 and 9x9 receptive fields).
    reduction, min_hidden
        Hidden width of the squeeze MLP: ``max(C // reduction, min_hidden)`` (16 and 32 in SK-Net).
    """

    def __init__(
        self,
        channels: int,
        norm: str,
        dropout: float = 0.0,
        dilations: tuple[int, ...] = (1, 2, 4),
        reduction: int = 16,
        min_hidden: int = 32,
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(conv_norm_act(channels, channels, norm, dropout, dilation=d) for d in dilations)
        hidden = _squeeze_width(channels, reduction, min_hidden)
        # No normalisation in the squeeze: batch norm of (B, C, 1, 1) fails for a batch of one in training.
        self.squeeze = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels * len(dilations), kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, K, C, H, W)
        logits = self.squeeze(branches.sum(dim=1).mean(dim=(2, 3), keepdim=True))  # (B, K*C, 1, 1)
        weights = logits.view(branches.shape[:3] + (1, 1)).softmax(dim=1)
        return (weights * branches).sum(dim=1)

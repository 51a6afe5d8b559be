"""Convolution blocks of the U-Nets, in plain PyTorch with MONAI's layer names.

The blocks are those of MONAI's ``BasicUNet`` (``TwoConv``, ``Down``,
``UpCat`` built from ``Convolution`` and ``ADN``), layer for layer and name for
name, so their state-dict keys are MONAI's and weight files trained with
MONAI's blocks load unchanged (a test compares both on the same weights).
They are written out here because importing any part of MONAI imports all of
it (its ``__init__`` loads every submodule: about 1.7 s on 2 cores, as much
as segmenting 20 B-scans with the small U-Net), and the U-Nets are what
``analyze`` runs on every scan.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

#: Values of the ``norm`` option of every U-Net.
NORMS = ("batch", "instance", "none")


def norm_dropout_act(channels: int, norm: str, dropout: float, channel_dropout: bool = False) -> nn.Sequential:
    """Normalisation, dropout, ReLU (MONAI's ``ADN`` in ``"NDA"`` order: modules ``N``, ``D``, ``A``).

    Parameters
    ----------
    channels
        Channels ``C`` of the input and output ``(B, C, H, W)``.
    norm
        ``"batch"``, ``"instance"`` (with learnt affine) or ``"none"``.
    dropout
        Dropout probability; 0 adds no dropout module.
    channel_dropout
        Drop whole feature maps (``nn.Dropout2d``, what MONAI's ``ADN`` does
        when given only ``norm_dim=2``) instead of single activations (what
        its ``Convolution`` does).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if norm == "batch":
        layers["N"] = nn.BatchNorm2d(channels)
    elif norm == "instance":
        layers["N"] = nn.InstanceNorm2d(channels, affine=True)
    if dropout > 0:
        layers["D"] = nn.Dropout2d(dropout) if channel_dropout else nn.Dropout(dropout)
    layers["A"] = nn.ReLU(inplace=True)
    return nn.Sequential(layers)


def conv_norm_act(in_channels: int, out_channels: int, norm: str, dropout: float, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution keeping the size, then :func:`norm_dropout_act` (MONAI's ``Convolution``: ``conv``, ``adn``).

    Maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``.
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation)
    return nn.Sequential(OrderedDict(conv=conv, adn=norm_dropout_act(out_channels, norm, dropout)))


def double_conv(in_channels: int, out_channels: int, norm: str, dropout: float) -> nn.Sequential:
    """Two :func:`conv_norm_act` (MONAI's ``TwoConv``: ``conv_0``, ``conv_1``)."""
    return nn.Sequential(
        OrderedDict(
            conv_0=conv_norm_act(in_channels, out_channels, norm, dropout),
            conv_1=conv_norm_act(out_channels, out_channels, norm, dropout),
        )
    )


def down_block(in_channels: int, out_channels: int, norm: str, dropout: float) -> nn.Sequential:
    """2x2 max-pooling, then :func:`double_conv` (MONAI's ``Down``: ``max_pooling``, ``convs``).

    Maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H // 2, W // 2)``.
    """
    return nn.Sequential(OrderedDict(max_pooling=nn.MaxPool2d(2), convs=double_conv(in_channels, out_channels, norm, dropout)))


class UpCat(nn.Module):
    """2x2 transposed convolution halving the width, concatenation after the skip, :func:`double_conv` (MONAI's ``UpCat``).

    Parameters
    ----------
    in_channels
        Channels of the deeper feature ``(B, in_channels, h, w)``.
    skip_channels
        Channels of the skip ``(B, skip_channels, H, W)``, ``H`` and ``W`` equal to
        ``2h`` and ``2w`` or one more (then the upsampled feature's last row or
        column is repeated, as MONAI does).
    out_channels, norm, dropout
        Of the double convolution; output ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str, dropout: float) -> None:
        super().__init__()
        up_channels = in_channels // 2
        self.upsample = nn.Sequential(OrderedDict(deconv=nn.ConvTranspose2d(in_channels, up_channels, kernel_size=2, stride=2)))
        self.convs = double_conv(skip_channels + up_channels, out_channels, norm, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.upsample(x)
        extra_rows, extra_columns = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
        if extra_rows or extra_columns:
            up = F.pad(up, (0, extra_columns, 0, extra_rows), mode="replicate")
        return self.convs(torch.cat([skip, up], dim=1))

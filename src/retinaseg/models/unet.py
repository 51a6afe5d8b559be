"""U-Net with a configurable number of resolution levels (Ronneberger et al. 2015).

The depth study of the work retinaseg started from compared U-Nets with 2 to 4
levels for fundus vessels; OCT layers usually need 4-5 levels to see the whole
retinal thickness. Built from MONAI's ``BasicUNet`` blocks, written out in
:mod:`retinaseg.models.blocks` (same layers and weight names).
The optional residual shortcut (``residual: true``) is the one of the vessel
report: every double convolution gets a 1x1-projected identity added to it.
"""

from __future__ import annotations

import torch
from torch import nn

from retinaseg.models.blocks import NORMS, UpCat, double_conv, down_block
from retinaseg.models.registry import register_model


class ResidualBlock(nn.Module):
    """``body(x) + shortcut(x)``, the shortcut a 1x1 convolution matching the channels.

    Parameters
    ----------
    body
        Block mapping ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``.
    in_channels, out_channels
        Channels of the block's input and output.
    """

    def __init__(self, body: nn.Module, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = body
        # Every U-Net block changes the width, so the identity always needs a projection.
        self.shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class UNet(nn.Module):
    """2-D U-Net whose width doubles at each of ``depth`` levels.

    Parameters
    ----------
    in_channels
        Image channels (1 for OCT, 1 or 3 for fundus).
    num_classes
        Output channels (one logit map per class).
    depth
        Number of resolution levels, 2-6; ``depth - 1`` max-poolings, so input
        sizes must be multiples of ``2 ** (depth - 1)``.
    base_channels
        Feature maps at the first level.
    norm
        ``"batch"``, ``"instance"`` or ``"none"``.
    dropout
        Dropout probability in every convolution block.
    residual
        Add a 1x1-projected shortcut around every double convolution.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depth: int = 4,
        base_channels: int = 32,
        norm: str = "batch",
        dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if not 2 <= depth <= 6:
            raise ValueError(f"U-Net depth must be 2-6, got {depth}")
        widths = [base_channels * 2**level for level in range(depth)]
        self.stem: nn.Module = double_conv(in_channels, widths[0], norm, dropout)
        self.downs = nn.ModuleList(down_block(widths[i], widths[i + 1], norm, dropout) for i in range(depth - 1))
        self.ups = nn.ModuleList(UpCat(widths[i + 1], widths[i], widths[i], norm, dropout) for i in reversed(range(depth - 1)))
        if residual:
            # Wrapping the blocks keeps the state-dict keys of ``residual: false`` (and its weight files) unchanged.
            self.stem = ResidualBlock(self.stem, in_channels, widths[0])
            for i, down in enumerate(self.downs):
                down.convs = ResidualBlock(down.get_submodule("convs"), widths[i], widths[i + 1])
            for up, i in zip(self.ups, reversed(range(depth - 1)), strict=True):
                up.convs = ResidualBlock(up.get_submodule("convs"), widths[i] + widths[i + 1] // 2, widths[i])
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)


@register_model(
    "unet",
    family="U-Net",
    description="U-Net, 2-6 levels (depth), width doubling per level from base_channels",
    defaults={"depth": 4, "base_channels": 32, "norm": "batch", "dropout": 0.0, "residual": False},
    size_multiple=lambda options: 2 ** (options["depth"] - 1),
    limits={"depth": (2, 6), "base_channels": (1, None), "dropout": (0, 1)},
    choices={"norm": NORMS},
)
def build_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return UNet(in_channels, num_classes, **options)

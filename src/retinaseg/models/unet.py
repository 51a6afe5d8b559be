"""U-Net with a configurable number of resolution levels (Ronneberger et al. 2015).

The depth study of the work retinaseg started from compared U-Nets with 2 to 4
levels for fundus vessels; OCT layers usually need 4-5 levels to see the whole
retinal thickness. Built from MONAI's ``TwoConv``/``Down``/``UpCat`` blocks.
"""

from __future__ import annotations

import torch
from monai.networks.nets.basic_unet import Down, TwoConv, UpCat
from torch import nn

from retinaseg.models.registry import register_model


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
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        depth: int = 4,
        base_channels: int = 32,
        norm: str = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 2 <= depth <= 6:
            raise ValueError(f"U-Net depth must be 2-6, got {depth}")
        act = ("relu", {"inplace": True})
        norm_choice: str | tuple | None = {"batch": "batch", "instance": ("instance", {"affine": True}), "none": None}[norm]
        # MONAI annotates the blocks' norm as str | tuple, but their Convolution takes None: no normalisation.
        norm_arg: str | tuple = norm_choice  # type: ignore[assignment]
        widths = [base_channels * 2**level for level in range(depth)]
        self.stem = TwoConv(2, in_channels, widths[0], act, norm_arg, bias=True, dropout=dropout)
        self.downs = nn.ModuleList(
            Down(2, widths[i], widths[i + 1], act, norm_arg, bias=True, dropout=dropout) for i in range(depth - 1)
        )
        self.ups = nn.ModuleList(
            UpCat(2, widths[i + 1], widths[i], widths[i], act, norm_arg, bias=True, dropout=dropout)
            for i in reversed(range(depth - 1))
        )
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
    defaults={"depth": 4, "base_channels": 32, "norm": "batch", "dropout": 0.0},
    size_multiple=lambda options: 2 ** (options["depth"] - 1),
    limits={"depth": (2, 6), "base_channels": (1, None), "dropout": (0, 1)},
    choices={"norm": ("batch", "instance", "none")},
)
def build_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return UNet(in_channels, num_classes, **options)

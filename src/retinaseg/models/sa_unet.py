"""SA-UNet (Guo et al. 2020): spatial-attention U-Net for retinal vessel segmentation.

"SA-UNet: Spatial Attention U-Net for Retinal Vessel Segmentation", ICPR 2020.
Follows the paper and its official Keras code (``clguo/SA-UNet``): a light U-Net of
4 levels (16, 32, 64, 128 channels) whose convolutions are regularised with
DropBlock, which suits the small fundus data sets better than plain dropout
because neighbouring vessel pixels are strongly correlated, and one spatial
attention module at the bottleneck.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from retinaseg.models.registry import register_model


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi et al. 2018): zeroes random ``block_size x block_size`` squares of each feature map.

    Parameters
    ----------
    drop_prob
        Expected fraction of dropped activations (``1 - keep_prob``).
    block_size
        Side of the dropped squares; reduced to the feature map's shorter side
        on maps smaller than it.

    Notes
    -----
    Maps ``(B, C, H, W)`` to ``(B, C, H, W)``. In training each channel of each
    sample gets its own mask of whole squares lying inside the map, and the kept
    activations are scaled up so that the mean activation is unchanged; in
    evaluation it is the identity.
    """

    def __init__(self, drop_prob: float = 0.1, block_size: int = 7) -> None:
        super().__init__()
        if not 0 <= drop_prob < 1:
            raise ValueError(f"DropBlock drop_prob must be in [0, 1), got {drop_prob}")
        if block_size < 1:
            raise ValueError(f"DropBlock block_size must be >= 1, got {block_size}")
        self.drop_prob = drop_prob
        self.block_size = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0:
            return x
        batch, channels, height, width = x.shape
        size = min(self.block_size, height, width)
        seed_h, seed_w = height - size + 1, width - size + 1
        # Seeds are top-left corners of squares that fit in the map; gamma makes the
        # expected dropped area drop_prob of the map (Ghiasi et al., eq. 1).
        gamma = min(1.0, self.drop_prob * height * width / (size**2 * seed_h * seed_w))
        # The mask stays in float32: a float16 sum of a large mask overflows under mixed precision.
        seeds = torch.bernoulli(torch.full((batch, channels, seed_h, seed_w), gamma, device=x.device))
        # Max-pooling the seeds, padded by size - 1 on every side, marks the size x size square below-right of each seed.
        dropped = F.max_pool2d(F.pad(seeds, (size - 1,) * 4), size, stride=1)
        keep = 1 - dropped
        return x * (keep * (keep.numel() / keep.sum().clamp_min(1))).to(x.dtype)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, block_size={self.block_size}"


class SpatialAttention(nn.Module):
    """Spatial attention (CBAM's spatial half, Woo et al. 2018) as in SA-UNet's bottleneck.

    The channel-wise mean and maximum maps go through a 7 x 7 convolution and a
    sigmoid, and the input is multiplied by the resulting ``(B, 1, H, W)`` map in
    ``[0, 1]``. Maps ``(B, C, H, W)`` to ``(B, C, H, W)``.
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        # No bias, as in the official code.
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention map ``(B, 1, H, W)``, values in ``[0, 1]``, of ``x``, ``(B, C, H, W)``."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class ConvDropBlock(nn.Sequential):
    """Convolution 3 x 3 → DropBlock → batch norm → ReLU, ``(B, in, H, W)`` to ``(B, out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int, drop_prob: float, block_size: int) -> None:
        super().__init__(
            # Batch norm follows, so a convolution bias would only be cancelled by its mean.
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            DropBlock2d(drop_prob, block_size),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SAUNet(nn.Module):
    """SA-UNet: 4-level U-Net of DropBlock-regularised convolutions with spatial attention at the bottleneck.

    Parameters
    ----------
    in_channels
        Image channels (3 for colour fundus, 1 for the green channel).
    num_classes
        Output channels (one logit map per class).
    base_channels
        Feature maps at the first level, doubled at each of the 3 lower levels.
    block_size
        DropBlock square side.
    drop_prob
        DropBlock drop probability (the paper's ``keep_prob`` 0.9 is 0.1).

    Notes
    -----
    Input ``(B, in_channels, H, W)`` with ``H`` and ``W`` multiples of 8 (three
    2 x 2 poolings); output ``(B, num_classes, H, W)`` logits.
    """

    def __init__(
        self, in_channels: int, num_classes: int, base_channels: int = 16, block_size: int = 7, drop_prob: float = 0.1
    ) -> None:
        super().__init__()
        widths = [base_channels * 2**level for level in range(4)]

        def block(channels_in: int, channels_out: int) -> ConvDropBlock:
            return ConvDropBlock(channels_in, channels_out, drop_prob, block_size)

        self.encoders = nn.ModuleList(
            nn.Sequential(block(c_in, c_out), block(c_out, c_out)) for c_in, c_out in zip([in_channels, *widths[:2]], widths[:3])
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = nn.Sequential(block(widths[2], widths[3]), SpatialAttention(), block(widths[3], widths[3]))
        # Transposed 3 x 3 convolutions with stride 2 double the size, as Keras' Conv2DTranspose(padding="same") does.
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose2d(widths[level + 1], widths[level], 3, stride=2, padding=1, output_padding=1)
            for level in reversed(range(3))
        )
        self.decoders = nn.ModuleList(
            nn.Sequential(block(2 * widths[level], widths[level]), block(widths[level], widths[level]))
            for level in reversed(range(3))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, H, W)`` of ``x``, ``(B, in_channels, H, W)``."""
        skips = []
        for encoder in self.encoders:
            skips.append(encoder(x))
            x = self.pool(skips[-1])
        x = self.bottleneck(x)
        for upsample, decoder in zip(self.upsamples, self.decoders):
            x = decoder(torch.cat([skips.pop(), upsample(x)], dim=1))
        return self.head(x)


@register_model(
    "sa_unet",
    family="U-Net (SA-UNet)",
    description="SA-UNet (Guo et al. 2020): 4-level U-Net with DropBlock and bottleneck spatial attention, for vessels",
    defaults={"base_channels": 16, "block_size": 7, "drop_prob": 0.1},
    size_multiple=lambda options: 8,
    limits={"base_channels": (1, None), "block_size": (1, None), "drop_prob": (0, 0.99)},
)
def build_sa_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return SAUNet(in_channels, num_classes, **options)

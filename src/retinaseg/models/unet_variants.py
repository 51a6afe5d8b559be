"""The fundus-vessel U-Net variants of the work retinaseg started from.

All three share :class:`~retinaseg.models.unet.UNet`'s skeleton: ``depth``
levels whose width doubles from ``base_channels``, 2x2 max-pooling down,
2x2 transposed convolutions (halving the width) up, and the same options
(``depth`` 2-6, ``base_channels``, ``norm``, ``dropout``). Their designs:

``cbam_unet``
    Encoder of double convolutions. A CBAM (channel then spatial
    attention, :class:`~retinaseg.models.attention_blocks.CBAM`) refines the
    bottleneck before the decoder. Coarse/fine aggregation: decoder level
    ``l`` concatenates the upsampled decoder feature with the fine feature
    (encoder level ``l``, the usual skip) and a coarse one (encoder level
    ``l + 1``, projected by a 1x1 convolution to level ``l``'s width and
    bilinearly upsampled), then applies a double convolution. The coarse
    features are the encoder's own, before the bridge's attention.
``cmp_unet``
    Every encoder level is a 3x3 convolution followed by a multi-scale
    channel-adaptive fusion (:class:`~retinaseg.models.attention_blocks.MultiScaleChannelFusion`:
    dilations 1/2/4, SK-style softmax over the branches per channel).
    Plain U-Net decoder; pyramid feature fusion: every decoder level's output
    is projected by a 1x1 convolution to ``base_channels``, bilinearly
    upsampled to full size, concatenated and fused by a 3x3
    convolution-norm-ReLU before the 1x1 classifier.
``deform_unet``
    The inner levels' double convolutions (encoder levels 1 to ``depth - 1``,
    decoder levels ``depth - 2`` to 1) use deformable convolutions v1
    (:class:`~retinaseg.models.deform.DeformConv2d`); the full-resolution
    blocks stay regular, since there offsets would chase noise rather than
    follow vessels. Zero-initialised offsets: the network starts as a U-Net.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from retinaseg.models.attention_blocks import CBAM, MultiScaleChannelFusion
from retinaseg.models.blocks import NORMS, conv_norm_act, double_conv, norm_dropout_act
from retinaseg.models.deform import DeformConv2d
from retinaseg.models.registry import register_model

#: ``block(in_channels, out_channels)``: a module keeping the height and width.
BlockFactory = Callable[[int, int], nn.Module]


def _widths(depth: int, base_channels: int) -> list[int]:
    """Feature maps per level, doubling from ``base_channels``; refuses depths outside 2-6."""
    if not 2 <= depth <= 6:
        raise ValueError(f"U-Net depth must be 2-6, got {depth}")
    return [base_channels * 2**level for level in range(depth)]


def _double_conv(norm: str, dropout: float) -> BlockFactory:
    """The double 3x3 convolution block of :class:`~retinaseg.models.unet.UNet`."""
    return lambda in_channels, out_channels: double_conv(in_channels, out_channels, norm, dropout)


def _encoder(in_channels: int, widths: Sequence[int], block: Callable[[int, int, int], nn.Module]) -> nn.ModuleList:
    """Level 0 ``block(0, in_channels, widths[0])``, then per level max-pooling and ``block(level, ...)``."""
    levels = [block(0, in_channels, widths[0])]
    levels += [nn.Sequential(nn.MaxPool2d(2), block(i + 1, widths[i], widths[i + 1])) for i in range(len(widths) - 1)]
    return nn.ModuleList(levels)


def _encode(levels: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of every encoder level, finest first: ``(B, widths[l], H / 2**l, W / 2**l)``."""
    features = []
    for level in levels:
        x = level(x)
        features.append(x)
    return features


class UpBlock(nn.Module):
    """2x2 transposed convolution halving the width, concatenation with skips, then ``block``.

    Parameters
    ----------
    in_channels
        Channels of the deeper feature ``(B, in_channels, h, w)``.
    block
        Applied to the concatenation ``(B, in_channels // 2 + sum of skip channels, 2h, 2w)``.
    """

    def __init__(self, in_channels: int, block: nn.Module) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.block = block

    def forward(self, x: torch.Tensor, *skips: torch.Tensor) -> torch.Tensor:
        return self.block(torch.cat([self.upsample(x), *skips], dim=1))


class CBAMUNet(nn.Module):
    """U-Net with coarse/fine skip aggregation and a CBAM bridge (design in the module notes).

    Parameters
    ----------
    in_channels, num_classes
        Channels of the input ``(B, in_channels, H, W)`` and of the logits ``(B, num_classes, H, W)``;
        ``H`` and ``W`` multiples of ``2 ** (depth - 1)``.
    depth, base_channels, norm, dropout
        As for :class:`~retinaseg.models.unet.UNet`.
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
        widths = _widths(depth, base_channels)
        block = _double_conv(norm, dropout)
        self.encoder = _encoder(in_channels, widths, lambda level, cin, cout: block(cin, cout))
        self.bridge = CBAM(widths[-1])
        levels = list(reversed(range(depth - 1)))
        self.coarse = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], kernel_size=1) for i in levels)
        # Upsampled decoder feature, fine skip and coarse skip: three times the level's width.
        self.decoder = nn.ModuleList(UpBlock(widths[i + 1], block(3 * widths[i], widths[i])) for i in levels)
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = _encode(self.encoder, x)
        y = self.bridge(features[-1])
        for level, coarse, up in zip(reversed(range(len(features) - 1)), self.coarse, self.decoder, strict=True):
            # Projecting before upsampling is cheaper and equal: both are linear and bilinear weights sum to one.
            deeper = F.interpolate(coarse(features[level + 1]), scale_factor=2, mode="bilinear", align_corners=False)
            y = up(y, features[level], deeper)
        return self.head(y)


class CMPUNet(nn.Module):
    """U-Net with multi-scale channel-adaptive encoder levels and pyramid decoder fusion (module notes).

    Parameters
    ----------
    in_channels, num_classes
        Channels of the input ``(B, in_channels, H, W)`` and of the logits ``(B, num_classes, H, W)``;
        ``H`` and ``W`` multiples of ``2 ** (depth - 1)``.
    depth, base_channels, norm, dropout
        As for :class:`~retinaseg.models.unet.UNet`.
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
        widths = _widths(depth, base_channels)

        def fusion_level(level: int, cin: int, cout: int) -> nn.Module:
            return nn.Sequential(conv_norm_act(cin, cout, norm, dropout), MultiScaleChannelFusion(cout, norm, dropout))

        self.encoder = _encoder(in_channels, widths, fusion_level)
        block = _double_conv(norm, dropout)
        levels = list(reversed(range(depth - 1)))
        self.decoder = nn.ModuleList(UpBlock(widths[i + 1], block(2 * widths[i], widths[i])) for i in levels)
        self.pyramid = nn.ModuleList(nn.Conv2d(widths[i], widths[0], kernel_size=1) for i in levels)
        self.fuse = conv_norm_act(len(levels) * widths[0], widths[0], norm, dropout)
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = _encode(self.encoder, x)
        y = features[-1]
        pyramid = []
        for level, up, project in zip(reversed(range(len(features) - 1)), self.decoder, self.pyramid, strict=True):
            y = up(y, features[level])
            # Projected first, then upsampled: the same result as the reverse order at a fraction of the cost.
            side = project(y)
            pyramid.append(
                side if level == 0 else F.interpolate(side, scale_factor=2**level, mode="bilinear", align_corners=False)
            )
        return self.head(self.fuse(torch.cat(pyramid, dim=1)))


class DeformableDoubleConv(nn.Sequential):
    """Two deformable 3x3 convolutions, each followed by norm, dropout and ReLU.

    Maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: str, dropout: float) -> None:
        layers: list[nn.Module] = []
        for cin in (in_channels, out_channels):
            layers.append(DeformConv2d(cin, out_channels, kernel_size=3, padding=1))
            layers.append(norm_dropout_act(out_channels, norm, dropout, channel_dropout=True))
        super().__init__(*layers)


class DeformUNet(nn.Module):
    """U-Net whose inner levels use deformable convolutions (module notes).

    Parameters
    ----------
    in_channels, num_classes
        Channels of the input ``(B, in_channels, H, W)`` and of the logits ``(B, num_classes, H, W)``;
        ``H`` and ``W`` multiples of ``2 ** (depth - 1)``.
    depth, base_channels, norm, dropout
        As for :class:`~retinaseg.models.unet.UNet`.
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
        widths = _widths(depth, base_channels)
        regular = _double_conv(norm, dropout)

        def level_block(level: int, cin: int, cout: int) -> nn.Module:
            return regular(cin, cout) if level == 0 else DeformableDoubleConv(cin, cout, norm, dropout)

        self.encoder = _encoder(in_channels, widths, level_block)
        self.decoder = nn.ModuleList(
            UpBlock(widths[i + 1], level_block(i, 2 * widths[i], widths[i])) for i in reversed(range(depth - 1))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = _encode(self.encoder, x)
        y = features[-1]
        for level, up in zip(reversed(range(len(features) - 1)), self.decoder, strict=True):
            y = up(y, features[level])
        return self.head(y)


_DEFAULTS = {"depth": 4, "base_channels": 32, "norm": "batch", "dropout": 0.0}
_LIMITS: dict[str, tuple[float | None, float | None]] = {"depth": (2, 6), "base_channels": (1, None), "dropout": (0, 1)}
_CHOICES: dict[str, tuple[str, ...]] = {"norm": NORMS}


def _size_multiple(options: dict) -> int:
    return 2 ** (options["depth"] - 1)


@register_model(
    "cbam_unet",
    family="U-Net",
    description="U-Net with coarse/fine skip aggregation and a CBAM attention bridge (fundus vessels)",
    defaults=_DEFAULTS,
    size_multiple=_size_multiple,
    limits=_LIMITS,
    choices=_CHOICES,
)
def build_cbam_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return CBAMUNet(in_channels, num_classes, **options)


@register_model(
    "cmp_unet",
    family="U-Net",
    description="U-Net with multi-scale channel-adaptive (dilated 1/2/4) encoder and pyramid decoder fusion (fundus vessels)",
    defaults=_DEFAULTS,
    size_multiple=_size_multiple,
    limits=_LIMITS,
    choices=_CHOICES,
)
def build_cmp_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return CMPUNet(in_channels, num_classes, **options)


@register_model(
    "deform_unet",
    family="U-Net",
    description="U-Net with deformable convolutions (v1) in its inner levels (fundus vessels)",
    defaults=_DEFAULTS,
    size_multiple=_size_multiple,
    limits=_LIMITS,
    choices=_CHOICES,
)
def build_deform_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return DeformUNet(in_channels, num_classes, **options)

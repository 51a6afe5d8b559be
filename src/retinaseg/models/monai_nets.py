"""MONAI's 2-D segmentation networks, registered under retinaseg names."""

from __future__ import annotations

from monai.networks.nets import AttentionUnet, BasicUNet, DynUNet
from torch import nn

from retinaseg.models.registry import register_model


@register_model(
    "basic_unet",
    family="U-Net (MONAI)",
    description="MONAI BasicUNet: 5 levels, instance norm, LeakyReLU",
    defaults={"features": [32, 32, 64, 128, 256, 32], "dropout": 0.0},
    size_multiple=lambda options: 16,
)
def build_basic_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return BasicUNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        features=tuple(options["features"]),
        dropout=options["dropout"],
    )


@register_model(
    "attention_unet",
    family="U-Net (MONAI)",
    description="MONAI AttentionUnet (Oktay et al. 2018): attention-gated skip connections",
    defaults={"channels": [16, 32, 64, 128, 256], "dropout": 0.0},
    size_multiple=lambda options: 2 ** (len(options["channels"]) - 1),
)
def build_attention_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    channels = list(options["channels"])
    return AttentionUnet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        channels=channels,
        strides=[2] * (len(channels) - 1),
        dropout=options["dropout"],
    )


@register_model(
    "dynunet",
    family="U-Net (MONAI)",
    description="MONAI DynUNet (nnU-Net style): residual blocks, instance norm",
    defaults={"filters": [32, 64, 128, 256, 320], "res_block": True},
    size_multiple=lambda options: 2 ** (len(options["filters"]) - 1),
)
def build_dynunet(in_channels: int, num_classes: int, **options) -> nn.Module:
    levels = len(options["filters"])
    return DynUNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        kernel_size=[3] * levels,
        strides=[1] + [2] * (levels - 1),
        upsample_kernel_size=[2] * (levels - 1),
        filters=list(options["filters"]),
        res_block=options["res_block"],
    )

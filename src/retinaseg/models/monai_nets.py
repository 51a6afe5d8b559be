"""MONAI's 2-D segmentation networks, registered under retinaseg names."""

from __future__ import annotations

import torch
from monai.networks.nets import AttentionUnet, BasicUNet, DynUNet, FlexibleUNet, SegResNet, SwinUNETR
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


@register_model(
    "segresnet",
    family="MONAI",
    description="MONAI SegResNet (Myronenko 2018): residual encoder, light decoder, group norm",
    defaults={"init_filters": 8, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1], "dropout": 0.0},
    size_multiple=lambda options: 2 ** (len(options["blocks_down"]) - 1),
    limits={"init_filters": (1, None), "blocks_down": (1, None), "blocks_up": (1, None), "dropout": (0, 1)},
)
def build_segresnet(in_channels: int, num_classes: int, **options) -> nn.Module:
    # SegResNet builds whatever it is given; a decoder of another length would not meet the encoder's sizes.
    if len(options["blocks_up"]) != len(options["blocks_down"]) - 1:
        raise ValueError(f"blocks_up needs len(blocks_down) - 1 = {len(options['blocks_down']) - 1} entries")
    return SegResNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        init_filters=options["init_filters"],
        blocks_down=tuple(options["blocks_down"]),
        blocks_up=tuple(options["blocks_up"]),
        dropout_prob=options["dropout"],
    )


@register_model(
    "swin_unetr",
    family="MONAI",
    description="MONAI SwinUNETR (Hatamizadeh et al. 2022): Swin transformer encoder, convolutional decoder",
    defaults={"feature_size": 24, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24], "drop_path": 0.0, "use_v2": False},
    # Patch embedding (2) and four patch mergings: 2 ** 5.
    size_multiple=lambda options: 32,
    limits={"feature_size": (12, None), "depths": (1, None), "num_heads": (1, None), "drop_path": (0, 1)},
)
def build_swin_unetr(in_channels: int, num_classes: int, **options) -> nn.Module:
    if len(options["depths"]) != 4 or len(options["num_heads"]) != 4:
        raise ValueError("SwinUNETR has 4 stages: depths and num_heads need 4 entries each")
    # SwinUNETR reads its drop-path rates with Tensor.item(), which the meta-device trial build of
    # check_model_options cannot do; that build is made on the CPU instead.
    device = torch.get_default_device()
    with torch.device("cpu" if device.type == "meta" else device):
        return SwinUNETR(
            in_channels=in_channels,
            out_channels=num_classes,
            spatial_dims=2,
            feature_size=options["feature_size"],
            depths=tuple(options["depths"]),
            num_heads=tuple(options["num_heads"]),
            dropout_path_rate=options["drop_path"],
            use_v2=options["use_v2"],
        )


#: FlexibleUNet encoders that MONAI defines itself: no torchvision, no download (pretrained=False).
FLEXIBLE_UNET_BACKBONES = ("resnet10", "resnet18", "resnet34", "resnet50") + tuple(f"efficientnet-b{k}" for k in range(4))


@register_model(
    "flexible_unet",
    family="MONAI",
    description="MONAI FlexibleUNet: ResNet or EfficientNet encoder (untrained) with a U-Net decoder",
    defaults={"backbone": "resnet34", "decoder_channels": [256, 128, 64, 32, 16], "dropout": 0.0},
    # Every backbone downsamples 5 times.
    size_multiple=lambda options: 32,
    limits={"decoder_channels": (1, None), "dropout": (0, 1)},
    choices={"backbone": FLEXIBLE_UNET_BACKBONES},
)
def build_flexible_unet(in_channels: int, num_classes: int, **options) -> nn.Module:
    if len(options["decoder_channels"]) != 5:
        raise ValueError("FlexibleUNet's decoder has 5 stages: decoder_channels needs 5 entries")
    return FlexibleUNet(
        in_channels=in_channels,
        out_channels=num_classes,
        backbone=options["backbone"],
        pretrained=False,
        decoder_channels=tuple(options["decoder_channels"]),
        spatial_dims=2,
        dropout=options["dropout"],
    )

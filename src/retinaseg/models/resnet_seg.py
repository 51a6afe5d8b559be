"""FCN (Long et al. 2015) and DeepLabV3 (Chen et al. 2017) on a dilated ResNet-50/101, as torchvision builds them.

Module names follow torchvision's segmentation models (``backbone``,
``classifier``, ``aux_classifier``), so the networks have torchvision's
parameter counts and layout; ``backbone_weights`` loads an ImageNet ResNet
state dict saved from torchvision into the backbone.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from retinaseg.errors import InputError
from retinaseg.models.registry import register_model
from retinaseg.models.resnet import DilatedResNet, load_backbone_weights

#: Stem width of torchvision's ResNet, the only one its weights fit.
TORCHVISION_WIDTH = 64


class FCNHead(nn.Sequential):
    """3x3 convolution to a quarter of the channels, BN, ReLU, dropout 0.1, 1x1 convolution to the classes.

    Maps ``(B, in_channels, h, w)`` features to ``(B, num_classes, h, w)`` logits.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        inner = in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, inner, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(inner),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(inner, num_classes, kernel_size=1),
        )


class ASPPConv(nn.Sequential):
    """3x3 convolution of dilation ``rate``, BN, ReLU: ``(B, in_channels, h, w) -> (B, out_channels, h, w)``."""

    def __init__(self, in_channels: int, out_channels: int, rate: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=rate, dilation=rate, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )


class ASPPPooling(nn.Sequential):
    """Image-level features: global average, 1x1 convolution, BN, ReLU, spread back over ``(h, w)``.

    Maps ``(B, in_channels, h, w)`` to ``(B, out_channels, h, w)``. Its batch
    norm sees one value per image and channel, so training needs batches of
    at least 2 images.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: a 1x1 branch, one dilated 3x3 branch per rate and image pooling, projected.

    Maps ``(B, in_channels, h, w)`` to ``(B, out_channels, h, w)``; the
    projection ends in dropout 0.5.
    """

    def __init__(self, in_channels: int, rates: tuple[int, ...] = (12, 24, 36), out_channels: int = 256) -> None:
        super().__init__()
        branches: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU()
            )
        ]
        branches += [ASPPConv(in_channels, out_channels, rate) for rate in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Dropout(0.5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))


class DeepLabHead(nn.Sequential):
    """ASPP (rates 12, 24, 36), 3x3 convolution, BN, ReLU, 1x1 convolution to the classes.

    Maps ``(B, in_channels, h, w)`` features to ``(B, num_classes, h, w)``
    logits; ASPP and the 3x3 convolution have ``in_channels / 8`` channels
    (torchvision's 256 on ResNet's 2048).
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        inner = in_channels // 8
        super().__init__(
            ASPP(in_channels, out_channels=inner),
            nn.Conv2d(inner, inner, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(inner),
            nn.ReLU(),
            nn.Conv2d(inner, num_classes, kernel_size=1),
        )


class ResNetSegmenter(nn.Module):
    """A dilated ResNet backbone, a head on its last features, logits upsampled bilinearly to the input size.

    Parameters
    ----------
    backbone
        Output stride 8; input ``(B, C, H, W)`` with ``H, W`` multiples of 8.
    classifier
        Head on the backbone's ``layer4`` features.
    aux_classifier
        Head on the ``layer3`` features, as torchvision's ``aux_loss=True``
        models have, or ``None``. :meth:`forward` returns the main logits
        only, so this head is not trained by a loss on them; it is here for
        torchvision's layout and parameter count (its weights load from a
        torchvision checkpoint of the whole model).
    freeze_backbone
        Keep the backbone as loaded: its parameters get ``requires_grad=False``
        and :meth:`train` leaves its batch norms in eval mode, so their
        running statistics stay those of the weights too.

    Notes
    -----
    :meth:`forward` maps ``(B, C, H, W)`` to ``(B, num_classes, H, W)`` logits.
    """

    def __init__(
        self, backbone: DilatedResNet, classifier: nn.Module, aux_classifier: nn.Module | None, freeze_backbone: bool
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        self.aux_classifier = aux_classifier
        self.freeze_backbone = freeze_backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> ResNetSegmenter:
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, features = self.backbone(x)
        return F.interpolate(self.classifier(features), size=x.shape[-2:], mode="bilinear", align_corners=False)


_HEADS = {"fcn": FCNHead, "deeplabv3": DeepLabHead}

_DEFAULTS = {"backbone_weights": "", "freeze_backbone": False, "aux_head": False, "width": TORCHVISION_WIDTH}


def build_resnet_segmenter(
    head: str,
    depth: int,
    in_channels: int,
    num_classes: int,
    backbone_weights: str = "",
    freeze_backbone: bool = False,
    aux_head: bool = False,
    width: int = TORCHVISION_WIDTH,
) -> ResNetSegmenter:
    """``head`` (``"fcn"`` or ``"deeplabv3"``) on a dilated ResNet-``depth`` of stem ``width``.

    ``backbone_weights``: a torchvision ResNet state dict to start the
    backbone from ("" = none; see :func:`load_backbone_weights`).

    Raises
    ------
    InputError
        Naming ``model.options.width``: weights asked for at another width
        than torchvision's 64. From :func:`load_backbone_weights`: an unusable
        weight file or channel count.
    """
    if backbone_weights and width != TORCHVISION_WIDTH:
        raise InputError("model.options.width", f"must be {TORCHVISION_WIDTH} (torchvision's ResNet) to load backbone_weights")
    backbone = DilatedResNet(depth, in_channels, width)
    if backbone_weights:
        load_backbone_weights(backbone, backbone_weights)
    aux_classifier = FCNHead(backbone.layer3_channels, num_classes) if aux_head else None
    classifier = _HEADS[head](backbone.layer4_channels, num_classes)
    return ResNetSegmenter(backbone, classifier, aux_classifier, freeze_backbone)


# Parameters for 21 classes and 3 channels, with / without the auxiliary head (torchvision documents the former).
_VARIANTS = (
    ("fcn", 50, "35.3 M parameters with aux_head, 33.0 M without"),
    ("fcn", 101, "54.3 M parameters with aux_head, 51.9 M without"),
    ("deeplabv3", 50, "42.0 M parameters with aux_head, 39.6 M without"),
    ("deeplabv3", 101, "61.0 M parameters with aux_head, 58.6 M without"),
)

for _head, _depth, _parameters in _VARIANTS:
    register_model(
        f"{_head}_resnet{_depth}",
        family="FCN" if _head == "fcn" else "DeepLab",
        description=f"{'FCN' if _head == 'fcn' else 'DeepLabV3'} on dilated ResNet-{_depth}, output stride 8, "
        f"torchvision's layout: {_parameters} (21 classes)",
        defaults=_DEFAULTS,
        size_multiple=lambda options: 8,
        min_batch_size=(lambda options: 2) if _head == "deeplabv3" else None,
        limits={"width": (1, None)},
    )(partial(build_resnet_segmenter, _head, _depth))

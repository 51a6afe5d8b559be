"""Dilated ResNet bottleneck backbone, laid out as torchvision's ResNet so its ImageNet weights load.

Built as torchvision's segmentation models build it
(``replace_stride_with_dilation=[False, True, True]``): the last two stages
keep the resolution of the second and dilate their 3x3 convolutions instead,
for an output stride of 8. Parameter and buffer names are torchvision's
(``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), and
:func:`load_backbone_weights` reads a state dict saved from torchvision.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from retinaseg.models.backbone_weights import read_torchvision_weights

#: Bottleneck blocks per stage.
RESNET_LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (strided or dilated), 1x1 expand by 4, plus the shortcut.

    Parameters
    ----------
    in_channels
        Channels of the input ``(B, in_channels, H, W)``.
    planes
        Channels of the 3x3 convolution; the output has ``4 * planes``.
    stride
        Stride of the 3x3 convolution (as torchvision, not of the first 1x1):
        the output is ``(B, 4 * planes, H / stride, W / stride)``.
    dilation
        Dilation (and padding) of the 3x3 convolution.
    downsample
        Projection of the shortcut when shape changes, else ``None`` (identity).
    """

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class DilatedResNet(nn.Module):
    """ResNet-50/101 trunk without its classifier, output stride 8.

    Parameters
    ----------
    depth
        50 (stages of 3, 4, 6, 3 blocks) or 101 (3, 4, 23, 3).
    in_channels
        Channels of the first convolution (3 for ImageNet weights).
    width
        Channels of the stem; every stage scales with it. 64 is torchvision's
        ResNet (and its weights); smaller widths are for quick tests.

    Attributes
    ----------
    depth
        50 or 101.
    layer3_channels, layer4_channels
        Channels of the two feature maps :meth:`forward` returns
        (1024 and 2048 at width 64).

    Notes
    -----
    :meth:`forward` takes ``(B, in_channels, H, W)`` with ``H, W`` multiples
    of 8 and returns the features of ``layer3`` ``(B, layer3_channels, H/8, W/8)``
    (for an auxiliary head) and of ``layer4`` ``(B, layer4_channels, H/8, W/8)``.
    """

    def __init__(self, depth: int = 50, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        blocks = RESNET_LAYERS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._channels = width
        self._dilation = 1
        self.layer1 = self._make_layer(width, blocks[0], stride=1, dilate=False)
        self.layer2 = self._make_layer(2 * width, blocks[1], stride=2, dilate=False)
        self.layer3 = self._make_layer(4 * width, blocks[2], stride=2, dilate=True)
        self.layer4 = self._make_layer(8 * width, blocks[3], stride=2, dilate=True)
        self.layer3_channels = 4 * width * Bottleneck.expansion
        self.layer4_channels = 8 * width * Bottleneck.expansion
        # torchvision's initialisation, so an untrained backbone starts where torchvision's does.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        """One stage; a dilated stage trades its stride for dilation, from its second block on (as torchvision)."""
        previous_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        out_channels = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self._channels != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self._channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        layers = [Bottleneck(self._channels, planes, stride, previous_dilation, downsample)]
        self._channels = out_channels
        layers += [Bottleneck(out_channels, planes, dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        features3 = self.layer3(x)
        return features3, self.layer4(features3)


def load_backbone_weights(backbone: DilatedResNet, path: str | os.PathLike[str]) -> None:
    """Load a torchvision ResNet state dict (an ImageNet ``.pth``) into ``backbone``.

    The classifier (``fc.*``) is ignored; a grey backbone gets the sum of the
    RGB filters (:func:`~retinaseg.models.backbone_weights.read_torchvision_weights`,
    which also lists what is refused). On the meta device the file is
    checked but nothing is copied.
    """
    state = read_torchvision_weights(
        path,
        backbone.state_dict(),
        name=f"torchvision ResNet-{backbone.depth} weights",
        first_conv="conv1.weight",
        keep=lambda key: not key.startswith("fc."),
    )
    if backbone.conv1.weight.is_meta:
        return  # a trial build on the meta device (no memory): the file is checked, there is nothing to copy into
    # Not strict: only the optional ``num_batches_tracked`` may be missing, checked above.
    backbone.load_state_dict(state, strict=False)

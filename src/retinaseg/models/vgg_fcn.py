"""VGG16 encoders: FCN-8s (Long et al. 2015) and a VGG16 encoder with a transposed-convolution decoder.

Both share :class:`VGG16Features`, VGG16's convolutional part (Simonyan and
Zisserman 2015, configuration D) with the parameter names of torchvision's
``features`` module, so that ImageNet weights saved by torchvision
(``vgg16-397923af.pth``) load with ``model.options.backbone_weights``.

Parameter counts (3 input channels, 21 classes; ``retinaseg models`` shows them
for the configured channels and classes):

- ``fcn8s``: 134.38 M with the published fc6/fc7 width 4096 (Long et al. report
  ~134 M); VGG16 features 14.71 M, fc6 102.76 M, fc7 16.78 M, score and
  upsampling layers 0.12 M.
- ``vgg16_fcn``: 17.52 M; VGG16 features 14.71 M, decoder and head 2.80 M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from retinaseg.errors import InputError
from retinaseg.models.backbone_weights import WEIGHTS_OPTION, read_torchvision_weights
from retinaseg.models.registry import register_model

#: VGG16 (configuration D): output channels of each 3x3 convolution, ``"M"`` a 2x2 max-pooling.
VGG16_LAYERS: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

#: Index in :attr:`VGG16Features.features` of the max-poolings to strides 8, 16 and 32 (pool3, pool4, pool5).
_POOL_INDICES = (16, 23, 30)


class VGG16Features(nn.Module):
    """VGG16's 13 convolutions with ReLU and 5 max-poolings, named as torchvision's ``vgg16().features``.

    Parameters
    ----------
    in_channels
        Image channels. ImageNet weights (:meth:`load_torchvision_weights`)
        need 1 or 3.
    width
        Channels of the first stage, ``w``: 64 in VGG16; every stage scales
        with it (``w``, ``2w``, ``4w``, ``8w``, ``8w``). Other widths keep the
        layout for small test networks; ImageNet weights need 64.

    Notes
    -----
    Input ``(B, in_channels, H, W)`` with ``H``, ``W`` multiples of 32;
    :meth:`forward` returns pool3 ``(B, 4w, H/8, W/8)``, pool4
    ``(B, 8w, H/16, W/16)`` and pool5 ``(B, 8w, H/32, W/32)``.
    """

    def __init__(self, in_channels: int, width: int = 64) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.width = width
        layers: list[nn.Module] = []
        channels = in_channels
        for item in VGG16_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                out_channels = item * width // 64
                layers += [nn.Conv2d(channels, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = out_channels
        # The attribute name gives torchvision's parameter names: features.0.weight ... features.28.bias.
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pools = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _POOL_INDICES:
                pools.append(x)
        pool3, pool4, pool5 = pools
        return pool3, pool4, pool5

    def load_torchvision_weights(self, path: str) -> None:
        """Copy the ``features.*`` weights of a torchvision VGG16 file into these layers.

        Other keys (torchvision's ``classifier.*``) are ignored; a grey
        network gets the sum of the RGB filters
        (:func:`~retinaseg.models.backbone_weights.read_torchvision_weights`,
        which also lists what is refused: ``vgg16_bn`` and other depths among
        them). Torchvision's weights expect ImageNet-normalised RGB;
        fine-tuning adapts them to retinaseg's per-image normalisation.

        Raises
        ------
        InputError
            Naming ``model.options.backbone_weights``: a width other than 64.
            Otherwise as ``read_torchvision_weights``.
        """
        if self.width != 64:
            raise InputError(WEIGHTS_OPTION, f"ImageNet VGG16 weights need width 64, got {self.width}")
        found = read_torchvision_weights(
            path,
            {f"features.{key}": value for key, value in self.features.state_dict().items()},
            name="torchvision VGG16 weights (configuration D, no batch norm)",
            first_conv="features.0.weight",
            keep=lambda key: key.startswith("features."),
        )
        with torch.no_grad():
            # copy_ rather than load_state_dict: on the meta device (check_model_options) it is a silent no-op.
            for key, parameter in self.features.named_parameters():
                parameter.copy_(found[f"features.{key}"])


def _backbone(in_channels: int, width: int, backbone_weights: str, freeze_backbone: bool) -> VGG16Features:
    """A :class:`VGG16Features`, with the ImageNet weights of ``backbone_weights`` (unless ``""``), frozen on request."""
    backbone = VGG16Features(in_channels, width)
    if backbone_weights:
        backbone.load_torchvision_weights(backbone_weights)
    elif freeze_backbone:
        # Frozen random filters are never what is wanted: most likely the weight file was forgotten.
        raise InputError("model.options.freeze_backbone", f"freezes random weights: set {WEIGHTS_OPTION} too")
    backbone.requires_grad_(not freeze_backbone)
    return backbone


def _bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """``(channels, channels, k, k)`` transposed-convolution weights that upsample each channel bilinearly."""
    factor = (kernel_size + 1) // 2
    centre = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    # On the CPU whatever the default device: arange on the meta device first imports PyTorch's refs (seconds).
    ramp = 1 - (torch.arange(kernel_size, dtype=torch.float32, device="cpu") - centre).abs() / factor
    weight = torch.zeros(channels, channels, kernel_size, kernel_size, device="cpu")
    weight[range(channels), range(channels)] = ramp[:, None] * ramp[None, :]
    return weight


class FCN8s(nn.Module):
    """FCN-8s (Long et al., CVPR 2015): VGG16, fc6/fc7 as convolutions, scores fused at strides 32, 16 and 8.

    Parameters
    ----------
    in_channels
        Image channels.
    num_classes
        Output channels (one logit map per class).
    fc_channels
        Width of fc6/fc7; 4096 as published. Smaller widths keep the layout
        at a fraction of fc6's 103 M parameters.
    dropout
        Dropout probability after fc6 and fc7 (0.5 as published).
    width
        VGG16's first-stage width (64); see :class:`VGG16Features`.
    backbone_weights, freeze_backbone
        See :meth:`VGG16Features.load_torchvision_weights`; ``""``: random
        initialisation.

    Notes
    -----
    Input ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of 32; output
    ``(B, num_classes, H, W)``. The published network pads conv1_1 by 100
    pixels and crops after each upsampling to realign the maps; here fc6 is
    padded by 3 ("same") and every 2x upsampling is exact, so for multiples
    of 32 the maps align without crops. The 2x upsamplings are transposed
    convolutions initialised to bilinear and learned, the final 8x is fixed
    bilinear interpolation, and the score layers start at zero, as in the paper.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        fc_channels: int = 4096,
        dropout: float = 0.5,
        width: int = 64,
        backbone_weights: str = "",
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = _backbone(in_channels, width, backbone_weights, freeze_backbone)
        self.fc = nn.Sequential(
            nn.Conv2d(8 * width, fc_channels, kernel_size=7, padding=3),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(fc_channels, fc_channels, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.score_fr = nn.Conv2d(fc_channels, num_classes, kernel_size=1)
        self.score_pool4 = nn.Conv2d(8 * width, num_classes, kernel_size=1)
        self.score_pool3 = nn.Conv2d(4 * width, num_classes, kernel_size=1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, kernel_size=4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, kernel_size=4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            # Zero scores: training starts from the backbone's features, not from random class evidence.
            for score in (self.score_fr, self.score_pool4, self.score_pool3):
                for parameter in score.parameters():
                    parameter.zero_()
            for up in (self.upscore2, self.upscore_pool4):
                up.weight.copy_(_bilinear_kernel(num_classes, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, pool4, pool5 = self.backbone(x)
        score = self.upscore2(self.score_fr(self.fc(pool5)))  # stride 16
        score = self.upscore_pool4(score + self.score_pool4(pool4))  # stride 8
        score = score + self.score_pool3(pool3)
        return F.interpolate(score, scale_factor=8, mode="bilinear", align_corners=False)


def _up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """2x transposed convolution, batch norm, ReLU: ``(B, in, h, w)`` to ``(B, out, 2h, 2w)``."""
    return nn.Sequential(
        # No bias: batch norm's shift replaces it.
        nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class VGG16FCN(nn.Module):
    """VGG16-FCN: VGG16 features to stride 32, then five 2x transposed-convolution blocks back to full size.

    The decoder halves the channels at each of its first four steps (512 to
    256, 128, 64, 32 for VGG16's width 64) and keeps them at the fifth; a 1x1
    convolution gives the class logits. Unlike FCN-8s it has no skip
    connections: all detail has to come back through the decoder.

    Parameters
    ----------
    in_channels
        Image channels.
    num_classes
        Output channels (one logit map per class).
    width
        VGG16's first-stage width (64); see :class:`VGG16Features`.
    backbone_weights, freeze_backbone
        See :meth:`VGG16Features.load_torchvision_weights`; ``""``: random
        initialisation.

    Notes
    -----
    Input ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of 32; output
    ``(B, num_classes, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int = 64,
        backbone_weights: str = "",
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = _backbone(in_channels, width, backbone_weights, freeze_backbone)
        # Five 2x steps undo the five poolings; the fifth keeps its channels (32 for VGG16) for the head.
        widths = (8 * width, 4 * width, 2 * width, width, width // 2, width // 2)
        self.decoder = nn.Sequential(*(_up_block(widths[i], widths[i + 1]) for i in range(5)))
        self.head = nn.Conv2d(widths[-1], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, pool5 = self.backbone(x)
        return self.head(self.decoder(pool5))


_BACKBONE_DEFAULTS = {"width": 64, "backbone_weights": "", "freeze_backbone": False}


@register_model(
    "fcn8s",
    family="FCN",
    description="FCN-8s (Long et al. 2015): VGG16, fc6/fc7 convolutions (fc_channels), skips from pool3/pool4; "
    "134.4 M parameters (3 channels, 21 classes, as published)",
    defaults={"fc_channels": 4096, "dropout": 0.5, **_BACKBONE_DEFAULTS},
    size_multiple=lambda options: 32,
    limits={"fc_channels": (1, None), "dropout": (0, 1), "width": (1, None)},
)
def build_fcn8s(in_channels: int, num_classes: int, **options) -> nn.Module:
    return FCN8s(in_channels, num_classes, **options)


@register_model(
    "vgg16_fcn",
    family="FCN",
    description="VGG16-FCN: VGG16 features, 5 transposed-convolution blocks (BN, ReLU) to full size; "
    "17.5 M parameters (3 channels, 21 classes)",
    defaults=dict(_BACKBONE_DEFAULTS),
    size_multiple=lambda options: 32,
    limits={"width": (2, None)},
)
def build_vgg16_fcn(in_channels: int, num_classes: int, **options) -> nn.Module:
    return VGG16FCN(in_channels, num_classes, **options)

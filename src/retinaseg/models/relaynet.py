"""ReLayNet (Roy et al. 2017): retinal layer and fluid segmentation of macular OCT.

"ReLayNet: retinal layer and fluid segmentation of macular optical coherence
tomography using fully convolutional networks", Biomed. Opt. Express 8(8), 2017.
Follows the paper and its official implementation (``ai-med/relaynet_pytorch``):
every block is the paper's *basic block*, one ``kernel_h x kernel_w`` convolution
→ batch norm → ReLU (the paper's activation; the official code uses PReLU). The
dense-block variant belongs to the same group's later QuickNAT and is not used here. The tall, narrow kernels (7 x 3 by default) see
the retina's depth profile, which is what separates the layers of a B-scan.

Pooling keeps its argmax indices and the decoder unpools with them, so layer
boundaries are put back at the exact pixels they were found at instead of being
smeared by interpolation.
"""

from __future__ import annotations

import torch
from torch import nn

from retinaseg.models.registry import register_model


class BasicBlock(nn.Sequential):
    """Convolution ``kernel_h x kernel_w`` with same padding → batch norm → ReLU → channel dropout.

    Maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_h: int, kernel_w: int, dropout: float) -> None:
        super().__init__(
            # Batch norm follows, so a convolution bias would only be cancelled by its mean.
            nn.Conv2d(in_channels, out_channels, (kernel_h, kernel_w), padding=(kernel_h // 2, kernel_w // 2), bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
        )


class ReLayNet(nn.Module):
    """ReLayNet: 3 encoder blocks with indexed max-pooling, a bottleneck, 3 unpooling decoder blocks.

    Parameters
    ----------
    in_channels
        Image channels (1 for OCT B-scans).
    num_classes
        Output channels (one logit map per class; the paper has 10: 7 layers,
        fluid, and the regions above and below the retina).
    num_filters
        Feature maps of every block.
    kernel_h, kernel_w
        Odd convolution kernel height and width.
    dropout
        Channel dropout probability after every block.

    Notes
    -----
    Input ``(B, in_channels, H, W)`` with ``H`` and ``W`` multiples of 8 (three
    2 x 2 poolings); output ``(B, num_classes, H, W)`` logits.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        num_filters: int = 64,
        kernel_h: int = 7,
        kernel_w: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if kernel_h % 2 == 0 or kernel_w % 2 == 0:
            raise ValueError(f"ReLayNet kernel sides must be odd to keep the image size, got {kernel_h} x {kernel_w}")

        def block(channels: int) -> BasicBlock:
            return BasicBlock(channels, num_filters, kernel_h, kernel_w, dropout)

        self.encoders = nn.ModuleList([block(in_channels), block(num_filters), block(num_filters)])
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.bottleneck = block(num_filters)
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        # Each decoder block sees the unpooled features and the encoder block's output, concatenated.
        self.decoders = nn.ModuleList([block(2 * num_filters) for _ in range(3)])
        self.classifier = nn.Conv2d(num_filters, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes, H, W)`` of ``x``, ``(B, in_channels, H, W)``."""
        skips: list[tuple[torch.Tensor, torch.Tensor]] = []
        for encoder in self.encoders:
            features = encoder(x)
            x, indices = self.pool(features)
            skips.append((features, indices))
        x = self.bottleneck(x)
        for decoder in self.decoders:
            features, indices = skips.pop()
            x = decoder(torch.cat([features, self.unpool(x, indices, output_size=features.shape[-2:])], dim=1))
        return self.classifier(x)


@register_model(
    "relaynet",
    family="OCT layers (ReLayNet)",
    description="ReLayNet (Roy et al. 2017): 7x3 conv blocks, max-unpooling by stored indices, for OCT layers and fluid",
    defaults={"num_filters": 64, "kernel_h": 7, "kernel_w": 3, "dropout": 0.0},
    size_multiple=lambda options: 8,
    limits={"num_filters": (1, None), "kernel_h": (1, None), "kernel_w": (1, None), "dropout": (0, 1)},
)
def build_relaynet(in_channels: int, num_classes: int, **options) -> nn.Module:
    return ReLayNet(in_channels, num_classes, **options)

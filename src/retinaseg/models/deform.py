"""Deformable convolution v1 (Dai et al. 2017) in plain PyTorch.

torchvision's ``deform_conv2d`` is not available to retinaseg, so the layer
samples its input with :func:`torch.nn.functional.grid_sample`: bilinear
interpolation, zero outside the image, exactly the sampling of the paper. The
``k * k`` sampled taps of every output position are then combined by the
layer's weight, as an ordinary convolution combines its fixed taps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DeformConv2d(nn.Module):
    """Stride-1 deformable convolution whose offsets are predicted from its input.

    A regular convolution (zero-initialised, so the layer starts as an ordinary
    convolution) predicts ``2 * k * k`` offsets per position: for kernel tap
    ``t = i * k + j`` (row-major), channel ``2t`` shifts the tap's row and
    ``2t + 1`` its column, in pixels (torchvision's layout). Tap ``t`` of
    output position ``(h, w)`` reads the input at
    ``(h + i * dilation - padding + dy, w + j * dilation - padding + dx)``.

    Parameters
    ----------
    in_channels, out_channels
        Channels of the input ``(B, in_channels, H, W)`` and of the output
        ``(B, out_channels, H', W')``, ``H' = H + 2 * padding - dilation * (k - 1)``.
    kernel_size
        Side ``k`` of the square kernel.
    padding
        Zero padding of each side (``dilation * (k - 1) // 2`` keeps the size for odd ``k``).
    dilation
        Spacing of the undeformed taps.
    bias
        Learn an additive bias per output channel.

    Attributes
    ----------
    weight
        ``(out_channels, in_channels, k, k)``, as the weight of :class:`torch.nn.Conv2d`.
    bias
        ``(out_channels,)`` or ``None``.
    offset
        The convolution predicting the ``(B, 2 * k * k, H', W')`` offsets.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size, self.padding, self.dilation = kernel_size, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.offset = nn.Conv2d(in_channels, 2 * kernel_size**2, kernel_size, padding=padding, dilation=dilation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight and bias as :class:`torch.nn.Conv2d` initialises them; zero offsets."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)
        for parameter in self.offset.parameters():
            nn.init.zeros_(parameter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deform(x, self.offset(x))

    def deform(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """The convolution of ``x`` with given offsets.

        Parameters
        ----------
        x
            Input, ``(B, in_channels, H, W)``.
        offsets
            ``(B, 2 * k * k, H', W')`` row and column shifts in pixels (layout in the class notes).

        Returns
        -------
        torch.Tensor
            ``(B, out_channels, H', W')``.
        """
        batch, channels, height, width = x.shape
        taps = self.kernel_size**2
        out_height, out_width = offsets.shape[-2:]
        rows, cols = self._base_positions(out_height, out_width, x)  # (k*k, H', W') each
        shifts = offsets.view(batch, taps, 2, out_height, out_width)
        rows = rows + shifts[:, :, 0]  # (B, k*k, H', W')
        cols = cols + shifts[:, :, 1]
        # grid_sample's coordinates with align_corners=False: -1 and 1 are the outer edges of the border pixels.
        grid = torch.stack([(2 * cols + 1) / width - 1, (2 * rows + 1) / height - 1], dim=-1)
        sampled = F.grid_sample(
            x, grid.view(batch, taps * out_height, out_width, 2), mode="bilinear", padding_mode="zeros", align_corners=False
        ).view(batch, channels, taps, out_height, out_width)
        out = torch.einsum("bcthw,oct->bohw", sampled, self.weight.flatten(2))
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def _base_positions(self, out_height: int, out_width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row and column of every undeformed tap of every output position, ``(k*k, H', W')`` each."""
        kernel = torch.arange(self.kernel_size, device=like.device, dtype=like.dtype) * self.dilation - self.padding
        tap_rows, tap_cols = torch.meshgrid(kernel, kernel, indexing="ij")
        out_rows = torch.arange(out_height, device=like.device, dtype=like.dtype)
        out_cols = torch.arange(out_width, device=like.device, dtype=like.dtype)
        rows = tap_rows.reshape(-1, 1, 1) + out_rows.view(1, -1, 1)
        cols = tap_cols.reshape(-1, 1, 1) + out_cols.view(1, 1, -1)
        return rows.expand(-1, -1, out_width), cols.expand(-1, out_height, -1)

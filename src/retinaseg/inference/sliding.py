"""Run a network on whole images of any size.

Images are either padded to the network's size multiple and segmented in one
pass, or, when a region-of-interest size is given, segmented by overlapping
windows blended with Gaussian weights (MONAI ``sliding_window_inference``).
Either way the output has exactly the input's height and width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from torch import nn


def infer_logits(
    model: nn.Module,
    image: torch.Tensor,
    size_multiple: int,
    roi_size: tuple[int, int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
) -> torch.Tensor:
    """Logits for a batch of whole images.

    Parameters
    ----------
    model
        Network mapping ``(B, C, h, w)`` to ``(B, K, h, w)``; ``h`` and ``w``
        multiples of ``size_multiple``.
    image
        ``(B, C, H, W)`` float input of any ``H``, ``W``.
    size_multiple
        Input size multiple the network needs.
    roi_size
        Window ``(h, w)`` for sliding-window inference (rounded up to the size
        multiple), or ``None`` to process each image in one pass.
    overlap
        Fraction of overlap between neighbouring windows.
    sw_batch_size
        Windows per forward pass.

    Returns
    -------
    torch.Tensor
        ``(B, K, H, W)`` logits.
    """
    height, width = image.shape[-2:]
    if roi_size is None:
        pad_h = -height % size_multiple
        pad_w = -width % size_multiple
        # Reflection keeps image statistics at the border; it needs pad < size,
        # so tiny images fall back to replication.
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        padded = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
        return model(padded)[..., :height, :width]
    roi = tuple(-(-int(s) // size_multiple) * size_multiple for s in roi_size)
    return sliding_window_inference(
        image, roi, sw_batch_size, model, overlap=overlap, mode="gaussian", padding_mode="replicate"
    )

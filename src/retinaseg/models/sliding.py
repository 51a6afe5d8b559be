"""Run a network on whole images of any size.

Images are either padded to the network's size multiple and segmented in one
pass, or, when a region-of-interest size is given, segmented by overlapping
windows blended with Gaussian weights (MONAI ``sliding_window_inference``).
Either way the output has exactly the input's height and width.
"""

from __future__ import annotations

import torch
from torch import nn

from retinaseg.data.geometry import crop_to_original, pad_to_multiple


def infer_logits(
    network: nn.Module,
    image: torch.Tensor,
    size_multiple: int,
    roi_size: tuple[int, int] | None = None,
    overlap: float = 0.25,
    sw_batch_size: int = 4,
) -> torch.Tensor:
    """Logits for a batch of whole images.

    Parameters
    ----------
    network
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
    if roi_size is None:
        # Mirror padding at the bottom/right keeps image statistics at the border
        # and leaves row/column coordinates unchanged for the crop back.
        padded, spec = pad_to_multiple(image.detach().cpu().numpy(), size_multiple, mode="reflect", axes=(-2, -1))
        return crop_to_original(network(torch.from_numpy(padded).to(image.device)), spec)
    # Imported here: MONAI's package import costs about a second, which an ONNX model never needs otherwise.
    from monai.inferers import sliding_window_inference

    roi = tuple(-(-int(s) // size_multiple) * size_multiple for s in roi_size)
    logits = sliding_window_inference(
        image, roi, sw_batch_size, network, overlap=overlap, mode="gaussian", padding_mode="replicate"
    )
    # MONAI returns what the network returns; a tuple or dict only for networks with several outputs.
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the network must return one tensor of logits, got a {type(logits).__name__}")
    return logits

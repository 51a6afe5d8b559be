"""Segment every B-scan of an OCT volume.

B-scans go through the network in batches and only the class map of each is
kept, so memory grows with the volume's pixels (one byte each), not with the
class probabilities.
"""

from __future__ import annotations

import numpy as np
import torch
from rich.progress import track

from retinaseg.data.preprocess import prepare_image
from retinaseg.training.module import SegmentationModule
from retinaseg.volume import SPECTRALIS_DISPLAY_GAMMA, OctVolume

#: Grey value given to pixels the device marked invalid. 8-bit Spectralis
#: exports (and so the Duke DME training images) show them saturated white.
INVALID_DISPLAY_VALUE = 255


def network_images(volume: OctVolume) -> np.ndarray:
    """The 8-bit B-scans a model sees: ``(N, H, W)`` uint8.

    ``round(255 * r ** 0.25)`` of the linear reflectance ``r``, with invalid
    pixels set to :data:`INVALID_DISPLAY_VALUE`.
    """
    images = volume.display_bscans(SPECTRALIS_DISPLAY_GAMMA)
    images[np.isnan(volume.reflectance)] = INVALID_DISPLAY_VALUE
    return images


def segment_volume(
    volume: OctVolume,
    module: SegmentationModule,
    *,
    batch_size: int = 4,
    progress: bool = True,
) -> np.ndarray:
    """Class map of every B-scan.

    Parameters
    ----------
    volume
        The OCT volume.
    module
        A trained model (see :func:`retinaseg.inference.checkpoint.load_model`);
        it runs on the device its parameters are on.
    batch_size
        B-scans per forward pass.
    progress
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W)`` uint8 class indices into ``module.class_names``.
    """
    images = network_images(volume)
    device = next(module.parameters()).device
    labels = np.empty(images.shape, dtype=np.uint8)
    starts = range(0, len(images), max(1, int(batch_size)))
    if progress:
        starts = track(starts, description=f"segmenting {len(images)} B-scans")
    with torch.no_grad():
        for start in starts:
            batch = np.stack([prepare_image(image, module.preprocessing) for image in images[start : start + batch_size]])
            logits = module(torch.from_numpy(batch).to(device))
            labels[start : start + len(batch)] = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
    return labels

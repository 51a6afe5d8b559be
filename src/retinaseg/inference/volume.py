"""Segment every B-scan of an OCT volume.

B-scans go through the network in batches and only the class map of each is
kept, so memory grows with the volume's pixels (one byte each), not with the
class probabilities.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from rich.progress import track

from retinaseg.conventions import INVALID_DISPLAY_VALUE, SPECTRALIS_DISPLAY_GAMMA
from retinaseg.data.preprocess import prepare_image
from retinaseg.models.trained import TrainedModel
from retinaseg.volume import OctVolume


def network_images(volume: OctVolume) -> np.ndarray:
    """The 8-bit B-scans a model sees: ``(N, H, W)`` uint8.

    ``round(255 * r ** gamma)`` of the linear reflectance ``r``, ``gamma``
    being :data:`~retinaseg.conventions.SPECTRALIS_DISPLAY_GAMMA`, with invalid
    pixels set to :data:`~retinaseg.conventions.INVALID_DISPLAY_VALUE`.
    """
    images = volume.display_bscans(SPECTRALIS_DISPLAY_GAMMA)
    images[np.isnan(volume.reflectance)] = INVALID_DISPLAY_VALUE
    return images


def segment_volume(
    volume: OctVolume,
    model: TrainedModel,
    *,
    batch_size: int = 4,
    progress: bool = True,
) -> np.ndarray:
    """Class map of every B-scan.

    Parameters
    ----------
    volume
        The OCT volume.
    model
        A trained model (see :func:`retinaseg.inference.checkpoint.load_model`);
        it runs on the device its network is on.
    batch_size
        B-scans per forward pass.
    progress
        Show a progress bar.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W)`` uint8 class indices into ``model.class_names``.
    """
    images = network_images(volume)
    labels = np.empty(images.shape, dtype=np.uint8)
    starts: Iterable[int] = range(0, len(images), max(1, int(batch_size)))
    if progress:
        starts = track(starts, description=f"segmenting {len(images)} B-scans")
    for start in starts:
        batch = np.stack([prepare_image(image, model.preprocessing) for image in images[start : start + batch_size]])
        logits = model.predict(torch.from_numpy(batch))
        labels[start : start + len(batch)] = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
    return labels

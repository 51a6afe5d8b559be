"""Segment every B-scan of an OCT volume.

B-scans go through the network in batches and only the class map of each is
kept, so memory grows with the volume's pixels (one byte each), not with the
class probabilities. How the network runs (precision, memory layout) is an
inference option (:mod:`retinaseg.inference.options`), by default the fastest
allowed one on the machine at hand (:mod:`retinaseg.inference.choose`).
On request, the network sees only the rows around the retina after the
first B-scan (:mod:`retinaseg.inference.rows`): faster, but not the same
results (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from rich.progress import track

from retinaseg.conventions import INVALID_DISPLAY_VALUE, SPECTRALIS_DISPLAY_GAMMA
from retinaseg.data.preprocess import prepare_image
from retinaseg.inference.choose import default_batch_size, model_for_inference
from retinaseg.inference.options import AUTO
from retinaseg.inference.rows import RetinaRows
from retinaseg.models.trained import TrainedModel
from retinaseg.volume import OctVolume


def network_images(volume: OctVolume, bscans: slice = slice(None)) -> np.ndarray:
    """The 8-bit B-scans a model sees: ``(n, H, W)`` uint8, of all B-scans or those of ``bscans``.

    ``round(255 * r ** gamma)`` of the linear reflectance ``r``, ``gamma``
    being :data:`~retinaseg.conventions.SPECTRALIS_DISPLAY_GAMMA`, with invalid
    pixels set to :data:`~retinaseg.conventions.INVALID_DISPLAY_VALUE`.
    """
    images = volume.display_bscans(SPECTRALIS_DISPLAY_GAMMA, bscans)
    images[np.isnan(volume.reflectance[bscans])] = INVALID_DISPLAY_VALUE
    return images


def segment_volume(
    volume: OctVolume,
    model: TrainedModel,
    *,
    batch_size: int | None = None,
    progress: bool = True,
    inference: str = AUTO,
    retina_rows: bool = False,
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
        B-scans per forward pass; default: per device
        (:func:`~retinaseg.inference.choose.default_batch_size`).
    progress
        Show a progress bar.
    inference
        ``"auto"``: the fastest allowed option on this machine, timed once
        and remembered (:func:`~retinaseg.inference.choose.choose_inference_option`;
        reduced precision only where validated), or an option's name
        (:data:`~retinaseg.inference.options.INFERENCE_OPTIONS`).
        ``"fp32"`` is the network exactly as trained.
    retina_rows
        After the first B-scan, segment only the rows around the retina
        (:class:`~retinaseg.inference.rows.RetinaRows`; a B-scan whose
        retina reaches the crop's edge is segmented again at full height).
        1.3-1.6x faster for the shipped U-Net on a CPU, but the network
        sees less context: on the Duke volumes boundaries moved up to 0.6 px
        on average and ETDRS sectors up to 19 µm, beyond the rule reduced
        precision must pass, so it is off by default. Models trained on
        resized images always see the full height.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W)`` uint8 class indices into ``model.class_names``.

    Raises
    ------
    InputError
        An unknown ``inference`` option.
    """
    n_bscans, height, width = volume.shape
    batch_size = default_batch_size(model.device) if batch_size is None else max(1, int(batch_size))
    runner, option = model_for_inference(model, inference, (height, width), batch_size)
    labels = np.empty(volume.shape, dtype=np.uint8)
    rows = RetinaRows(height, model.size_multiple) if retina_rows and model.preprocessing.resize is None else None
    starts: Iterable[int] = range(0, n_bscans, batch_size)
    if progress:
        starts = track(starts, description=f"segmenting {n_bscans} B-scans ({option.name})")
    for start in starts:
        # Converted batch by batch: small temporaries are reused, while a whole volume's cost fresh memory.
        images = network_images(volume, slice(start, start + batch_size))
        batch = np.stack([prepare_image(image, model.preprocessing) for image in images])
        if rows is None:
            labels[start : start + len(batch)] = _classes(runner, batch)
            continue
        # The crop comes after preprocessing: normalisation sees the whole B-scan, as in training.
        window = rows.window()
        result, passed = rows.place(_classes(runner, batch[:, :, window[0] : window[1]]), window)
        if not passed.all():
            result[~passed] = _classes(runner, batch[~passed])
        rows.update(result, full_height=passed if window == (0, height) else ~passed)
        labels[start : start + len(batch)] = result
    return labels


def _classes(model: TrainedModel, batch: np.ndarray) -> np.ndarray:
    """``(B, H, W)`` uint8 class maps of a ``(B, C, H, W)`` float32 batch of network inputs."""
    return model.predict(torch.from_numpy(np.ascontiguousarray(batch))).argmax(dim=1).to(torch.uint8).cpu().numpy()

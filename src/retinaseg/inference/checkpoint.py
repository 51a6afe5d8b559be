"""Load a trained model from a checkpoint written by ``retinaseg train``."""

from __future__ import annotations

from pathlib import Path

import torch

from retinaseg.errors import InputError
from retinaseg.training.module import SegmentationModule


def load_module(path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """The trained :class:`SegmentationModule` in eval mode, on ``device``.

    The module carries its config, class names and preprocessing, so callers
    need nothing else to segment new images.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        module = SegmentationModule.load_from_checkpoint(path, map_location=device, weights_only=False)
    except Exception as err:  # torch.load/unpickling fail in many ways on a foreign or damaged file
        raise InputError(path, f"not a retinaseg checkpoint ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from err
    return module.eval()

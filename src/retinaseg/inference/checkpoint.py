"""Load trained models: checkpoints of ``retinaseg train``, weight files, shipped models.

A checkpoint (``.ckpt``) holds everything to resume training, including the
optimiser state. :func:`export_weights` keeps only what inference needs (the
resolved config, class names, preprocessing and the weights in half
precision) in a small ``.pt`` file; the models shipped with retinaseg are such
files, in ``retinaseg/models/pretrained/`` beside their model cards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from retinaseg.errors import InputError, describe_exception
from retinaseg.io.model_files import resolve_model_file
from retinaseg.io.output import check_output_file
from retinaseg.io.torch_files import read_torch_file
from retinaseg.training.module import SegmentationModule

_WEIGHTS_FORMAT = "retinaseg-weights-1"


def _module_from_payload(payload: dict[str, Any], path: Path, what: str) -> SegmentationModule:
    """Rebuild the module from the plain data of a checkpoint or weight file (weights back to float32)."""
    hyper_parameters, state_dict = payload.get("hyper_parameters"), payload.get("state_dict")
    if not isinstance(hyper_parameters, dict) or not isinstance(state_dict, dict):
        raise InputError(path, f"not a retinaseg {what} (no hyper_parameters and state_dict)")
    try:
        module = SegmentationModule(**hyper_parameters)
        module.load_state_dict({key: value.float() if value.is_floating_point() else value for key, value in state_dict.items()})
    except Exception as err:  # a foreign or edited file fails in the constructor or in load_state_dict, in many ways
        raise InputError(path, f"not a retinaseg {what} ({describe_exception(err)})") from err
    return module


def load_module(path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """The trained :class:`SegmentationModule` of a ``.ckpt`` in eval mode, on ``device``.

    The module carries its config, class names and preprocessing, so callers
    need nothing else to segment new images. The file is read with the
    restricted unpickler (:func:`~retinaseg.io.torch_files.read_torch_file`):
    loading never runs code from it.
    """
    path = Path(path)
    return _module_from_payload(read_torch_file(path, "checkpoint"), path, "checkpoint").to(device).eval()


def export_weights(checkpoint: str | Path, out_path: str | Path) -> Path:
    """Write the inference-only weight file of a training checkpoint.

    Parameters
    ----------
    checkpoint
        A ``.ckpt`` written by ``retinaseg train``.
    out_path
        Destination ``.pt`` file; written atomically, never over an existing file.

    Returns
    -------
    Path
        ``out_path``.
    """
    out_path = Path(out_path)
    check_output_file(out_path, inputs=[checkpoint])
    module = load_module(checkpoint)
    payload = {
        "format": _WEIGHTS_FORMAT,
        "hyper_parameters": dict(module.hparams),
        "state_dict": {key: value.half() if value.is_floating_point() else value for key, value in module.state_dict().items()},
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.partial")
    torch.save(payload, partial)
    partial.replace(out_path)
    return out_path


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """The model of a weight file from :func:`export_weights`, in eval mode, on ``device``."""
    path = Path(path)
    payload = read_torch_file(path, "weight file")
    if payload.get("format") != _WEIGHTS_FORMAT:
        raise InputError(path, "not a retinaseg weight file (no retinaseg weight-file header; a training checkpoint ends in .ckpt)")
    return _module_from_payload(payload, path, "weight file").to(device).eval()


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """A model by shipped name (see :func:`~retinaseg.io.model_files.pretrained_models`), ``.pt`` weight file or ``.ckpt``."""
    path = resolve_model_file(name_or_path)
    return load_weights(path, device) if path.suffix == ".pt" else load_module(path, device)

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
from retinaseg.training.module import SegmentationModule

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "models" / "pretrained"
_WEIGHTS_FORMAT = "retinaseg-weights-1"


def pretrained_models() -> dict[str, Path]:
    """Shipped models: ``{name: weight file}`` (model card: same name, ``.md``)."""
    return {path.stem: path for path in sorted(PRETRAINED_DIR.glob("*.pt"))}


def load_module(path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """The trained :class:`SegmentationModule` of a ``.ckpt`` in eval mode, on ``device``.

    The module carries its config, class names and preprocessing, so callers
    need nothing else to segment new images.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file not found")
    try:
        module = SegmentationModule.load_from_checkpoint(path, map_location=device, weights_only=False)
    except Exception as err:  # torch.load/unpickling fail in many ways on a foreign or damaged file
        raise InputError(path, f"not a retinaseg checkpoint ({describe_exception(err)})") from err
    return module.eval()


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
    if out_path.exists():
        raise InputError(out_path, "file exists; choose another name")
    module = load_module(checkpoint)
    payload = {
        "format": _WEIGHTS_FORMAT,
        "hyper_parameters": dict(module.hparams),
        "state_dict": {key: value.half() if value.is_floating_point() else value for key, value in module.state_dict().items()},
    }
    partial = out_path.with_name(f".{out_path.name}.partial")
    torch.save(payload, partial)
    partial.replace(out_path)
    return out_path


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """The model of a weight file from :func:`export_weights`, in eval mode, on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "weight file not found")
    try:
        payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _WEIGHTS_FORMAT:
            raise ValueError("no retinaseg weight-file header")
        module = SegmentationModule(**payload["hyper_parameters"])
        module.load_state_dict({key: value.float() if value.is_floating_point() else value for key, value in payload["state_dict"].items()})
    except Exception as err:  # damaged archives and foreign pickles fail in many ways
        raise InputError(path, f"not a retinaseg weight file ({describe_exception(err)})") from err
    return module.to(device).eval()


def load_model(name_or_path: str | Path, device: str | torch.device = "cpu") -> SegmentationModule:
    """A model by shipped name (see :func:`pretrained_models`), ``.pt`` weight file or ``.ckpt``."""
    shipped = pretrained_models()
    if str(name_or_path) in shipped:
        return load_weights(shipped[str(name_or_path)], device)
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(shipped) or "none"
        raise InputError(path, f"no such file, and not a shipped model (shipped: {known})")
    return load_weights(path, device) if path.suffix == ".pt" else load_module(path, device)

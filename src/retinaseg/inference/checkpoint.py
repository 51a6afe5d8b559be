"""Load trained models by what a ``--model`` value names: shipped models, weight files, checkpoints.

A checkpoint (``.ckpt``) holds everything to resume training, including the
optimiser state. :func:`export_weights` keeps only what inference needs (the
model's config, class names, preprocessing and its weights in half precision)
in a small ``.pt`` weight file (:meth:`~retinaseg.models.trained.TrainedModel.save_pretrained`);
the models shipped with retinaseg are such files, in
``retinaseg/models/pretrained/`` beside their model cards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from retinaseg.errors import InputError
from retinaseg.io.model_files import resolve_model_file
from retinaseg.io.output import check_output_file
from retinaseg.models.trained import TrainedModel


def default_device() -> str:
    """``"cuda"`` when PyTorch sees a CUDA GPU, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(name_or_path: str | Path, device: str | torch.device | None = None) -> TrainedModel:
    """A trained model in evaluation mode on ``device`` (default: :func:`default_device`).

    Parameters
    ----------
    name_or_path
        A shipped model's name (see :func:`~retinaseg.io.model_files.pretrained_models`),
        a ``.pt`` weight file, a ``.ckpt`` training checkpoint or an ``.onnx``
        export (:mod:`~retinaseg.inference.onnx_runtime`, run by ONNX Runtime
        on the CPU). Files are read without running code from them.

    Raises
    ------
    InputError
        An unknown name, a file that is not a retinaseg model, or an ONNX
        model asked to run on another device than the CPU.
    """
    path = resolve_model_file(name_or_path)
    if path.suffix == ".onnx":
        from retinaseg.inference.onnx_runtime import load_onnx_model

        if device is not None and torch.device(device).type != "cpu":
            raise InputError(
                path, f"an ONNX model runs on the CPU here, not {device}; pass --device cpu, or use the .pt model on a GPU"
            )
        return load_onnx_model(path)
    return TrainedModel.from_pretrained(path).to(device or default_device())


def export_weights(checkpoint: str | Path, out_path: str | Path, evaluation: Mapping[str, Any] | None = None) -> Path:
    """Write the inference-only weight file of a training checkpoint.

    Parameters
    ----------
    checkpoint
        A ``.ckpt`` written by ``retinaseg train``, or a ``.pt`` weight file or
        shipped model's name (to store other ``evaluation`` settings with it).
    out_path
        Destination ``.pt`` file; written atomically, never over an existing file.
    evaluation
        ``evaluation`` settings to store instead of the trained ones, e.g. an
        operating threshold chosen on validation images or test-time flips
        (checked by :func:`retinaseg.training.config.operating_settings`).

    Returns
    -------
    Path
        ``out_path``.
    """
    out_path = Path(out_path)
    check_output_file(out_path, inputs=[checkpoint])  # first: an existing output is refused before any reading
    return _with_evaluation(TrainedModel.from_pretrained(_pytorch_model_file(checkpoint)), evaluation).save_pretrained(out_path)


def export_ensemble(models: Sequence[str | Path], out_path: str | Path, evaluation: Mapping[str, Any] | None = None) -> Path:
    """Write one weight file averaging the logits of several models (:func:`~retinaseg.models.ensemble.ensemble_of`).

    Parameters
    ----------
    models
        2 to 8 different ``.ckpt`` or ``.pt`` files or shipped model names,
        with the same task, classes and preprocessing; the first one's
        ``evaluation`` settings apply to the ensemble, but for its threshold
        (:func:`~retinaseg.models.ensemble.ensemble_of`).
    out_path
        Destination ``.pt`` file; written atomically, never over an existing file.
    evaluation
        ``evaluation`` settings to store instead of the first model's (as for :func:`export_weights`).

    Returns
    -------
    Path
        ``out_path``.
    """
    from retinaseg.models.ensemble import check_member_count, ensemble_of

    out_path = Path(out_path)
    check_output_file(out_path, inputs=list(models))
    check_member_count(len(models), "models")  # before any file is read
    sources = [_pytorch_model_file(model) for model in models]
    for index, source in enumerate(sources):
        if any(source.resolve() == earlier.resolve() for earlier in sources[:index]):
            raise InputError(models[index], "given twice: an ensemble of one model twice is that model at twice the cost")
    joined = ensemble_of([TrainedModel.from_pretrained(source) for source in sources], [str(model) for model in models])
    return _with_evaluation(joined, evaluation).save_pretrained(out_path)


def _pytorch_model_file(name_or_path: str | Path) -> Path:
    """The ``.pt`` or ``.ckpt`` file a model value names (:func:`resolve_model_file`); an ONNX export is refused."""
    source = resolve_model_file(name_or_path)
    if source.suffix == ".onnx":
        raise InputError(source, "an ONNX export holds no PyTorch weights: use the .pt or .ckpt it was made from")
    return source


def _with_evaluation(model: TrainedModel, evaluation: Mapping[str, Any] | None) -> TrainedModel:
    """``model`` with ``evaluation`` settings replacing its own (checked as :func:`export_weights` says)."""
    if not evaluation:
        return model
    if "threshold" in evaluation and model.task != "binary":
        raise InputError("evaluation.threshold", "applies to binary models only; this one takes the most probable class")
    config = {**model.config, "evaluation": {**model.config["evaluation"], **evaluation}}
    return TrainedModel(model.network, config, model.class_names, model.task, model.preprocessing)

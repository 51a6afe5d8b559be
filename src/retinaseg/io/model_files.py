"""Where model files are: the shipped models, and what a ``--model`` value names.

Kept free of PyTorch so that a command can check its ``--model`` value (and
refuse a wrong one) in milliseconds, before the heavy imports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from retinaseg.errors import InputError
from retinaseg.io.limits import check_regular_file
from retinaseg.io.records import read_json

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "models" / "pretrained"
"""Folder of the shipped weight files (``NAME.pt``) and their model cards (``NAME.md``)."""

MODEL_SUFFIXES = (".pt", ".ckpt", ".onnx")
"""Weight files (:func:`retinaseg.inference.checkpoint.export_weights`), training checkpoints and ONNX exports."""


def pretrained_models() -> dict[str, Path]:
    """Shipped models: ``{name: weight file}`` (model card: same name, ``.md``)."""
    return {path.stem: path for path in sorted(PRETRAINED_DIR.glob("*.pt"))}


#: Keys of a shipped model's card facts (``NAME.json`` beside ``NAME.pt`` and its model card ``NAME.md``).
CARD_KEYS = ("task", "input", "test")


def model_card_facts(name: str) -> dict[str, Any]:
    """The facts ``retinaseg models --pretrained`` lists for a shipped model, from ``NAME.json``.

    ``task`` and ``input`` are sentences; ``test`` is ``{"data": what it was
    tested on, "metrics": {metric: value}}``, the numbers of its model card.

    Raises
    ------
    InputError
        Not a shipped model, or its facts file is missing or lacks a key.
    """
    if name not in pretrained_models():
        raise InputError(name, f"not a shipped model (shipped: {', '.join(pretrained_models()) or 'none'})")
    path = PRETRAINED_DIR / f"{name}.json"
    facts = read_json(path, "model card facts")
    missing = [key for key in CARD_KEYS if not isinstance(facts, dict) or key not in facts]
    if missing or not isinstance(facts["test"], dict) or not isinstance(facts["test"].get("metrics"), dict):
        raise InputError(path, f"model card facts need {', '.join(CARD_KEYS)} with test.data and test.metrics")
    return facts


def resolve_model_file(name_or_path: str | os.PathLike[str]) -> Path:
    """The file a ``--model`` value names: a shipped model's weight file, or a ``.pt``/``.ckpt``/``.onnx`` file.

    Raises
    ------
    InputError
        Neither a shipped name nor an existing regular file with a model suffix.
    """
    shipped = pretrained_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    path = Path(name_or_path)
    if not os.path.lexists(path):
        raise InputError(path, f"no such file, and not a shipped model (shipped: {', '.join(shipped) or 'none'})")
    check_regular_file(path, "model file")
    if path.suffix not in MODEL_SUFFIXES:
        raise InputError(path, f"not a model file: expected a shipped model name or a {' or '.join(MODEL_SUFFIXES)} file")
    return path

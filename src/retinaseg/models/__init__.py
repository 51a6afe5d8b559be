"""Segmentation networks behind one registry (see :mod:`retinaseg.models.registry`)."""

from retinaseg.models.registry import (
    ModelSpec,
    build_model,
    count_parameters,
    get_model_spec,
    list_models,
    model_size_multiple,
    register_model,
)

__all__ = [
    "ModelSpec",
    "build_model",
    "count_parameters",
    "get_model_spec",
    "list_models",
    "model_size_multiple",
    "register_model",
]

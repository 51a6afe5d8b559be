"""A registry of segmentation networks, looked up by name.

Every network takes ``(B, in_channels, H, W)`` float input and returns
``(B, num_classes, H, W)`` logits. ``H`` and ``W`` must be multiples of the
network's :attr:`ModelSpec.size_multiple`; callers pad with
:func:`retinaseg.data.geometry.pad_to_multiple` and crop the output back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from retinaseg.errors import InputError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelSpec:
    """How to build one registered network.

    Attributes
    ----------
    name
        Registry name, as used in configs (``model.name``).
    builder
        ``builder(in_channels, num_classes, **options) -> nn.Module``.
    description
        One line for ``retinaseg models``.
    defaults
        Default options; a config may override any of them and no others.
    size_multiple
        ``size_multiple(options) -> int``: input height and width must be
        multiples of this number for the given options.
    """

    name: str
    builder: Builder
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    size_multiple: Callable[[dict[str, Any]], int] = lambda options: 1

    def resolve(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults updated with ``options``; unknown option names are an error."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise InputError(
                f"model.{unknown[0]}",
                f"unknown option for model {self.name!r}; known: {', '.join(sorted(self.defaults)) or 'none'}",
            )
        return {**self.defaults, **options}


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    description: str,
    defaults: dict[str, Any] | None = None,
    size_multiple: Callable[[dict[str, Any]], int] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator adding a builder function to the registry under ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            description=description,
            defaults=dict(defaults or {}),
            size_multiple=size_multiple or (lambda options: 1),
        )
        return builder

    return decorate


def get_model_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; unknown names list the known ones."""
    _load_builtin_models()
    if name not in _REGISTRY:
        raise InputError("model.name", f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_models() -> list[ModelSpec]:
    """All registered models, sorted by name."""
    _load_builtin_models()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def build_model(
    name: str, in_channels: int, num_classes: int, options: dict[str, Any] | None = None
) -> nn.Module:
    """Build registered network ``name`` with ``options`` over its defaults."""
    spec = get_model_spec(name)
    return spec.builder(in_channels, num_classes, **spec.resolve(options))


def model_size_multiple(name: str, options: dict[str, Any] | None = None) -> int:
    """Multiple that input height and width must have for this model."""
    spec = get_model_spec(name)
    return spec.size_multiple(spec.resolve(options))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _load_builtin_models() -> None:
    # Importing the modules runs their @register_model decorators.
    from retinaseg.models import monai_nets, unet  # noqa: F401

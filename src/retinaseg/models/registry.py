"""A registry of segmentation networks, looked up by name.

Every network takes ``(B, in_channels, H, W)`` float input and returns
``(B, num_classes, H, W)`` logits. ``H`` and ``W`` must be multiples of the
network's :attr:`ModelSpec.size_multiple`; callers pad with
:func:`retinaseg.data.geometry.pad_to_multiple` and crop the output back.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from retinaseg.errors import InputError, describe_exception, unknown_name
from retinaseg.numeric import is_finite_number, is_integer

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
    family
        The kind of network, for comparisons (``"U-Net"``, ``"FCN"``,
        ``"DeepLab"``, ``"MONAI"`` ...).
    defaults
        Default options; a config may override any of them and no others.
    size_multiple
        ``size_multiple(options) -> int``: input height and width must be
        multiples of this number for the given options.
    limits
        ``{option: (low, high)}``: inclusive bounds of numeric options
        (``None``: unbounded on that side).
    choices
        ``{option: names}``: the values a string option may take.
    min_batch_size
        ``min_batch_size(options) -> int``: smallest training batch the
        network can learn from (DeepLabV3's image-pooling branch has batch
        norm on a 1x1 map: one value per channel in a batch of one, which
        training cannot normalise).

    Notes
    -----
    Every option must have the type of its default: ``true``/``false`` for a
    bool, an integer for an int, a finite number for a float, text for a
    string, a non-empty list of such values for a list.
    """

    name: str
    builder: Builder
    description: str
    family: str = "other"
    defaults: dict[str, Any] = field(default_factory=dict)
    size_multiple: Callable[[dict[str, Any]], int] = lambda options: 1
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    min_batch_size: Callable[[dict[str, Any]], int] = lambda options: 1

    def resolve(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Defaults updated with ``options``, each checked (see the class notes).

        Raises
        ------
        InputError
            Naming ``model.options.<option>``: an unknown option, or a value of
            the wrong type, out of its limits or not among its choices.
        """
        options = dict(options or {})
        for key, value in options.items():
            where = f"model.options.{key}"
            if key not in self.defaults:
                raise InputError(where, unknown_name(f"{self.name} option", key, sorted(self.defaults)))
            problem = _type_problem(value, self.defaults[key]) or self._value_problem(key, value)
            if problem:
                raise InputError(where, problem)
        return {**self.defaults, **options}

    def _value_problem(self, key: str, value: Any) -> str | None:
        if key in self.choices and value not in self.choices[key]:
            return unknown_name("value", value, self.choices[key])
        low, high = self.limits.get(key, (None, None))
        numbers = value if isinstance(value, list) else [value]
        if any((low is not None and x < low) or (high is not None and x > high) for x in numbers):
            bounds = f">= {low}" if high is None else f"<= {high}" if low is None else f"in [{low}, {high}]"
            return f"must be {bounds}, got {value!r}"
        return None


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    description: str,
    family: str = "other",
    defaults: dict[str, Any] | None = None,
    size_multiple: Callable[[dict[str, Any]], int] | None = None,
    limits: dict[str, tuple[float | None, float | None]] | None = None,
    choices: dict[str, tuple[str, ...]] | None = None,
    min_batch_size: Callable[[dict[str, Any]], int] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator adding a builder function to the registry under ``name`` (arguments: :class:`ModelSpec`)."""

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(
            name=name,
            builder=builder,
            description=description,
            family=family,
            defaults=dict(defaults or {}),
            size_multiple=size_multiple or (lambda options: 1),
            limits=dict(limits or {}),
            choices=dict(choices or {}),
            min_batch_size=min_batch_size or (lambda options: 1),
        )
        return builder

    return decorate


def get_model_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; unknown names list the known ones."""
    if name not in _REGISTRY:
        _load_builtin_models(name)
    if name not in _REGISTRY:
        raise InputError("model.name", unknown_name("model", name, sorted(_REGISTRY)))
    return _REGISTRY[name]


def list_models() -> list[ModelSpec]:
    """All registered models, sorted by name."""
    _load_builtin_models()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def build_model(name: str, in_channels: int, num_classes: int, options: dict[str, Any] | None = None) -> nn.Module:
    """Build registered network ``name`` with ``options`` over its defaults."""
    spec = get_model_spec(name)
    return spec.builder(in_channels, num_classes, **spec.resolve(options))


def check_model_options(name: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved options of model ``name``, refused with one line unless the network can be built.

    Besides :meth:`ModelSpec.resolve`'s checks, the network is built once on
    PyTorch's ``meta`` device (no memory, no computation), so combinations the
    builder rejects are found before any data is read.

    Raises
    ------
    InputError
        An unknown model or option, a bad option value (named), or options
        the builder refuses (``model.options``).
    """
    spec = get_model_spec(name)
    resolved = spec.resolve(options)
    try:
        # Warnings of this trial build would only repeat those of the real one.
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec.builder(1, 2, **resolved)
    except InputError:  # a builder that checks its own options (an ensemble's members) names the key itself
        raise
    except Exception as err:  # third-party builders reject bad sizes with many exception types
        raise InputError("model.options", f"model {name!r} cannot be built with {resolved} ({describe_exception(err)})") from err
    return resolved


def model_size_multiple(name: str, options: dict[str, Any] | None = None) -> int:
    """Multiple that input height and width must have for this model."""
    spec = get_model_spec(name)
    return spec.size_multiple(spec.resolve(options))


def model_min_batch_size(name: str, options: dict[str, Any] | None = None) -> int:
    """Smallest training batch model ``name`` with ``options`` can learn from (:attr:`ModelSpec.min_batch_size`)."""
    spec = get_model_spec(name)
    return spec.min_batch_size(spec.resolve(options))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _type_problem(value: Any, default: Any) -> str | None:
    """What is wrong with the type of ``value`` for an option whose default is ``default``, or ``None``."""
    if default is None:
        return None
    if isinstance(default, list):
        accepts, _, plural = _option_type(default[0] if default else None)
        if isinstance(value, list) and value and all(accepts(item) for item in value):
            return None
        return f"must be a non-empty list of {plural}, got {value!r}"
    accepts, singular, _ = _option_type(default)
    return None if accepts(value) else f"must be {singular}, got {value!r}"


def _option_type(default: Any) -> tuple[Callable[[Any], bool], str, str]:
    """``(accepts(value), "an integer", "integers")`` for options with this default."""
    if default is None:
        return (lambda value: True), "any value", "values"
    if isinstance(default, bool):
        return (lambda value: isinstance(value, bool)), "true or false", "true/false values"
    if isinstance(default, int):
        return is_integer, "an integer", "integers"
    if isinstance(default, float):
        return is_finite_number, "a finite number", "finite numbers"
    kind = type(default)
    return (lambda value: isinstance(value, kind)), f"a {kind.__name__}", f"{kind.__name__} values"


#: The module of this package registering each built-in network. Building one imports its module only:
#: importing them all would import MONAI (about 1.7 s) for any network. A test checks the map.
_BUILTIN_MODULES = {
    "unet": "unet",
    "cbam_unet": "unet_variants",
    "cmp_unet": "unet_variants",
    "deform_unet": "unet_variants",
    "sa_unet": "sa_unet",
    "relaynet": "relaynet",
    "fcn8s": "vgg_fcn",
    "vgg16_fcn": "vgg_fcn",
    "fcn_resnet50": "resnet_seg",
    "fcn_resnet101": "resnet_seg",
    "deeplabv3_resnet50": "resnet_seg",
    "deeplabv3_resnet101": "resnet_seg",
    "basic_unet": "monai_nets",
    "attention_unet": "monai_nets",
    "dynunet": "monai_nets",
    "segresnet": "monai_nets",
    "swin_unetr": "monai_nets",
    "flexible_unet": "monai_nets",
    "ensemble": "ensemble",
}


def _load_builtin_models(name: str | None = None) -> None:
    """Import the module registering built-in network ``name``, or every network module when ``name`` is not one.

    Importing runs the modules' ``@register_model`` decorators.
    """
    modules = [_BUILTIN_MODULES[name]] if name in _BUILTIN_MODULES else sorted(set(_BUILTIN_MODULES.values()))
    for module in modules:
        importlib.import_module(f"{__package__}.{module}")

"""Named data sources, as used by configs and the command line.

A source is a function ``fn(root, **options) -> SampleSet``. Configs name one
(``source: chase_db1``) with a ``root`` path and options; :func:`load_source`
checks every option before any file is read: its name against the function's
keyword parameters (a misspelt option is an error with a suggestion, not
ignored), its value against the parameter's type hint, and that no required
option is missing.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from retinaseg.errors import InputError, describe_exception, unknown_name
from retinaseg.io.dataset_format import read_dataset
from retinaseg.io.duke import load_duke_mat, load_duke_npy
from retinaseg.io.folders import load_chase_db1, load_drive, load_image_mask_folder
from retinaseg.io.paths import resolve_data_path
from retinaseg.io.vgg_json import load_vgg_json
from retinaseg.numeric import is_integer, is_number
from retinaseg.types import Modality, SampleSet


def load_folder(
    root: str | os.PathLike[str],
    *,
    images: str = "images",
    masks: str = "masks",
    fov: str | None = None,
    mask_suffix: str = "",
    fov_suffix: str = "",
    class_names: list[str] | None = None,
    value_to_class: dict[int, int] | None = None,
    subject_pattern: str | None = None,
    modality: Modality = "fundus",
    name: str = "",
) -> SampleSet:
    """The ``"folder"`` source: ``root/images`` + ``root/masks`` (+ ``root/<fov>``).

    ``images``, ``masks`` and ``fov`` are sub-folders of ``root`` (or absolute
    paths); the other options are those of
    :func:`~retinaseg.io.folders.load_image_mask_folder`.
    """
    root = Path(root)
    return load_image_mask_folder(
        root / images,
        root / masks,
        mask_suffix=mask_suffix,
        class_names=class_names,
        value_to_class=value_to_class,
        subject_pattern=subject_pattern,
        fov_dir=None if fov is None else root / fov,
        fov_suffix=fov_suffix,
        modality=modality,
        name=name or root.name,
    )


SOURCES: dict[str, Callable[..., SampleSet]] = {
    "duke_npy": load_duke_npy,
    "duke_mat": load_duke_mat,
    "chase_db1": load_chase_db1,
    "drive": load_drive,
    "folder": load_folder,
    "retinaseg": read_dataset,
    "vgg_json": load_vgg_json,
}
"""Source name -> loader ``fn(root, **options)``."""


def register_source(name: str, loader: Callable[..., SampleSet]) -> None:
    """Add a named source.

    Parameters
    ----------
    name
        Name used in configs; must not be registered already.
    loader
        ``loader(root, **options) -> SampleSet``.

    Raises
    ------
    ValueError
        ``name`` is already registered.
    """
    if name in SOURCES:
        raise ValueError(f"source {name!r} is already registered")
    SOURCES[name] = loader


def _option_parameters(name: str) -> dict[str, inspect.Parameter]:
    parameters = list(inspect.signature(SOURCES[name]).parameters.values())[1:]
    return {p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


_WORDS = {
    str: ("text", "text"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "true or false"),
    type(None): ("null", "null"),
}


def _describe(hint: Any, plural: bool = False) -> str:
    """A type hint in words, for messages: ``list[str] | None`` -> ``a list of text or null``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg, plural) for arg in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(arg) for arg in args)
    if origin is list:
        return f"a list of {_describe(args[0], plural=True)}"
    if origin is dict:
        return f"a mapping of {_describe(args[0], plural=True)} to {_describe(args[1], plural=True)}"
    if origin is os.PathLike:
        return "paths" if plural else "a path"
    if hint in _WORDS:
        return _WORDS[hint][plural]
    return getattr(hint, "__name__", str(hint))


def _matches(value: Any, hint: Any) -> bool:
    """Whether an option value (as YAML gives it) fits a loader's type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if origin is list:
        return isinstance(value, list) and all(_matches(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(key, args[0]) and _matches(item, args[1]) for key, item in value.items())
    if origin is os.PathLike:
        return isinstance(value, os.PathLike)
    if hint is float:
        return is_number(value)
    if hint is int:
        return is_integer(value)
    return isinstance(value, origin or hint)


def check_options(name: str, options: dict[str, Any], prefix: str = "") -> None:
    """Check the options of source ``name`` before anything is read.

    Parameters
    ----------
    name
        A source name (a key of :data:`SOURCES`).
    options
        Option name -> value, as a config or :func:`parse_options` gives them.
    prefix
        Put before option names in messages (``"data.options."`` in a config).

    Raises
    ------
    InputError
        An unknown source name; or, naming the option: not an option of the
        source (with the closest accepted name), a value whose type does not
        fit the loader's type hint, or a required option that is missing.
    """
    if name not in SOURCES:
        raise InputError("source", unknown_name("source", name, sorted(SOURCES)))
    parameters = _option_parameters(name)
    try:
        hints = typing.get_type_hints(SOURCES[name])
    except (NameError, TypeError):  # a registered loader's unresolvable hints: names are still checked
        hints = {}
    for option, value in options.items():
        if option not in parameters:
            raise InputError(f"{prefix}{option}", unknown_name(f"{name} source option", option, parameters))
        hint = hints.get(option, Any)
        if not _matches(value, hint):
            raise InputError(f"{prefix}{option}", f"must be {_describe(hint)}, got {value!r:.60}")
    missing = [p.name for p in parameters.values() if p.default is p.empty and p.name not in options]
    if missing:
        hint = hints.get(missing[0], Any)
        raise InputError(f"{prefix}{missing[0]}", f"source {name!r} needs this option ({_describe(hint)})")


def parse_options(items: list[str]) -> dict[str, Any]:
    """Parse command-line ``key=value`` source options; each value is YAML.

    Parameters
    ----------
    items
        E.g. ``["class_names=[background, vessel]", "mask_suffix=_gt"]``.

    Returns
    -------
    dict
        Option name -> parsed value, e.g. ``{"class_names": ["background", "vessel"]}``.

    Raises
    ------
    InputError
        An item without ``=`` or a key, a key given twice, or a value that is
        not valid YAML (naming the option).
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InputError(item, "option must look like key=value")
        if key in options:
            raise InputError(key, "option given twice")
        try:
            options[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(key, f"value {text!r:.60} is not valid YAML ({describe_exception(exc)})") from None
    return options


def load_source(name: str, root: str | os.PathLike[str], /, **options: Any) -> SampleSet:
    """Load a sample set from a named source.

    Parameters
    ----------
    name
        A key of :data:`SOURCES`.
    root
        File or folder the source reads; a bare dataset name (e.g.
        ``"chase_db1"``) is looked up with
        :func:`~retinaseg.io.paths.resolve_data_path`.
    **options
        Keyword options of the source's loader.

    Raises
    ------
    InputError
        Unknown source name or an option refused by :func:`check_options`
        (both before anything is read), ``root`` that does not exist, or any
        error of the loader.
    """
    check_options(name, options)
    path = resolve_data_path(root)
    if not path.exists():
        raise InputError(path, "data path not found (set RETINASEG_DATA or give an existing path)")
    return SOURCES[name](path, **options)

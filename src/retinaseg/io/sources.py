"""Named data sources, as used by configs and the command line.

A source is a function ``fn(root, **options) -> SampleSet``. Configs name one
(``source: chase_db1``) with a ``root`` path and options; :func:`load_source`
checks the options against the function's keyword parameters so a misspelt
option is an error instead of being ignored.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retinaseg.errors import InputError
from retinaseg.io.dataset_format import read_dataset
from retinaseg.io.duke import load_duke_mat, load_duke_npy
from retinaseg.io.folders import load_chase_db1, load_drive, load_image_mask_folder
from retinaseg.io.paths import resolve_data_path
from retinaseg.io.vgg_json import load_vgg_json
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


def source_options(name: str) -> list[str]:
    """Option names accepted by source ``name`` (all parameters after ``root``)."""
    parameters = list(inspect.signature(SOURCES[name]).parameters.values())[1:]
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def load_source(name: str, root: str | os.PathLike[str], **options: Any) -> SampleSet:
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
        Unknown source name, ``root`` that does not exist, an option the
        source does not take (named), or any error of the loader.
    """
    if name not in SOURCES:
        raise InputError("source", f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}")
    path = resolve_data_path(root)
    if not path.exists():
        raise InputError(path, "data path not found (set RETINASEG_DATA or give an existing path)")
    accepted = source_options(name)
    for option in options:
        if option not in accepted:
            raise InputError(
                option, f"not an option of source {name!r}; accepted: {', '.join(accepted) or 'none'}"
            )
    return SOURCES[name](path, **options)

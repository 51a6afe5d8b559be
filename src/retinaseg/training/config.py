"""Training configs: YAML files over documented defaults, with ``key=value`` overrides.

A config is a nested dict. :data:`DEFAULTS` lists every key a config may set;
a key that is not there is a typo and an error, except inside the free-form
sections (:data:`FREE_FORM`) whose contents are checked by the component that
uses them (the data source, the model, the augmentation).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from retinaseg.errors import InputError

DEFAULTS: dict[str, Any] = {
    "name": None,  # run name: runs/<name>/
    "seed": 0,
    "data": {
        "source": None,  # a name from retinaseg.io.sources (duke_npy, chase_db1, folder, ...)
        "root": None,  # folder or file; bare dataset names are looked up in RETINASEG_DATA
        "options": {},  # extra keyword arguments of the source
        "split": {"train": None, "val": None, "test": None},  # subject ids; None = the rest
        "channels": "auto",  # auto | grey | green | rgb
        "clahe": False,  # contrast-limited histogram equalisation before normalisation
        "normalize": "percentile",  # minmax | zscore | percentile | none
        "fov": "auto",  # auto: from file, else estimated (fundus) or whole image (OCT); none
        "patch_size": None,  # [h, w] random training crops; None = whole images
        "patches_per_image": 1,
        "foreground_crop_prob": 0.0,  # chance a crop is centred on a foreground pixel
        "batch_size": 4,
        "num_workers": 0,
        "augment": {},
        "relabel": None,  # {class_names: [...], map: {old_id: new_id}} e.g. layers -> whole retina
    },
    "model": {"name": "unet", "options": {}},
    "loss": {"name": "dice_ce", "class_weights": None},
    "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4},
    "scheduler": {"name": "cosine", "patience": 5, "factor": 0.5, "min_lr": 1e-6},
    "trainer": {
        "max_epochs": 100,
        "max_time_minutes": None,
        "monitor": "val_dice",  # val_dice | val_loss
        "patience": 20,  # early stopping, in validation rounds
        "check_val_every_n_epoch": 1,
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",
        "precision": "auto",  # auto: bf16-mixed on GPUs that support it, else 32-true
        "limit_train_batches": None,
        "deterministic": False,
    },
    "evaluation": {
        "metric_classes": None,  # class ids averaged into val_dice; None = all but 0
        "roi_size": None,  # sliding-window size [h, w]; None = whole image at once
        "overlap": 0.25,
        "sw_batch_size": 4,
        "boundary_classes": None,  # OCT: classes whose top edge per column is a boundary (MAD in µm)
        "fluid_classes": [],  # OCT: classes (fluid) that hide the boundary below them
    },
    "output": {"runs_dir": "runs"},
}

class _Loader(yaml.SafeLoader):
    """YAML 1.1 loader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

FREE_FORM = {("data", "options"), ("data", "augment"), ("data", "relabel"), ("model", "options")}
REQUIRED = [("name",), ("data", "source"), ("data", "root")]


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML config, apply ``key.sub=value`` overrides and fill in defaults.

    Parameters
    ----------
    path
        YAML file, or ``None`` to start from the defaults alone.
    overrides
        Strings such as ``"trainer.max_epochs=5"``; the value is parsed as
        YAML, so ``[1, 2]``, ``true`` and ``1e-3`` keep their types.

    Returns
    -------
    dict
        The fully resolved config.
    """
    user: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "config file not found")
        try:
            user = yaml.load(path.read_text(), Loader=_Loader) or {}
        except yaml.YAMLError as err:
            raise InputError(path, f"not valid YAML ({str(err).splitlines()[0]})") from err
        if not isinstance(user, dict):
            raise InputError(path, "config must be a mapping of keys to values")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(item, "override must look like key.sub=value")
        _set_path(user, key.split("."), yaml.load(value, Loader=_Loader) if value else None)
    config = _merge(copy.deepcopy(DEFAULTS), user, ())
    for key in REQUIRED:
        if _get_path(config, key) is None:
            raise InputError(".".join(key), f"missing config key (in {path or 'overrides'})")
    return config


def save_config(config: dict[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML."""
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))


def _merge(base: dict[str, Any], user: dict[str, Any], prefix: tuple[str, ...]) -> dict[str, Any]:
    for key, value in user.items():
        where = (*prefix, key)
        if key not in base:
            raise InputError(".".join(where), f"unknown config key; known here: {', '.join(base)}")
        if where in FREE_FORM:
            if value is not None and not isinstance(value, dict):
                raise InputError(".".join(where), "must be a mapping")
            base[key] = None if value is None else {**(base[key] or {}), **value}
        elif isinstance(base[key], dict) and base[key]:
            if not isinstance(value, dict):
                raise InputError(".".join(where), "must be a mapping")
            base[key] = _merge(base[key], value, where)
        else:
            base[key] = value
    return base


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise InputError(".".join(keys), "cannot set a key inside a non-mapping value")
    tree[keys[-1]] = value


def _get_path(tree: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree

"""Training configs: YAML files over documented defaults, with ``key=value`` overrides.

A config is a nested dict. :data:`DEFAULTS` lists every key a config may set;
a key that is not there is a typo and an error. The free-form sections
(:data:`FREE_FORM`) take the options of the component they configure (the
data source, the model, the augmentation).

:func:`validate_config` checks every value (type, range, known names) before
any work starts, and :func:`validate_against_data` what only the data can
tell (class ids, patch size); a bad value is an :class:`InputError` naming the
full key, e.g. ``trainer.max_epochs: must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from retinaseg.data.augment import AugmentConfig
from retinaseg.data.normalize import NORMALIZE_METHODS
from retinaseg.data.preprocess import CHANNEL_MODES
from retinaseg.errors import InputError, unknown_name
from retinaseg.io.atomic import write_text_atomic
from retinaseg.io.limits import check_class_names
from retinaseg.io.sources import SOURCES, check_options
from retinaseg.models.registry import (
    check_model_options,
    list_models,
    model_min_batch_size,
    model_size_multiple,
)
from retinaseg.models.trained import FLIPS, EvaluationSettings
from retinaseg.numeric import is_finite_number, is_integer
from retinaseg.training.losses import LOSS_NAMES, check_boundary_weight

DEFAULTS: dict[str, Any] = {
    "name": None,  # run name: runs/<name>/
    "seed": 0,
    "data": {
        "source": None,  # a name from retinaseg.io.sources (duke_npy, chase_db1, folder, ...)
        "root": None,  # folder or file; bare dataset names are looked up in RETINASEG_DATA
        "options": {},  # extra keyword arguments of the source
        # Subject ids; None = the rest; val: [] = no validation (a fixed schedule, the last epoch kept).
        "split": {"train": None, "val": None, "test": None},
        "channels": "auto",  # auto | grey | green | rgb
        "clahe": False,  # contrast-limited histogram equalisation before normalisation
        "normalize": "percentile",  # minmax | zscore | percentile | none
        "fov": "auto",  # auto: from file, else estimated (fundus) or whole image (OCT); none
        "patch_size": None,  # [h, w] random training crops; None = whole images
        "resize": None,  # [h, w] whole images resized for training; predictions come back at the input size
        "patches_per_image": 1,
        "foreground_crop_prob": 0.0,  # chance a crop is centred on a foreground pixel
        "batch_size": 4,
        "num_workers": 0,
        "augment": {},
        "relabel": None,  # {class_names: [...], map: {old_id: new_id}} e.g. layers -> whole retina
    },
    "model": {"name": "unet", "options": {}},
    "loss": {"name": "dice_ce", "class_weights": None, "boundary_weight": 0.0},
    "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9},  # momentum: sgd only
    "scheduler": {"name": "cosine", "patience": 5, "factor": 0.5, "min_lr": 1e-6},
    "trainer": {
        "max_epochs": 100,
        "max_time_minutes": None,
        "monitor": "val_dice",  # val_dice | val_iou | val_accuracy | val_loss
        "patience": 20,  # early stopping, in validation rounds
        "check_val_every_n_epoch": 1,
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",
        "precision": "auto",  # auto: bf16-mixed on GPUs that support it; on a CPU the faster of the two, timed
        "limit_train_batches": None,
        "deterministic": False,
        # Weights and batches in channels-last layout: 1.18-1.34x faster steps for the U-Net on a CPU
        # (benchmarks/training_precision.py); off by default so committed recipes rerun as measured.
        "channels_last": False,
        "snapshot_every": None,  # epochs between prediction panels of the first 4 val images; None = off
    },
    "evaluation": {
        "metric_classes": None,  # class ids averaged into val_dice; None = all but 0
        "roi_size": None,  # sliding-window size [h, w]; None = whole image at once
        "overlap": 0.25,
        "sw_batch_size": 4,
        "boundary_classes": None,  # OCT: classes whose top edge per column is a boundary (MAD in µm)
        "fluid_classes": [],  # OCT: classes (fluid) that hide the boundary below them
        "threshold": 0.5,  # binary tasks: foreground where its probability >= this (predict, evaluate)
        "flips": [],  # test-time flips averaged into the logits: horizontal, vertical (validation, predict, evaluate)
        "ordered_layers": False,  # OCT layers: class maps rebuilt from the ordered layer surfaces (predict, evaluate)
    },
    "output": {"runs_dir": "runs"},
}

MONITORS = ("val_dice", "val_iou", "val_accuracy", "val_loss")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "plateau", "none")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
LightningPrecision = Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"]
"""The precision names of Lightning's ``Trainer`` that a config may choose."""
PRECISIONS: tuple[str, ...] = ("auto", *get_args(LightningPrecision))
"""Lightning's precision names; ``auto`` is ours (see :func:`retinaseg.training.train.precision_for`)."""
FOV_MODES = ("auto", "none")
MAX_NAME_LENGTH = 128
_RUN_NAME = re.compile(r"[A-Za-z0-9._-]+")
_SEED_MAX = 2**32 - 1  # numpy and Lightning seeds are unsigned 32-bit
_PLAIN_TYPES = (dict, list, tuple, str, int, float, bool, type(None))


class _Loader(yaml.SafeLoader):
    """PyYAML's loader with YAML 1.2 scalars: ``1e-3`` is a float, only true/false are booleans, dates stay text.

    YAML 1.1 would read ``clahe: yes`` as true and ``name: 2024-05-01`` as a
    date; here the first is refused where a boolean is expected, and the
    config stays plain data, which checkpoints store and read back with the
    restricted unpickler.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)

FREE_FORM = {("data", "options"), ("data", "augment"), ("data", "relabel"), ("model", "options")}
REQUIRED: list[tuple[str, ...]] = [("name",), ("data", "source"), ("data", "root")]


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
        The fully resolved config, checked by :func:`validate_config`.
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
        key, value = _override(item)
        _set_path(user, key.split("."), value)
    config = _merge(copy.deepcopy(DEFAULTS), user, ())
    for required in REQUIRED:
        if _get_path(config, required) is None:
            raise InputError(".".join(required), f"missing config key (in {path or 'overrides'})")
    validate_config(config)
    return config


OPERATING_KEYS = ("threshold", "flips", "roi_size", "overlap", "sw_batch_size", "ordered_layers")
"""``evaluation`` keys that say how a trained model is applied rather than what it learnt."""


def operating_settings(overrides: Sequence[str]) -> dict[str, Any]:
    """``{"threshold": 0.88, ...}`` from ``evaluation.KEY=VALUE`` strings, ``KEY`` one of :data:`OPERATING_KEYS`.

    Each value is parsed as in :func:`load_config` and checked as that config
    key is (``export-model --set`` stores them with a trained model).

    Raises
    ------
    InputError
        Another key than those, or a bad value, naming the key.
    """
    settings: dict[str, Any] = {}
    for item in overrides:
        key, value = _override(item)
        name = key.removeprefix("evaluation.")
        if name == key or name not in OPERATING_KEYS:
            keys = ", ".join(f"evaluation.{k}" for k in OPERATING_KEYS)
            raise InputError(key, f"only how the model is applied can be set here: {keys}")
        _RULES[key](key, value)
        settings[name] = value
    return settings


def _override(item: str) -> tuple[str, Any]:
    """``("key.sub", value)`` of a ``key.sub=value`` string, the value parsed as YAML (``[1, 2]``, ``true``, ``1e-3``)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InputError(item, "override must look like key.sub=value")
    return key, yaml.load(value, Loader=_Loader) if value else None


def save_config(config: dict[str, Any], path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text_atomic(path, yaml.safe_dump(config, sort_keys=False))


def _merge(base: dict[str, Any], user: dict[str, Any], prefix: tuple[str, ...]) -> dict[str, Any]:
    for key, value in user.items():
        where = (*prefix, key)
        if key not in base:
            raise InputError(".".join(where), unknown_name("config key", key, list(base)))
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
    value: Any = tree
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


# --- validation ----------------------------------------------------------------------------------

Check = Callable[[str, Any], None]
"""``check(key, value)``: raises :class:`InputError` naming ``key`` when ``value`` is bad."""


def validate_config(config: dict[str, Any]) -> None:
    """Check every value of a resolved config, before any work starts.

    Types, ranges and known names of every key in :data:`DEFAULTS`, the data
    source's options, the model's options (the network is built once on
    PyTorch's ``meta`` device, which costs no memory) and the rules that
    involve several keys. The checks need neither the data nor a GPU.

    Raises
    ------
    InputError
        The first bad value, naming its full key, e.g.
        ``optimizer.lr: must be a finite number > 0, got nan``; unknown names
        come with the closest known one ("did you mean").
    """
    _check_plain(config, "")
    for key, check in _RULES.items():
        check(key, _get_path(config, tuple(key.split("."))))
    for check_section in _SECTION_CHECKS:
        check_section(config)


def validate_against_data(config: dict[str, Any], class_names: Sequence[str], image_sizes: Sequence[tuple[int, int]]) -> None:
    """What only the data tells: class ids and weights fit the classes, patches fit the images.

    Parameters
    ----------
    config
        A config that passed :func:`validate_config`.
    class_names
        The classes of the data (after ``data.relabel``).
    image_sizes
        ``(height, width)`` of every training image.

    Raises
    ------
    InputError
        Naming the key: a class id beyond the classes, ordered layers without
        two layer classes or a class above the retina, a class weight per class missing, a training set smaller than the model's smallest
        batch, a patch larger than the smallest image, whole images
        of different sizes in one batch or too small for the model (whole
        images resized by ``data.resize`` are neither).
    """
    num_classes = len(class_names)
    evaluation = config["evaluation"]
    for key in ("metric_classes", "boundary_classes", "fluid_classes"):
        beyond = sorted(c for c in evaluation[key] or [] if c >= num_classes)
        if beyond:
            raise InputError(
                f"evaluation.{key}",
                f"class ids {beyond} do not exist; the data has classes 0-{num_classes - 1} {list(class_names)}",
            )
    EvaluationSettings.from_config(evaluation, num_classes)  # checks what ordered layers need of the classes
    weights = config["loss"]["class_weights"]
    if weights is not None and len(weights) != num_classes:
        raise InputError(
            "loss.class_weights", f"needs one weight per class ({num_classes}: {list(class_names)}), got {len(weights)}"
        )
    data = config["data"]
    items = len(image_sizes) * (data["patches_per_image"] if data["patch_size"] is not None else 1)
    least = model_min_batch_size(config["model"]["name"], config["model"]["options"])
    if items < least:  # the whole training set is then one batch (no batch is dropped)
        raise InputError(
            "data.split.train",
            f"{items} training item(s) per epoch make a batch of {items}; {config['model']['name']} trains on batches of at least {least}",
        )
    if data["resize"] is not None:  # every image is resized to a size validate_config has checked
        return
    smallest = tuple(min(size[axis] for size in image_sizes) for axis in (0, 1))
    patch = data["patch_size"]
    if patch is None and min(smallest) < _smallest_input(config):
        raise InputError(
            "model.options",
            f"the smallest training image ({smallest[0]} x {smallest[1]}) is too small for this model, which needs "
            f"{_smallest_input(config)} pixels per side; choose fewer levels",
        )
    if patch is not None and (patch[0] > smallest[0] or patch[1] > smallest[1]):
        raise InputError(
            "data.patch_size", f"{list(patch)} is larger than the smallest training image ({smallest[0]} x {smallest[1]})"
        )
    if patch is None and data["batch_size"] > 1 and len(set(image_sizes)) > 1:
        raise InputError(
            "data.patch_size",
            f"training images differ in size ({' and '.join(f'{h} x {w}' for h, w in sorted(set(image_sizes))[:2])}) "
            "and cannot be batched whole; set data.patch_size, or data.batch_size: 1",
        )


def validate_split(config: dict[str, Any]) -> None:
    """The subject split is a plan: at most one split takes the remaining subjects, no subject is in two.

    Checked before the data is read; whether the subjects exist, only the
    data can tell (:func:`retinaseg.data.splits.split_by_subject`). Not part
    of :func:`validate_config`, because a config that only describes a model
    (for ``analyze``) needs no split.
    """
    split = config["data"]["split"]
    rest = [name for name, subjects in split.items() if subjects is None or subjects == "rest"]
    if len(rest) > 1:
        raise InputError(
            f"data.split.{rest[1]}", f"only one split may take the remaining subjects (null or 'rest'); {rest[0]!r} does"
        )
    owner: dict[str, str] = {}
    for name, subjects in split.items():
        for subject in [] if name in rest else subjects:
            if owner.setdefault(subject, name) != name:
                raise InputError(f"data.split.{name}", f"subject {subject!r} is also in split {owner[subject]!r}")


def _check_plain(value: Any, key: str) -> None:
    """Only YAML's plain data, so the config can be saved as YAML and in checkpoints read without running code."""
    if type(value) not in _PLAIN_TYPES:
        raise InputError(
            key or "config", f"must be plain data (text, numbers, true/false, lists, mappings), got a {type(value).__name__}"
        )
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            _check_plain(sub_key, key)
            _check_plain(sub_value, f"{key}.{sub_key}" if key else str(sub_key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(item, key)


def _integer(low: int, high: int | None = None) -> Check:
    """An integer ``>= low`` (and ``<= high``)."""
    bounds = f">= {low}" if high is None else f"from {low} to {high}"

    def check(key: str, value: Any) -> None:
        if not is_integer(value) or value < low or (high is not None and value > high):
            raise InputError(key, f"must be an integer {bounds}, got {value!r}")

    return check


def _number(low: float, high: float | None = None, *, low_open: bool = False, high_open: bool = False) -> Check:
    """A finite number in the interval from ``low`` to ``high`` (``None``: unbounded), ends open or closed."""
    if high is None:
        bounds = f"{'>' if low_open else '>='} {low:g}"
    else:
        bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def check(key: str, value: Any) -> None:
        inside = is_finite_number(value) and (value > low if low_open else value >= low)
        if inside and high is not None:
            inside = value < high if high_open else value <= high
        if not inside:
            raise InputError(key, f"must be a finite number {bounds}, got {value!r}")

    return check


def _boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InputError(key, f"must be true or false, got {value!r}")


def _choice(kind: str, names: Sequence[str]) -> Check:
    """One of ``names``; anything else gets the closest name as a suggestion."""

    def check(key: str, value: Any) -> None:
        if not isinstance(value, str) or value not in names:
            raise InputError(key, unknown_name(kind, value, names))

    return check


def _optional(check: Check) -> Check:
    """``None`` (the key's "not set") or a value that passes ``check``."""

    def check_optional(key: str, value: Any) -> None:
        if value is not None:
            check(key, value)

    return check_optional


def _text(key: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InputError(key, f"must be a non-empty text, got {value!r}")


def _run_name(key: str, value: Any) -> None:
    """A plain folder name: the run folder is ``<runs_dir>/<name>``, and must stay inside ``runs_dir``."""
    if not isinstance(value, str) or not _RUN_NAME.fullmatch(value) or value in (".", "..") or len(value) > MAX_NAME_LENGTH:
        raise InputError(
            key,
            f"must be a plain name of letters, digits, '.', '_' and '-' (not '.' or '..', at most {MAX_NAME_LENGTH} characters), got {value!r}",
        )


def _size_pair(key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_integer(v) and v >= 1 for v in value):
        raise InputError(key, f"must be [height, width], two integers >= 1, got {value!r}")


def _class_ids(key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or not all(is_integer(v) and v >= 0 for v in value) or len(set(value)) != len(value):
        raise InputError(key, f"must be a list of distinct class ids (integers >= 0), got {value!r}")


def _some_class_ids(key: str, value: Any) -> None:
    """Class ids averaged into a score: at least one, or the mean is undefined."""
    _class_ids(key, value)
    if not value:
        raise InputError(key, "must name at least one class id (or be null for every class but 0)")


def _class_weights(key: str, value: Any) -> None:
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(is_finite_number(v) and v >= 0 for v in value)
        or not any(value)
    ):
        raise InputError(key, f"must be a list of finite numbers >= 0, one per class, not all 0, got {value!r}")


def _flips(key: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or len(set(map(str, value))) != len(value):
        raise InputError(key, f"must be a list of distinct flips ({', '.join(FLIPS)}), got {value!r}")
    for name in value:
        if not isinstance(name, str) or name not in FLIPS:
            raise InputError(key, unknown_name("flip", name, FLIPS))


def _subjects(key: str, value: Any) -> None:
    if value == "rest":
        return
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InputError(key, f"must be a list of subject ids (text; quote numbers in YAML), 'rest' or null, got {value!r}")


def _devices(key: str, value: Any) -> None:
    if value != "auto" and not (is_integer(value) and value >= 1):
        raise InputError(key, f"must be an integer >= 1 or 'auto', got {value!r}")


def _strategy(key: str, value: Any) -> None:
    if value == "auto":
        return
    # Lightning is imported only for a strategy other than the default: it takes seconds.
    from lightning.pytorch.strategies import StrategyRegistry

    _choice("strategy", ["auto", *StrategyRegistry.available_strategies()])(key, value)


def _batch_limit(key: str, value: Any) -> None:
    if not (is_integer(value) and value >= 1) and not (isinstance(value, float) and 0 < value <= 1):
        raise InputError(key, f"must be a number of batches (integer >= 1) or a fraction in (0, 1], got {value!r}")


def _source(key: str, value: Any) -> None:
    _choice("data source", sorted(SOURCES))(key, value)


def _model_name(key: str, value: Any) -> None:
    _choice("model", [spec.name for spec in list_models()])(key, value)


def _mapping(key: str, value: Any) -> None:
    if value is not None and not isinstance(value, dict):
        raise InputError(key, f"must be a mapping, got {value!r}")


def _augment(key: str, value: Any) -> None:
    known = sorted(field.name for field in fields(AugmentConfig))
    for option, setting in (value or {}).items():
        if option not in known:
            raise InputError(f"{key}.{option}", unknown_name("augmentation option", option, known))
        if isinstance(setting, float) and not math.isfinite(setting):
            raise InputError(f"{key}.{option}", f"must be a finite number, got {setting!r}")
    try:
        AugmentConfig.from_dict(value or {})
    except InputError as err:  # the augmentation names its keys "augment.<option>"
        raise InputError(f"data.{err.where}", err.problem) from None


def _relabel(key: str, value: Any) -> None:
    if value is None:
        return
    _mapping(key, value)
    for part in value:
        if part not in ("class_names", "map"):
            raise InputError(f"{key}.{part}", unknown_name("config key", part, ["class_names", "map"]))
    names = check_class_names(value.get("class_names"), f"{key}.class_names")
    mapping = value.get("map")
    if not isinstance(mapping, dict) or not mapping:
        raise InputError(f"{key}.map", f"must be a mapping of old class id to new class id, got {mapping!r}")
    for old, new in mapping.items():
        if not (is_integer(old) and 0 <= old <= 255 and is_integer(new) and 0 <= new < len(names)):
            raise InputError(f"{key}.map", f"maps class ids 0-255 to new ids 0-{len(names) - 1}; got {old!r}: {new!r}")


def _source_options(config: dict[str, Any]) -> None:
    data = config["data"]
    _mapping("data.options", data["options"])
    check_options(data["source"], dict(data["options"] or {}), prefix="data.options.")


def _model(config: dict[str, Any]) -> None:
    _mapping("model.options", config["model"]["options"])
    check_model_options(config["model"]["name"], config["model"]["options"])


def _smallest_input(config: dict[str, Any]) -> int:
    """Least height and width the model trains on: its deepest level keeps 2 x 2 pixels (batch norm needs more than one)."""
    return 2 * model_size_multiple(config["model"]["name"], config["model"]["options"])


def _patches_or_resize(config: dict[str, Any]) -> None:
    """Training crops patches or resizes whole images, not both."""
    if config["data"]["patch_size"] is not None and config["data"]["resize"] is not None:
        raise InputError(
            "data.resize", "cannot be combined with data.patch_size: train on resized whole images or on patches, not both"
        )


def _input_fits_model(config: dict[str, Any]) -> None:
    """Patches and resized images keep at least 2 x 2 pixels at the model's deepest level, and their
    sides are multiples of the model's size multiple (the network sees them unpadded)."""
    multiple = model_size_multiple(config["model"]["name"], config["model"]["options"])
    least = _smallest_input(config)
    for key in ("patch_size", "resize"):
        size = config["data"][key]
        if size is not None and min(size) < least:
            raise InputError(
                f"data.{key}", f"{list(size)} is too small for this model, which needs at least {least} pixels per side"
            )
        if size is not None and any(side % multiple for side in size):
            raise InputError(f"data.{key}", f"{list(size)}: this model needs sides that are multiples of {multiple}")


def _batch_fits_model(config: dict[str, Any]) -> None:
    """A training batch at least as large as the model can learn from (:attr:`ModelSpec.min_batch_size`)."""
    least = model_min_batch_size(config["model"]["name"], config["model"]["options"])
    if config["data"]["batch_size"] < least:
        raise InputError(
            "data.batch_size",
            f"{config['model']['name']} trains on batches of at least {least}, got {config['data']['batch_size']} "
            "(batch norm on its 1x1 image-pooling map has one value per channel in a batch of one)",
        )


def _boundary_weight_loss(config: dict[str, Any]) -> None:
    check_boundary_weight(config["loss"]["name"], config["loss"]["boundary_weight"])


def validates(config: dict[str, Any]) -> bool:
    """Whether a run validates: all but those whose ``data.split.val`` is ``[]``.

    Such a run trains for its fixed schedule and keeps the last epoch: how a
    recipe chosen on the validation subjects is trained again on training
    and validation subjects together (they must then be listed in
    ``data.split.train``). ``trainer.monitor``, ``patience`` and
    ``check_val_every_n_epoch`` do not apply.
    """
    return config["data"]["split"]["val"] != []


def _validation_rounds(config: dict[str, Any]) -> None:
    trainer = config["trainer"]
    if not validates(config):
        if config["scheduler"]["name"] == "plateau":
            raise InputError(
                "scheduler.name",
                "'plateau' follows the validation score, and data.split.val is [] (no validation); use cosine or none",
            )
        if trainer["snapshot_every"] is not None:
            raise InputError("trainer.snapshot_every", "shows validation images, and data.split.val is [] (no validation)")
        if trainer["max_time_minutes"] is not None:
            raise InputError(
                "trainer.max_time_minutes",
                "would stop the schedule part-way, and data.split.val is [] (no validation): the last epoch is the model",
            )
        return
    if trainer["check_val_every_n_epoch"] > trainer["max_epochs"]:
        raise InputError(
            "trainer.check_val_every_n_epoch",
            f"{trainer['check_val_every_n_epoch']} is more than trainer.max_epochs ({trainer['max_epochs']}): the run would never validate",
        )


_RULES: dict[str, Check] = {
    "name": _run_name,
    "seed": _integer(0, _SEED_MAX),
    "data.source": _source,
    "data.root": _text,
    "data.split.train": _optional(_subjects),
    "data.split.val": _optional(_subjects),
    "data.split.test": _optional(_subjects),
    "data.channels": _choice("channel mode", ("auto", *CHANNEL_MODES)),
    "data.clahe": _boolean,
    "data.normalize": _choice("normalisation", NORMALIZE_METHODS),
    "data.fov": _choice("FOV mode", FOV_MODES),
    "data.patch_size": _optional(_size_pair),
    "data.resize": _optional(_size_pair),
    "data.patches_per_image": _integer(1),
    "data.foreground_crop_prob": _number(0, 1),
    "data.batch_size": _integer(1),
    "data.num_workers": _integer(0),
    "data.augment": _augment,
    "data.relabel": _relabel,
    "model.name": _model_name,
    "loss.name": _choice("loss", LOSS_NAMES),
    "loss.class_weights": _optional(_class_weights),
    "loss.boundary_weight": _number(0),
    "optimizer.name": _choice("optimizer", OPTIMIZERS),
    "optimizer.lr": _number(0, low_open=True),
    "optimizer.weight_decay": _number(0),
    "optimizer.momentum": _number(0, 1, high_open=True),
    "scheduler.name": _optional(_choice("scheduler", SCHEDULERS)),
    "scheduler.patience": _integer(0),
    "scheduler.factor": _number(0, 1, low_open=True, high_open=True),
    "scheduler.min_lr": _number(0),
    "trainer.max_epochs": _integer(1),
    "trainer.max_time_minutes": _optional(_number(0, low_open=True)),
    "trainer.monitor": _choice("monitor", MONITORS),
    "trainer.patience": _integer(0),
    "trainer.check_val_every_n_epoch": _integer(1),
    "trainer.accelerator": _choice("accelerator", ACCELERATORS),
    "trainer.devices": _devices,
    "trainer.strategy": _strategy,
    "trainer.precision": _choice("precision", PRECISIONS),
    "trainer.limit_train_batches": _optional(_batch_limit),
    "trainer.deterministic": _boolean,
    "trainer.channels_last": _boolean,
    "trainer.snapshot_every": _optional(_integer(1)),
    "evaluation.metric_classes": _optional(_some_class_ids),
    "evaluation.roi_size": _optional(_size_pair),
    "evaluation.overlap": _number(0, 1, high_open=True),
    "evaluation.sw_batch_size": _integer(1),
    "evaluation.boundary_classes": _optional(_class_ids),
    "evaluation.fluid_classes": _optional(_class_ids),
    "evaluation.threshold": _number(0, 1, low_open=True, high_open=True),
    "evaluation.flips": _optional(_flips),
    "evaluation.ordered_layers": _boolean,
    "output.runs_dir": _text,
}
"""One check per key of :data:`DEFAULTS`, in its order; the free-form options are :data:`_SECTION_CHECKS`'."""

_SECTION_CHECKS: list[Callable[[dict[str, Any]], None]] = [
    _source_options,
    _model,
    _patches_or_resize,
    _input_fits_model,
    _batch_fits_model,
    _boundary_weight_loss,
    _validation_rounds,
]
"""Checks of options that depend on another key (the source, the model) or of rules across keys."""

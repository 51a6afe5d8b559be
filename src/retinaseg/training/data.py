"""The data a config names: read the source, relabel, split by subject, choose preprocessing."""

from __future__ import annotations

from typing import Any

from retinaseg.data.preprocess import Preprocessing, choose_channels
from retinaseg.data.relabel import relabel_from_config
from retinaseg.data.splits import split_by_subject
from retinaseg.errors import InputError
from retinaseg.io.sources import load_source
from retinaseg.training.config import validate_split
from retinaseg.types import SampleSet


def load_splits(config: dict[str, Any]) -> tuple[SampleSet, dict[str, SampleSet]]:
    """Read the configured data source and split it by subject (the split plan is checked first)."""
    validate_split(config)
    data = config["data"]
    sample_set = load_source(data["source"], data["root"], **(data["options"] or {}))
    sample_set = relabel_from_config(sample_set, data["relabel"])
    split = data["split"]
    try:
        return sample_set, split_by_subject(sample_set, train=split["train"], val=split["val"], test=split["test"])
    except InputError as err:  # split_by_subject names its arguments "splits.<name>"; the config calls them data.split.<name>
        raise InputError(err.where.replace("splits.", "data.split.", 1), err.problem) from None


def resolve_preprocessing(config: dict[str, Any], sample_set: SampleSet) -> Preprocessing:
    """Preprocessing settings for this data (``channels: auto`` resolved, ``data.resize`` kept with the model)."""
    data = config["data"]
    first_channels = sample_set.samples[0].channels if sample_set.samples else 1
    return Preprocessing(
        channels=choose_channels(data["channels"], sample_set.modality, first_channels),
        clahe=bool(data["clahe"]),
        normalize=data["normalize"],
        resize=data["resize"],
    )

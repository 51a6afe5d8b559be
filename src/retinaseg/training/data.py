"""The data a config names: read the source, relabel, split by subject, choose preprocessing."""

from __future__ import annotations

from typing import Any

from retinaseg.data.preprocess import Preprocessing, choose_channels
from retinaseg.data.relabel import relabel_from_config
from retinaseg.data.splits import split_by_subject
from retinaseg.io.sources import load_source
from retinaseg.types import SampleSet


def load_splits(config: dict[str, Any]) -> tuple[SampleSet, dict[str, SampleSet]]:
    """Read the configured data source and split it by subject."""
    data = config["data"]
    sample_set = load_source(data["source"], data["root"], **data["options"])
    sample_set = relabel_from_config(sample_set, data["relabel"])
    split = data["split"]
    return sample_set, split_by_subject(sample_set, train=split["train"], val=split["val"], test=split["test"])


def resolve_preprocessing(config: dict[str, Any], sample_set: SampleSet) -> Preprocessing:
    """Preprocessing settings for this data (``channels: auto`` resolved)."""
    data = config["data"]
    first_channels = sample_set.samples[0].channels if sample_set.samples else 1
    return Preprocessing(
        channels=choose_channels(data["channels"], sample_set.modality, first_channels),
        clahe=bool(data["clahe"]),
        normalize=data["normalize"],
    )

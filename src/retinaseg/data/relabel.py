"""Merge or renumber classes, e.g. 7 retinal layers + fluid -> one "retina" class."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from retinaseg.errors import InputError
from retinaseg.types import SampleSet, Task


def relabel(sample_set: SampleSet, mapping: dict[int, int], class_names: list[str]) -> SampleSet:
    """A copy of ``sample_set`` whose label values go through ``mapping``.

    Parameters
    ----------
    sample_set
        Labelled samples.
    mapping
        Old class id -> new class id; every old id that occurs must be mapped.
    class_names
        Names of the new classes; new ids must index into it. Two classes
        make a ``"binary"`` task.
    """
    lookup = np.full(256, -1, dtype=np.int16)
    for old, new in mapping.items():
        if not 0 <= int(new) < len(class_names):
            raise InputError("data.relabel.map", f"new class {new} has no name in class_names {class_names}")
        lookup[int(old)] = int(new)
    samples = []
    for sample in sample_set.samples:
        if sample.label is None:
            samples.append(sample)
            continue
        new_label = lookup[sample.label]
        if (new_label < 0).any():
            missing = sorted(set(np.unique(sample.label[new_label < 0]).tolist()))
            raise InputError("data.relabel.map", f"class ids {missing} of {sample.source or sample.id} are not mapped")
        samples.append(replace(sample, label=new_label.astype(np.uint8)))
    task: Task = "binary" if len(class_names) == 2 else "multiclass"
    return replace(sample_set, samples=samples, class_names=list(class_names), task=task)


def relabel_from_config(sample_set: SampleSet, relabel_config: dict[str, Any] | None) -> SampleSet:
    """Apply a config's ``data.relabel`` section (``None`` leaves the set as it is)."""
    if not relabel_config:
        return sample_set
    missing = {"class_names", "map"} - set(relabel_config)
    if missing:
        raise InputError(f"data.relabel.{min(missing)}", "missing config key")
    return relabel(sample_set, {int(k): int(v) for k, v in relabel_config["map"].items()}, list(relabel_config["class_names"]))

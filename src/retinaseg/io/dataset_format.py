"""The retinaseg on-disk dataset: the one format ``retinaseg convert`` writes.

Layout::

    DIR/dataset.json
    DIR/images/<id>.png   8/16-bit grey or 8-bit RGB, values as in the source
    DIR/labels/<id>.png   uint8 class indices (absent for unlabelled samples)
    DIR/fov/<id>.png      optional field of view, 0 = outside, 255 = inside

``dataset.json``::

    {"format": "retinaseg-dataset", "version": 1, "name": str,
     "task": "binary" | "multiclass", "modality": "oct" | "fundus",
     "class_names": [str, ...],
     "samples": [{"id": str, "subject": str, "image": "images/<id>.png",
                  "label": "labels/<id>.png" | null, "fov": "fov/<id>.png" | null,
                  "spacing_um": [row_um | null, col_um | null] | null,
                  "source": str}]}

Paths are relative to ``DIR``. ``source`` records where the sample was
converted from. Sample ids must be usable as file names (letters, digits,
``.``, ``_``, ``-``).

Floating-point images (e.g. linear OCT reflectance) must lie in ``[0, 1]``
and are stored as 16-bit, ``round(value * 65535)``; they read back as
``uint16``. Images outside ``[0, 1]`` are refused: no single scaling rule
fits them, so convert them to integers first. 16-bit colour images are
refused (PNG writing goes through Pillow, which cannot store them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.images import read_binary_mask, read_image, write_image_atomic
from retinaseg.io.limits import check_class_names
from retinaseg.io.output import DATASET, staged_output_dir
from retinaseg.io.records import read_json, write_json
from retinaseg.numeric import is_finite_number
from retinaseg.types import Sample, SampleSet

FORMAT_NAME = "retinaseg-dataset"
FORMAT_VERSION = 1
MANIFEST_NAME = "dataset.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9._\-]*$")
_TASKS = ("binary", "multiclass")
_MODALITIES = ("oct", "fundus")
_FLOAT_TO_UINT16 = 65535


def _storable_image(sample: Sample) -> np.ndarray:
    image = sample.image
    where = sample.source or sample.id
    if image.dtype.kind == "f":
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise InputError(where, "float image values must lie in [0, 1] to be stored (as 16-bit)")
        image = np.round(image * _FLOAT_TO_UINT16).astype(np.uint16)
    if image.dtype not in (np.uint8, np.uint16, np.bool_):
        raise InputError(where, f"images of type {image.dtype} cannot be stored")
    if image.dtype == np.uint16 and image.ndim == 3:
        raise InputError(where, "16-bit colour images cannot be stored as PNG")
    return image


def _check_sample(sample: Sample, num_classes: int) -> None:
    if not _SAFE_ID.match(sample.id):
        raise InputError(sample.source or sample.id, f"sample id {sample.id!r} cannot be used as a file name")
    if sample.label is not None and sample.label.max(initial=0) >= num_classes:
        raise InputError(
            sample.source or sample.id,
            f"label values reach {int(sample.label.max())}, but there are {num_classes} classes",
        )


def _write_into(sample_set: SampleSet, folder: Path) -> None:
    original = sample_set.extra.get("original_sources", {})
    for sub in ("images", "labels", "fov"):
        (folder / sub).mkdir()
    entries = []
    for sample in sample_set.samples:
        entry: dict[str, Any] = {
            "id": sample.id,
            "subject": sample.subject,
            "image": f"images/{sample.id}.png",
            "label": None,
            "fov": None,
        }
        write_image_atomic(folder / entry["image"], _storable_image(sample))
        if sample.label is not None:
            entry["label"] = f"labels/{sample.id}.png"
            write_image_atomic(folder / entry["label"], sample.label.astype(np.uint8))
        if sample.fov is not None:
            entry["fov"] = f"fov/{sample.id}.png"
            write_image_atomic(folder / entry["fov"], sample.fov.astype(bool))
        entry["spacing_um"] = None if sample.spacing_um is None else list(sample.spacing_um)
        entry["source"] = original.get(sample.id, sample.source)
        entries.append(entry)
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "name": sample_set.name,
        "task": sample_set.task,
        "modality": sample_set.modality,
        "class_names": list(sample_set.class_names),
        "samples": entries,
    }
    write_json(folder / MANIFEST_NAME, manifest)


def write_dataset(
    sample_set: SampleSet,
    out_dir: str | os.PathLike[str],
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write a sample set as a retinaseg dataset folder, all or nothing.

    Everything is written into a temporary folder beside ``out_dir``, which
    is renamed to ``out_dir`` at the end; on any error nothing is left behind
    and an existing ``out_dir`` is untouched.

    Parameters
    ----------
    sample_set
        Samples to write; ids must be unique and usable as file names.
    out_dir
        Destination folder; its parent is created if needed.
    overwrite
        Replace an existing non-empty ``out_dir``; only a folder retinaseg
        wrote is ever replaced (:mod:`retinaseg.io.output`).
    inputs
        What the samples were read from: ``out_dir`` must not be or contain it.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    InputError
        ``out_dir`` may not be written (:func:`~retinaseg.io.output.check_output_dir`); duplicate or unsafe sample ids; label values
        outside ``class_names``; images that cannot be stored (see module
        notes); an unknown task or modality; no samples; invalid
        ``class_names``.
    """
    out_dir = Path(out_dir)
    if not sample_set.samples:
        raise InputError(out_dir, f"no samples to write (from {sample_set.name or 'an empty source'})")
    check_class_names(sample_set.class_names)
    if sample_set.task not in _TASKS or sample_set.modality not in _MODALITIES:
        raise InputError(out_dir, f"unknown task {sample_set.task!r} or modality {sample_set.modality!r}")
    ids = [sample.id for sample in sample_set.samples]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(out_dir, f"duplicate sample ids: {', '.join(duplicates[:5])}")
    for sample in sample_set.samples:
        _check_sample(sample, len(sample_set.class_names))
    with staged_output_dir(out_dir, DATASET, overwrite=overwrite, inputs=inputs) as staging:
        _write_into(sample_set, staging)
    return out_dir


def _require(mapping: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, manifest: Path) -> Any:
    if key not in mapping:
        raise InputError(manifest, f"{where}missing key {key!r}")
    if not isinstance(mapping[key], kind):
        raise InputError(manifest, f"{where}key {key!r} has the wrong type ({type(mapping[key]).__name__})")
    return mapping[key]


def _member_path(folder: Path, relative: str, key: str, where: str, manifest: Path) -> Path:
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts:
        raise InputError(manifest, f"{where}{key} {relative!r} must be a path inside the dataset folder")
    return folder / path


def _spacing(value: Any, where: str, manifest: Path) -> tuple[float | None, float | None] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(v is None or (is_finite_number(v) and v > 0) for v in value):
        raise InputError(manifest, f"{where}spacing_um must be null or [row_um, col_um] (positive or null)")
    return (value[0], value[1])


def _read_entry(entry: Any, index: int, folder: Path, manifest: Path, num_classes: int) -> tuple[Sample, str]:
    if not isinstance(entry, dict):
        raise InputError(manifest, f"samples[{index}] is not an object")
    where = f"samples[{index}]: "
    sample_id = _require(entry, "id", str, where, manifest)
    subject = _require(entry, "subject", str, where, manifest)
    image_path = _member_path(folder, _require(entry, "image", str, where, manifest), "image", where, manifest)
    image = read_image(image_path)

    label = None
    if entry.get("label") is not None:
        label_path = _member_path(folder, _require(entry, "label", str, where, manifest), "label", where, manifest)
        label = read_image(label_path)
        if label.ndim != 2 or label.dtype != np.uint8:
            raise InputError(label_path, "label must be an 8-bit grey PNG of class indices")
        if label.shape != image.shape[:2]:
            raise InputError(label_path, f"label shape {label.shape} differs from image shape {image.shape[:2]}")
        if label.max(initial=0) >= num_classes:
            bad = np.unique(label[label >= num_classes]).tolist()
            raise InputError(label_path, f"label values {bad} have no class (dataset has {num_classes} classes)")

    fov = None
    if entry.get("fov") is not None:
        fov_path = _member_path(folder, _require(entry, "fov", str, where, manifest), "fov", where, manifest)
        fov = read_binary_mask(fov_path)
        if fov.shape != image.shape[:2]:
            raise InputError(fov_path, f"FOV shape {fov.shape} differs from image shape {image.shape[:2]}")

    source = entry.get("source") or ""
    sample = Sample(
        id=sample_id,
        subject=subject,
        image=image,
        label=label,
        fov=fov,
        spacing_um=_spacing(entry.get("spacing_um"), where, manifest),
        source=str(image_path),
    )
    return sample, str(source)


def read_dataset(dataset_dir: str | os.PathLike[str]) -> SampleSet:
    """Read a retinaseg dataset folder written by :func:`write_dataset`.

    Parameters
    ----------
    dataset_dir
        Folder holding ``dataset.json`` (see the module notes for the format).

    Returns
    -------
    SampleSet
        Samples in manifest order. ``Sample.source`` is the image file in the
        dataset; the manifest's ``source`` (where it was converted from) is in
        ``extra["original_sources"]`` by sample id.

    Raises
    ------
    InputError
        No or malformed ``dataset.json`` (missing keys are named), another
        format or version, unknown task or modality, duplicate ids, paths
        leaving the folder, unreadable images, labels that are not 8-bit
        grey, label values without a class (naming the label file), size
        mismatches, invalid ``class_names``, no samples.
    """
    folder = Path(dataset_dir)
    manifest = folder / MANIFEST_NAME
    if not manifest.exists():
        raise InputError(folder, f"no {MANIFEST_NAME}: not a retinaseg dataset folder")
    data = read_json(manifest)
    if not isinstance(data, dict):
        raise InputError(manifest, "expected a JSON object")
    if _require(data, "format", str, "", manifest) != FORMAT_NAME:
        raise InputError(manifest, f"format is {data['format']!r}, expected {FORMAT_NAME!r}")
    if _require(data, "version", int, "", manifest) != FORMAT_VERSION:
        raise InputError(manifest, f"unsupported version {data['version']} (this reader knows {FORMAT_VERSION})")
    name = _require(data, "name", str, "", manifest)
    task = _require(data, "task", str, "", manifest)
    modality = _require(data, "modality", str, "", manifest)
    class_names = _require(data, "class_names", list, "", manifest)
    entries = _require(data, "samples", list, "", manifest)
    if task not in _TASKS:
        raise InputError(manifest, f"task {task!r} is not one of {', '.join(_TASKS)}")
    if modality not in _MODALITIES:
        raise InputError(manifest, f"modality {modality!r} is not one of {', '.join(_MODALITIES)}")
    check_class_names(class_names, f"{manifest}: class_names")
    if not entries:
        raise InputError(manifest, "lists no samples")

    samples, sources = [], {}
    for index, entry in enumerate(entries):
        sample, source = _read_entry(entry, index, folder, manifest, len(class_names))
        if sample.id in sources:
            raise InputError(manifest, f"sample id {sample.id!r} appears twice")
        samples.append(sample)
        sources[sample.id] = source
    return SampleSet(
        samples=samples,
        class_names=class_names,
        task=task,
        modality=modality,
        name=name,
        extra={"original_sources": sources},
    )

"""Tests for retinaseg.io.dataset_format: writing and reading the retinaseg dataset folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinaseg.errors import InputError
from retinaseg.io.dataset_format import read_dataset, write_dataset
from retinaseg.io.duke import load_duke_npy
from retinaseg.io.sources import load_source
from retinaseg.types import Sample, SampleSet


def _set(*samples: Sample, classes: int = 3) -> SampleSet:
    return SampleSet(
        samples=list(samples), class_names=[f"c{k}" for k in range(classes)], task="multiclass", modality="oct", name="toy"
    )


def _toy() -> SampleSet:
    grey = Sample(
        "g8",
        "s1",
        np.array([[0, 9], [200, 255]], np.uint8),
        np.array([[0, 1], [2, 0]], np.uint8),
        fov=np.array([[True, False], [True, True]]),
        spacing_um=(3.87, None),
        source="/data/g8.png",
    )
    deep = Sample("g16", "s1", np.array([[0, 65535], [3, 4000]], np.uint16), np.zeros((2, 2), np.uint8), spacing_um=(3.87, 11.5))
    rgb = Sample("rgb-1.x", "s2", np.arange(12, dtype=np.uint8).reshape(2, 2, 3), None)
    floats = Sample("f", "s3", np.array([[0.0, 0.5], [1.0, 0.25]], np.float32), np.ones((2, 2), np.uint8))
    return _set(grey, deep, rgb, floats)


def test_round_trip(tmp_path: Path) -> None:
    toy = _toy()
    out = write_dataset(toy, tmp_path / "ds")
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["format"] == "retinaseg-dataset" and manifest["version"] == 1
    assert manifest["samples"][0] == {
        "id": "g8",
        "subject": "s1",
        "image": "images/g8.png",
        "label": "labels/g8.png",
        "fov": "fov/g8.png",
        "spacing_um": [3.87, None],
        "source": "/data/g8.png",
    }
    assert manifest["samples"][2]["label"] is None

    back = read_dataset(out)
    assert (back.name, back.task, back.modality, back.class_names) == ("toy", "multiclass", "oct", toy.class_names)
    for written, read in zip(toy.samples, back.samples):
        assert (read.id, read.subject, read.spacing_um) == (written.id, written.subject, written.spacing_um)
        if written.image.dtype.kind != "f":
            assert read.image.dtype == written.image.dtype
            np.testing.assert_array_equal(read.image, written.image)
        if written.label is None:
            assert read.label is None
        else:
            np.testing.assert_array_equal(read.label, written.label)
        assert read.source == str(out / "images" / f"{written.id}.png")
    np.testing.assert_array_equal(back.samples[0].fov, toy.samples[0].fov)
    assert back.samples[1].fov is None
    np.testing.assert_array_equal(back.samples[3].image, [[0, 32768], [65535, 16384]])  # round(v * 65535)
    assert back.extra["original_sources"]["g8"] == "/data/g8.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_real_duke_round_trip_via_source(duke_npy_root: Path, tmp_path: Path) -> None:
    duke = load_duke_npy(duke_npy_root)
    subset = SampleSet(duke.samples[:2], duke.class_names, duke.task, duke.modality, duke.name)
    write_dataset(subset, tmp_path / "duke")
    back = load_source("retinaseg", tmp_path / "duke")
    for original, read in zip(subset.samples, back.samples):
        np.testing.assert_array_equal(read.image, original.image)
        np.testing.assert_array_equal(read.label, original.label)
        assert read.spacing_um == (3.87, None)
    assert back.extra["original_sources"][subset.samples[0].id] == subset.samples[0].source


def test_existing_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    write_dataset(_toy(), out)  # an empty folder is fine
    with pytest.raises(InputError, match="not empty"):
        write_dataset(_toy(), out)
    smaller = _set(_toy().samples[0])
    write_dataset(smaller, out, overwrite=True)
    assert [s.id for s in read_dataset(out).samples] == ["g8"]
    assert not (out / "images" / "g16.png").exists()
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="refusing to replace"):
        write_dataset(_toy(), other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_dataset(_toy(), tmp_path / "file")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    good = _toy()
    bad_float = Sample("z", "s9", np.array([[0.0, 2.0]], np.float32))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        write_dataset(_set(*good.samples, bad_float), tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []  # temp folder removed, nothing renamed

    write_dataset(good, tmp_path / "ds")
    with pytest.raises(InputError):
        write_dataset(_set(*good.samples, bad_float), tmp_path / "ds", overwrite=True)
    assert len(read_dataset(tmp_path / "ds")) == 4 and sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize(
    "sample, message",
    [
        (Sample("a/b", "s", np.zeros((2, 2), np.uint8)), "cannot be used as a file name"),
        (Sample("a", "s", np.zeros((2, 2), np.uint8), np.full((2, 2), 3, np.uint8)), "3 classes"),
        (Sample("a", "s", np.zeros((2, 2, 3), np.uint16)), "16-bit colour"),
        (Sample("a", "s", np.zeros((2, 2), np.int32)), "int32"),
    ],
)
def test_unwritable_samples(tmp_path: Path, sample: Sample, message: str) -> None:
    with pytest.raises(InputError, match=message):
        write_dataset(_set(sample), tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "sample_set, message",
    [
        (SampleSet(samples=[], class_names=["bg", "fg"], name="empty"), r"ds: no samples to write \(from empty\)"),
        (_set(classes=3), "ds: no samples to write"),
        (SampleSet(samples=_toy().samples[:1], class_names="background"), "class_names: must be a list"),
        (SampleSet(samples=_toy().samples[:1], class_names=["bg", "bg", "x"]), "class_names: names bg more than once"),
    ],
    ids=["empty", "empty-multiclass", "names-string", "names-repeated"],
)
def test_nonsense_sets_are_never_written(tmp_path: Path, sample_set: SampleSet, message: str) -> None:
    with pytest.raises(InputError, match=message):
        write_dataset(sample_set, tmp_path / "ds")
    assert list(tmp_path.iterdir()) == []


def test_duplicate_ids_refused(tmp_path: Path) -> None:
    sample = _toy().samples[0]
    with pytest.raises(InputError, match="duplicate sample ids: g8"):
        write_dataset(_set(sample, sample), tmp_path / "ds")


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / "dataset.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("task"), r"dataset.json: missing key 'task'"),
        (lambda d: d["samples"][0].pop("image"), r"dataset.json: samples\[0\]: missing key 'image'"),
        (lambda d: d.update(format="other"), "expected 'retinaseg-dataset'"),
        (lambda d: d.update(version=2), "unsupported version 2"),
        (lambda d: d.update(task="regression"), "task 'regression'"),
        (lambda d: d.update(class_names=["only"]), "class_names: must name 2 to"),
        (lambda d: d.update(class_names=["a", "a", "b"]), "class_names: names a more than once"),
        (lambda d: d.update(samples=[]), "dataset.json: lists no samples"),
        (lambda d: d["samples"][0].update(label="../x.png"), "inside the dataset folder"),
        (lambda d: d["samples"][0].update(spacing_um=[1]), "spacing_um"),
        (lambda d: d["samples"].append(d["samples"][0]), "appears twice"),
        (lambda d: d["samples"][0].update(image="images/none.png"), "none.png: file not found"),
    ],
)
def test_read_bad_manifest(tmp_path: Path, edit, message: str) -> None:
    write_dataset(_toy(), tmp_path / "ds")
    _edit_manifest(tmp_path / "ds", edit)
    with pytest.raises(InputError, match=message):
        read_dataset(tmp_path / "ds")


def test_read_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no dataset.json"):
        read_dataset(tmp_path)
    out = write_dataset(_toy(), tmp_path / "ds")
    Image.fromarray(np.full((2, 2), 7, np.uint8)).save(out / "labels" / "g8.png")
    with pytest.raises(InputError, match=r"labels/g8.png: label values \[7\]"):
        read_dataset(out)
    Image.fromarray(np.zeros((3, 2), np.uint8)).save(out / "labels" / "g8.png")
    with pytest.raises(InputError, match="labels/g8.png: label shape"):
        read_dataset(out)
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(out / "labels" / "g8.png")
    with pytest.raises(InputError, match="8-bit grey"):
        read_dataset(out)
    (out / "dataset.json").write_text("{broken")
    with pytest.raises(InputError, match="dataset.json: not a valid JSON"):
        read_dataset(out)

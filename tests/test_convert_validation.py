"""``retinaseg convert`` on hostile input: one stderr line naming the file or option, exit 2, nothing written.

Each class of failure found by a hostile-input run is covered by at least two
cases: option values of the wrong type, mask values that are no class ids,
unusable VGG JSON exports, files declaring absurd sizes or that are not
regular files, and file names that are not valid UTF-8.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from retinaseg.io.dataset_format import read_dataset
from retinaseg.io.images import write_image_atomic
from retinaseg.io.paths import find_dataset
from retinaseg.io.sources import load_source

from conftest import bomb_png

RunCli = Callable[..., tuple[int, str, str]]


def _folder_source(root: Path, mask: np.ndarray | None = None) -> Path:
    """root/images/{a,b}.png with root/masks/{a,b}.png: 8x8 grey images, 0/255 masks unless ``mask`` is given."""
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    for stem in ("a", "b"):
        write_image_atomic(root / "images" / f"{stem}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
        write_image_atomic(root / "masks" / f"{stem}.png", (rng.random((8, 8)) < 0.3) if mask is None else mask)
    return root


def _vgg_source(root: Path, entries: dict) -> Path:
    """root/v.json with the given entries, and an 8x6 grey root/s.png they may refer to."""
    root.mkdir()
    write_image_atomic(root / "s.png", np.zeros((6, 8), np.uint8))
    (root / "v.json").write_text(json.dumps(entries))
    return root / "v.json"


def _polygon_entry(xs: list[float], ys: list[float], attributes: dict) -> dict:
    region = {"shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys}, "region_attributes": attributes}
    return {"s.png1": {"filename": "s.png", "size": 1, "regions": [region], "file_attributes": {}}}


def _refused(run_cli: RunCli, tmp_path: Path, *args: object) -> str:
    """Run ``convert`` expecting a refusal; return its one stderr line, having checked nothing was written."""
    before = sorted(tmp_path.iterdir())
    code, _, stderr = run_cli("convert", *args, "--out", tmp_path / "converted")
    assert code == 2, stderr
    (line,) = stderr.splitlines()
    assert line.startswith("retinaseg: error: "), line
    assert sorted(tmp_path.iterdir()) == before  # no output, no staging folder
    return line.removeprefix("retinaseg: error: ")


# --- every option value is checked before any file is read -------------------------------------


@pytest.mark.parametrize(
    "option, message",
    [
        ("value_to_class=[0, 255]", "value_to_class: must be a mapping of integers to integers or null, got [0, 255]"),
        ("value_to_class=3", "value_to_class: must be a mapping of integers to integers or null, got 3"),
        ("value_to_class={0: 0, 255: 1.5}", "value_to_class: must be a mapping"),
        ("class_names=7", "class_names: must be a list of text or null, got 7"),
        ("class_names=background", "class_names: must be a list of text or null, got 'background'"),
        ("class_names=[background]", "class_names: must name 2 to"),
        ("class_names=[bg, bg]", "class_names: names bg more than once"),
        ("modality=OCT", "modality: must be one of 'oct', 'fundus', got 'OCT'"),
        ("mask_suffix=12", "mask_suffix: must be text, got 12"),
        ("subject_pattern=p(", "subject_pattern: 'p(' is not a valid regular expression"),
        ("subject_pattern=[1]", "subject_pattern: must be text or null"),
        ("class_names=[a", "class_names: value '[a' is not valid YAML"),
        ("name={x: [}", "name: value '{x: [}' is not valid YAML"),
        ("mask_sufix=_gt", "mask_sufix: unknown folder source option 'mask_sufix'; did you mean 'mask_suffix'?"),
        ("clas_names=[a, b]", "clas_names: unknown folder source option 'clas_names'; did you mean 'class_names'?"),
        ("no_equals_sign", "no_equals_sign: option must look like key=value"),
        ("=x", "=x: option must look like key=value"),
    ],
)
def test_folder_option_values_checked_first(option: str, message: str, tmp_path: Path, run_cli: RunCli) -> None:
    root = tmp_path / "source"
    root.mkdir()  # empty: any message but the option's would come from reading
    line = _refused(run_cli, tmp_path, "folder", root, "--option", option)
    assert line.startswith(message), line


@pytest.mark.parametrize(
    "args, message",
    [
        (["vgg_json"], "class_names: source 'vgg_json' needs this option (a list of text)"),
        (["vgg_json", "--option", "class_names=[bg, x]", "--option", "class_names=[bg, y]"], "class_names: option given twice"),
        (["duke_mat", "--option", "grader=one"], "grader: must be an integer, got 'one'"),
        (["duke_mat", "--option", "crop=maybe"], "crop: must be true or false, got 'maybe'"),
        (["duke_mat", "--option", "grader=3"], "grader: must be one of 1, 2"),
        (["chase_db1", "--option", "annotator=3rdHO"], "annotator: '3rdHO' is not one of 1stHO, 2ndHO"),
        (["vgg-json"], "source: unknown source 'vgg-json'; did you mean 'vgg_json'?"),
        (["chase"], "source: unknown source 'chase'; did you mean 'chase_db1'?"),
    ],
)
def test_other_sources_options_checked_first(args: list[str], message: str, tmp_path: Path, run_cli: RunCli) -> None:
    source, *options = args
    root = tmp_path / "source"
    root.mkdir()  # empty: any message but the option's would come from reading
    line = _refused(run_cli, tmp_path, source, root, *options)
    assert line.startswith(message), line


# --- masks must hold class ids of a declared class list -----------------------------------------


@pytest.mark.parametrize(
    "mask, found",
    [
        (np.tile(np.array([0, 128, 255], np.uint8), (8, 3))[:, :8], "[0, 128, 255]"),
        (np.random.default_rng(1).integers(0, 256, (8, 8), dtype=np.uint8), "["),
    ],
    ids=["0-128-255", "random"],
)
def test_masks_that_are_not_class_ids(mask: np.ndarray, found: str, tmp_path: Path, run_cli: RunCli) -> None:
    root = _folder_source(tmp_path / "source", mask)
    line = _refused(run_cli, tmp_path, "folder", root)
    assert line.startswith(f"{root / 'masks' / 'a.png'}: mask values {found}"), line
    assert "not class ids 0..1" in line and "value_to_class" in line


def test_declared_mapping_converts_the_same_masks(tmp_path: Path, run_cli: RunCli) -> None:
    mask = np.tile(np.array([0, 128, 255], np.uint8), (8, 3))[:, :8]
    root = _folder_source(tmp_path / "source", mask)
    code, _, stderr = run_cli(
        "convert",
        "folder",
        root,
        "--out",
        tmp_path / "out",
        "--option",
        "value_to_class={0: 0, 128: 1, 255: 2}",
        "--option",
        "class_names=[bg, rim, core]",
    )
    assert code == 0, stderr
    converted = read_dataset(tmp_path / "out")
    assert converted.class_names == ["bg", "rim", "core"]
    np.testing.assert_array_equal(converted.samples[0].label, mask // 127)


# --- VGG JSON exports that would give empty or wrong masks ---------------------------------------


@pytest.mark.parametrize(
    "entries, message",
    [
        ({}, "v.json: lists no images (an empty export)"),
        (
            _polygon_entry([20, 30, 30], [0, 0, 5], {"label": "x"}),
            "v.json: image 's.png', region 0 ('x'): covers no pixel of the 8 x 6 image",
        ),
        (
            _polygon_entry([-9, -1, -5], [-9, -9, -1], {"label": "x"}),
            "v.json: image 's.png', region 0 ('x'): covers no pixel of the 8 x 6 image",
        ),
        (_polygon_entry([0, 5, 5], [0, 0, 5], {}), "v.json: image 's.png', region 0: has no class name"),
        (
            _polygon_entry([0, 5, 5], [0, 0, 5], {"grader": "A"}),
            "v.json: image 's.png', region 0: no region attribute 'label' (has ['grader'])",
        ),
        (_polygon_entry([0, 2**64, 5], [0, 0, 5], {"label": "x"}), "v.json: image 's.png', region 0: polygon needs numeric"),
        (
            _polygon_entry([0, 5, 5], [0, 0, 5], {"label": "y"}),
            "v.json: image 's.png', region 0: class 'y' is not in class_names ['bg', 'x']",
        ),
    ],
    ids=["empty", "outside-right", "outside-above", "no-attributes", "no-label", "huge-integer", "unknown-class"],
)
def test_vgg_exports_refused(entries: dict, message: str, tmp_path: Path, run_cli: RunCli) -> None:
    json_path = _vgg_source(tmp_path / "source", entries)
    line = _refused(run_cli, tmp_path, "vgg_json", json_path, "--option", "class_names=[bg, x]", "--option", "attribute=label")
    assert line.startswith(f"{json_path.parent}/{message}"), line


# --- files declaring absurd sizes, files that are not regular files -----------------------------


@pytest.mark.parametrize("spoil", ["bomb", "fifo"])
def test_folder_with_hostile_image_file(spoil: str, tmp_path: Path, run_cli: RunCli) -> None:
    root = _folder_source(tmp_path / "source")
    image = root / "images" / "b.png"
    image.unlink()
    if spoil == "bomb":
        bomb_png(image, 100_000, 100_000)
    else:
        os.mkfifo(image)  # reading it would block forever
    line = _refused(run_cli, tmp_path, "folder", root)
    assert line.startswith(f"{image}: image declares" if spoil == "bomb" else f"{image}: is not a regular file"), line


# --- file names that are not valid UTF-8 ------------------------------------------------------


def test_undecodable_file_name_in_the_message(tmp_path: Path, run_cli: RunCli) -> None:
    root = _folder_source(tmp_path / "source")
    for sub in ("images", "masks"):
        (root / sub / "a.png").rename(os.fsdecode(os.fsencode(root / sub) + b"/\xff.png"))
    line = _refused(run_cli, tmp_path, "folder", root)
    assert line.startswith(f"{root / 'images'}/\\xff.png: sample id"), line


def test_undecodable_output_name_in_the_summary(tmp_path: Path, run_cli: RunCli) -> None:
    root = _folder_source(tmp_path / "source")
    out = Path(os.fsdecode(os.fsencode(tmp_path) + b"/out\xff"))
    code, stdout, stderr = run_cli("convert", "folder", root, "--out", out)
    assert (code, stderr) == (0, "")
    assert "wrote 2 samples" in stdout and len(read_dataset(out)) == 2


# --- genuine files still convert as before ----------------------------------------------------


def test_real_octid_entries_convert(tmp_path: Path, run_cli: RunCli) -> None:
    """Three genuine makesense.ai entries (the whole export is checked in test_io_vgg_json)."""
    root = find_dataset("octid_layers_vgg_json")
    if root is None:
        pytest.skip("dataset 'octid_layers_vgg_json' not found: set RETINASEG_DATA or place it in ../shared/data")
    entries = dict(list(json.loads((root / "labels_vgg.json").read_text()).items())[:3])
    (tmp_path / "three.json").write_text(json.dumps(entries))
    options = {
        "class_names": ["background", "NFL", "GCL+IPL", "INL", "OPL", "ONL", "EZ", "RPE", "CHR"],
        "attribute": "label",
        "modality": "oct",
        "images_dir": str(root / "images"),
        "name": "octid_layers",  # an option called like load_source's own first parameter
    }
    args = [part for key, value in options.items() for part in ("--option", f"{key}={json.dumps(value)}")]
    code, stdout, stderr = run_cli("convert", "vgg_json", tmp_path / "three.json", "--out", tmp_path / "out", *args)
    assert code == 0, stderr
    assert "wrote 3 samples of 3 subjects" in stdout
    converted = read_dataset(tmp_path / "out")
    assert (converted.class_names, converted.modality, converted.name) == (options["class_names"], "oct", "octid_layers")
    for written, sample in zip(converted.samples, load_source("vgg_json", tmp_path / "three.json", **options).samples):
        assert written.id == sample.id
        np.testing.assert_array_equal(written.label, sample.label)
        np.testing.assert_array_equal(written.image, sample.image)

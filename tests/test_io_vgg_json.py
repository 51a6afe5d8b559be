"""Tests for retinaseg.io.vgg_json: VIA / makesense.ai VGG JSON exports to masks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from retinaseg.errors import InputError
from retinaseg.io.paths import find_dataset
from retinaseg.io.sources import load_source
from retinaseg.io.vgg_json import _draw_region, load_vgg_json, vgg_json_to_masks

CLASSES = ["background", "retina", "fluid"]


def _polygon(xs: list[float], ys: list[float], label: str) -> dict[str, Any]:
    return {
        "shape_attributes": {"name": "polygon", "all_points_x": xs, "all_points_y": ys},
        "region_attributes": {"label": label},
    }


def _export(path: Path, entries: dict[str, list | dict], wrap: bool = False) -> Path:
    data = {
        f"{name}123": {"filename": name, "size": 123, "regions": regions, "file_attributes": {}}
        for name, regions in entries.items()
    }
    path.write_text(json.dumps({"_via_img_metadata": data} if wrap else data))
    return path


def test_polygon_list_regions_later_drawn_over_earlier(tmp_path: Path) -> None:
    regions = [
        _polygon([1, 4, 4, 1], [1, 1, 3, 3], "retina"),  # rows 1-3, columns 1-4 (outline included)
        _polygon([3, 5, 5, 3], [2, 2, 4, 4], "fluid"),  # rows 2-4, columns 3-5, drawn on top
    ]
    path = _export(tmp_path / "a.json", {"scan.png": regions})
    masks = vgg_json_to_masks(path, CLASSES, {"scan.png": (6, 7)})
    expected = np.zeros((6, 7), np.uint8)
    expected[1:4, 1:5] = 1
    expected[2:5, 3:6] = 2
    np.testing.assert_array_equal(masks["scan.png"], expected)


def test_makesense_dict_regions_closed_polygon_and_via2(tmp_path: Path) -> None:
    # makesense.ai: regions keyed "0", "1", ...; the first point is repeated at the end.
    regions = {
        "10": _polygon([0, 1, 1, 0, 0], [0, 0, 1, 1, 0], "fluid"),
        "9": _polygon([0, 2, 2, 0, 0], [0, 0, 2, 2, 0], "retina"),
    }
    path = _export(tmp_path / "b.json", {"x.png": regions, "empty.png": []}, wrap=True)
    masks = vgg_json_to_masks(path, CLASSES, {"x.png": (3, 3), "empty.png": (2, 2)})
    np.testing.assert_array_equal(masks["x.png"], [[2, 2, 1], [2, 2, 1], [1, 1, 1]])  # "10" after "9"
    np.testing.assert_array_equal(masks["empty.png"], np.zeros((2, 2)))


def test_rect_circle_ellipse(tmp_path: Path) -> None:
    regions = [
        {"shape_attributes": {"name": "rect", "x": 0, "y": 0, "width": 2, "height": 1}, "region_attributes": {"label": "retina"}},
        {"shape_attributes": {"name": "circle", "cx": 5, "cy": 5, "r": 1}, "region_attributes": {"label": "fluid"}},
        {"shape_attributes": {"name": "ellipse", "cx": 1, "cy": 5, "rx": 1, "ry": 0}, "region_attributes": {"label": "fluid"}},
    ]
    mask = vgg_json_to_masks(_export(tmp_path / "c.json", {"s.png": regions}), CLASSES, {"s.png": (7, 7)})["s.png"]
    np.testing.assert_array_equal(mask[:2, :3], [[1, 1, 1], [1, 1, 1]])
    np.testing.assert_array_equal(mask[4:7, 4:7], [[0, 2, 0], [2, 2, 2], [0, 2, 0]])
    np.testing.assert_array_equal(mask[5, :3], [2, 2, 2])
    assert mask.sum() == 6 * 1 + 5 * 2 + 3 * 2


def test_sizes_from_images_folder_and_load_vgg_json(tmp_path: Path) -> None:
    Image.fromarray(np.full((5, 8, 3), 40, np.uint8)).save(tmp_path / "p07_scan.png")
    path = _export(tmp_path / "d.json", {"p07_scan.png": [_polygon([0, 7, 7], [0, 0, 4], "retina")]})
    assert vgg_json_to_masks(path, CLASSES, tmp_path)["p07_scan.png"].shape == (5, 8)
    samples = load_vgg_json(path, class_names=CLASSES, subject_pattern=r"^(p\d+)_", modality="oct")
    sample = samples.samples[0]
    assert (sample.id, sample.subject, sample.image.shape) == ("p07_scan", "p07", (5, 8, 3))
    assert samples.task == "multiclass" and samples.name == "d"
    assert sample.label[0, 7] == 1 and sample.label[4, 0] == 0  # upper-right triangle
    via_source = load_source("vgg_json", path, images_dir=tmp_path, class_names=CLASSES)
    np.testing.assert_array_equal(via_source.samples[0].label, sample.label)


def test_unknown_class_names_file_image_and_name(tmp_path: Path) -> None:
    path = _export(tmp_path / "e.json", {"s.png": [_polygon([0, 1, 1], [0, 0, 1], "drusen")]})
    with pytest.raises(InputError, match=r"e\.json: image 's\.png', region 0: class 'drusen' is not in"):
        vgg_json_to_masks(path, CLASSES, {"s.png": (2, 2)})


@pytest.mark.parametrize(
    "region, message",
    [
        (
            {
                "shape_attributes": {"name": "polyline", "all_points_x": [0, 1], "all_points_y": [0, 1]},
                "region_attributes": {"label": "retina"},
            },
            "unsupported shape 'polyline'",
        ),
        (
            {"shape_attributes": {"name": "point", "cx": 1, "cy": 1}, "region_attributes": {"label": "retina"}},
            "unsupported shape 'point'",
        ),
        (_polygon([0, 1], [0, 1], "retina"), "at least 3 points"),
        (_polygon([0, 1, 2], [0, 1], "retina"), "at least 3 points"),
        (_polygon([0, "a", 2], [0, 1, 2], "retina"), "numeric"),
        (
            {
                "shape_attributes": {"name": "ellipse", "cx": 1, "cy": 1, "rx": 1, "ry": 1, "theta": 0.5},
                "region_attributes": {"label": "retina"},
            },
            "rotated",
        ),
        (
            {
                "shape_attributes": {"name": "polygon", "all_points_x": [0, 1, 1], "all_points_y": [0, 0, 1]},
                "region_attributes": {},
            },
            "has no class name",
        ),
        (
            {
                "shape_attributes": {"name": "polygon", "all_points_x": [0, 1, 1], "all_points_y": [0, 0, 1]},
                "region_attributes": "retina",
            },
            "region_attributes must be an object",
        ),
        (_polygon([0, 2**64, 2], [0, 1, 2], "retina"), "numeric"),
        (_polygon([0, float("nan"), 2], [0, 1, 2], "retina"), "numeric"),
        ({"region_attributes": {"label": "retina"}}, "no shape_attributes"),
        (
            {
                "shape_attributes": {"name": "rect", "x": 2, "y": 0, "width": -1, "height": 1},
                "region_attributes": {"label": "retina"},
            },
            "negative size",
        ),
        (
            {"shape_attributes": {"name": "circle", "cx": 1, "cy": 1, "r": -1}, "region_attributes": {"label": "retina"}},
            "negative radius",
        ),
    ],
)
def test_malformed_regions(tmp_path: Path, region: dict[str, Any], message: str) -> None:
    path = _export(tmp_path / "f.json", {"s.png": [region]})
    with pytest.raises(InputError, match=message):
        vgg_json_to_masks(path, CLASSES, {"s.png": (3, 3)})


def test_attribute_choice(tmp_path: Path) -> None:
    region = _polygon([0, 1, 1], [0, 0, 1], "retina")
    region["region_attributes"]["grader"] = "A"
    path = _export(tmp_path / "g.json", {"s.png": [region]})
    with pytest.raises(InputError, match="give attribute="):
        vgg_json_to_masks(path, CLASSES, {"s.png": (2, 2)})
    assert vgg_json_to_masks(path, CLASSES, {"s.png": (2, 2)}, attribute="label")["s.png"].max() == 1
    with pytest.raises(InputError, match="no region attribute 'class'"):
        vgg_json_to_masks(path, CLASSES, {"s.png": (2, 2)}, attribute="class")


def test_malformed_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    for text, message in [
        ("{not json", "not a valid VGG JSON file"),
        ("[1, 2]", "JSON object"),
        ('{"k": {"regions": []}}', "no 'filename'"),
        ('{"k": {"filename": "../x.png", "regions": []}}', "plain file name"),
        ('{"k": {"filename": "x.png", "regions": 5}}', "must be a list"),
        ('{"k": {"filename": "x.png", "regions": {"a": {}}}}', "region keys"),
        ('{"k": {"filename": "x.png"}, "k2": {"filename": "x.png"}}', "listed twice"),
    ]:
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            vgg_json_to_masks(bad, CLASSES, {"x.png": (2, 2)})
    with pytest.raises(InputError, match="file not found"):
        vgg_json_to_masks(tmp_path / "none.json", CLASSES, {})
    path = _export(tmp_path / "h.json", {"s.png": []})
    with pytest.raises(InputError, match="no size given for image 's.png'"):
        vgg_json_to_masks(path, CLASSES, {})
    with pytest.raises(InputError, match="image 's.png' not found"):
        vgg_json_to_masks(path, CLASSES, tmp_path)


# --- refused exports: one line naming the file (and the image and region) ---------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"k": {"filename": "x.png", "size": ' + "9" * 5000 + "}}", "not a valid VGG JSON file"),
        ("{}", "lists no images"),
        ('{"_via_img_metadata": {}}', "lists no images"),
        ('{"k": {"filename": "x.png", "regions": []}}', "none of its 1 images has a region"),
    ],
    ids=["deep", "long-integer", "empty", "empty-via2", "no-region"],
)
def test_unusable_exports(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "v.json"
    path.write_text(text)
    with pytest.raises(InputError, match=rf"^{path}: .*{message}"):
        vgg_json_to_masks(path, CLASSES, {"x.png": (2, 2)})


def test_export_not_a_regular_file_or_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(tmp_path / "pipe.json")  # reading it would block forever
    with pytest.raises(InputError, match="pipe.json: is not a regular"):
        vgg_json_to_masks(tmp_path / "pipe.json", CLASSES, {})
    path = _export(tmp_path / "big.json", {"s.png": [_polygon([0, 1, 1], [0, 0, 1], "retina")]})
    monkeypatch.setattr("retinaseg.io.records.MAX_JSON_BYTES", path.stat().st_size - 1)
    with pytest.raises(InputError, match="big.json: VGG JSON file of 0 MB; at most 0 MB"):
        vgg_json_to_masks(path, CLASSES, {"s.png": (2, 2)})


@pytest.mark.parametrize(
    "region",
    [
        _polygon([10, 12, 12], [0, 0, 2], "fluid"),  # right of a 5 x 4 image
        _polygon([-3, -1, -2], [-3, -3, -1], "fluid"),  # above and left of it
        {"shape_attributes": {"name": "circle", "cx": 2, "cy": 2, "r": 0}, "region_attributes": {"label": "fluid"}},
    ],
    ids=["right", "above-left", "zero-size"],
)
def test_region_covering_no_pixel_is_named(tmp_path: Path, region: dict[str, Any]) -> None:
    path = _export(tmp_path / "o.json", {"s.png": [_polygon([0, 1, 1], [0, 0, 1], "retina"), region]})
    with pytest.raises(InputError, match=r"o.json: image 's.png', region 1 \('fluid'\): covers no pixel of the 5 x 4"):
        vgg_json_to_masks(path, CLASSES, {"s.png": (4, 5)})


def test_region_partly_outside_is_clipped(tmp_path: Path) -> None:
    path = _export(tmp_path / "c.json", {"s.png": [_polygon([-5, 1, 1, -5], [-5, -5, 1, 1], "retina")]})
    np.testing.assert_array_equal(vgg_json_to_masks(path, CLASSES, {"s.png": (3, 3)})["s.png"], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


@pytest.mark.parametrize(
    "class_names, message",
    [
        ("background", "must be a list of class names"),
        (["background"], "must name 2 to"),
        (["background", "retina", "retina"], "names retina more than once"),
        (["background", ""], "every name must be non-empty text"),
        (["background", 3], "every name must be non-empty text"),
    ],
)
def test_class_names_checked_before_reading(tmp_path: Path, class_names: object, message: str) -> None:
    with pytest.raises(InputError, match=rf"^class_names: {message}"):
        load_vgg_json(tmp_path / "not_read.json", class_names=class_names)


def test_bad_subject_pattern_checked_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^subject_pattern: '\(' is not a valid regular expression"):
        load_vgg_json(tmp_path / "not_read.json", class_names=CLASSES, subject_pattern="(")


# --- the real makesense.ai export -------------------------------------------------------------

OCTID_CLASSES = ["background", "NFL", "GCL+IPL", "INL", "OPL", "ONL", "EZ", "RPE", "CHR"]


def test_real_octid_export() -> None:
    root = find_dataset("octid_layers_vgg_json")
    if root is None:
        pytest.skip("dataset 'octid_layers_vgg_json' not found: set RETINASEG_DATA or place it in ../shared/data")
    samples = load_source(
        "vgg_json",
        root / "labels_vgg.json",
        images_dir=str(root / "images"),
        class_names=OCTID_CLASSES,
        attribute="label",
        modality="oct",
    )
    assert len(samples) == 100 and len(samples.subjects()) == 100  # SOURCE.md: no subject ids
    assert samples.class_names == OCTID_CLASSES and samples.task == "multiclass"
    for sample in samples.samples:
        assert sample.image.shape == (500, 750, 3) and sample.label.shape == (500, 750)
    # Pixels per class over all 100 masks, measured with the drawing rule of the module notes:
    # a change here changes what every genuine export converts to.
    counts = np.bincount(np.concatenate([s.label.ravel() for s in samples.samples]), minlength=9)
    assert counts.tolist() == [29418599, 237863, 1245391, 642920, 512526, 1653727, 570633, 699779, 2518562]


def test_refusals_and_masks_match_drawing_each_region_on_the_whole_image(tmp_path: Path) -> None:
    """The drawing window used to spot regions that cover nothing changes no pixel of the result."""
    rng = np.random.default_rng(7)
    height, width = 30, 40
    regions = []
    for k in range(300):
        x, y = rng.uniform(-15, width + 15, 2)
        label = CLASSES[1 + k % 2]
        kind = k % 4
        if kind == 0:
            region = _polygon((x + rng.uniform(-6, 6, 4)).tolist(), (y + rng.uniform(-6, 6, 4)).tolist(), label)
        else:
            shape = [
                {"name": "rect", "x": x, "y": y, "width": rng.uniform(0, 5), "height": rng.uniform(0, 5)},
                {"name": "circle", "cx": x, "cy": y, "r": rng.uniform(0, 3)},
                {"name": "ellipse", "cx": x, "cy": y, "rx": rng.uniform(0, 3), "ry": rng.uniform(0, 3)},
            ][kind - 1]
            region = {"shape_attributes": shape, "region_attributes": {"label": label}}
        regions.append(region)

    def alone(region: dict[str, Any]) -> np.ndarray:
        path = _export(tmp_path / "one.json", {"s.png": [region]})
        try:
            return vgg_json_to_masks(path, CLASSES, {"s.png": (height, width)})["s.png"]
        except InputError as error:
            assert "covers no pixel" in str(error)
            return np.zeros((height, width), np.uint8)

    def drawn_on_whole_image(region: dict[str, Any]) -> np.ndarray:
        canvas = Image.new("L", (width, height), 0)
        _draw_region(ImageDraw.Draw(canvas), region["shape_attributes"], 1, "", tmp_path)
        return np.asarray(canvas)

    covering = []
    for region in regions:
        whole = drawn_on_whole_image(region)
        np.testing.assert_array_equal(alone(region) > 0, whole > 0)
        if whole.any():
            covering.append(region)
    assert 0 < len(covering) < len(regions)  # both kinds occur
    expected = Image.new("L", (width, height), 0)
    for region in covering:
        _draw_region(
            ImageDraw.Draw(expected),
            region["shape_attributes"],
            CLASSES.index(region["region_attributes"]["label"]),
            "",
            tmp_path,
        )
    masks = vgg_json_to_masks(_export(tmp_path / "all.json", {"s.png": covering}), CLASSES, {"s.png": (height, width)})
    np.testing.assert_array_equal(masks["s.png"], np.asarray(expected))

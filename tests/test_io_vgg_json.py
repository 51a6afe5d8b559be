"""Tests for retinaseg.io.vgg_json: VIA / makesense.ai VGG JSON exports to masks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from retinaseg.errors import InputError
from retinaseg.io.sources import load_source
from retinaseg.io.vgg_json import load_vgg_json, vgg_json_to_masks

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
        {"shape_attributes": {"name": "rect", "x": 0, "y": 0, "width": 2, "height": 1},
         "region_attributes": {"label": "retina"}},
        {"shape_attributes": {"name": "circle", "cx": 5, "cy": 5, "r": 1},
         "region_attributes": {"label": "fluid"}},
        {"shape_attributes": {"name": "ellipse", "cx": 1, "cy": 5, "rx": 1, "ry": 0},
         "region_attributes": {"label": "fluid"}},
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
        ({"shape_attributes": {"name": "polyline", "all_points_x": [0, 1], "all_points_y": [0, 1]},
          "region_attributes": {"label": "retina"}}, "unsupported shape 'polyline'"),
        ({"shape_attributes": {"name": "point", "cx": 1, "cy": 1}, "region_attributes": {"label": "retina"}},
         "unsupported shape 'point'"),
        (_polygon([0, 1], [0, 1], "retina"), "at least 3 points"),
        (_polygon([0, 1, 2], [0, 1], "retina"), "at least 3 points"),
        (_polygon([0, "a", 2], [0, 1, 2], "retina"), "numeric"),
        ({"shape_attributes": {"name": "ellipse", "cx": 1, "cy": 1, "rx": 1, "ry": 1, "theta": 0.5},
          "region_attributes": {"label": "retina"}}, "rotated"),
        ({"shape_attributes": {"name": "polygon", "all_points_x": [0, 1, 1], "all_points_y": [0, 0, 1]},
          "region_attributes": {}}, "cannot tell the class"),
        ({"region_attributes": {"label": "retina"}}, "no shape_attributes"),
        ({"shape_attributes": {"name": "rect", "x": 2, "y": 0, "width": -1, "height": 1},
          "region_attributes": {"label": "retina"}}, "negative size"),
        ({"shape_attributes": {"name": "circle", "cx": 1, "cy": 1, "r": -1},
          "region_attributes": {"label": "retina"}}, "negative radius"),
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
        ("{not json", "not a valid JSON"),
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

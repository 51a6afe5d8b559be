"""Rasterise VGG Image Annotator (VIA) / makesense.ai "VGG JSON" exports.

Format read (makesense.ai writes VIA 1 style, keyed by file name; VIA 2
project files keep the same dict under ``"_via_img_metadata"``)::

    {"<key>": {"filename": "scan01.png", "size": 12345, "file_attributes": {},
               "regions": [{"shape_attributes": {"name": "polygon",
                                                 "all_points_x": [...],
                                                 "all_points_y": [...]},
                            "region_attributes": {"label": "RPE"}}]}}

``regions`` may also be a dict keyed ``"0"``, ``"1"``, ... (makesense.ai,
VIA 1); it is read in numeric key order. Shapes: ``polygon``, ``rect``,
``circle`` and axis-aligned ``ellipse``. Regions are drawn in file order with
Pillow's ``ImageDraw``, so a later region paints over an earlier one where
they overlap. A pixel belongs to a shape when Pillow's filled outline covers
it (outline pixels included). Coordinates are pixels, x = column, y = row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from retinaseg.errors import InputError
from retinaseg.io.folders import subject_id
from retinaseg.io.images import image_size, read_image
from retinaseg.types import Modality, Sample, SampleSet

_VIA2_KEY = "_via_img_metadata"


def _load_entries(json_path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(json_path, "file not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(json_path, f"not a valid JSON file ({exc})") from exc
    if isinstance(data, dict) and isinstance(data.get(_VIA2_KEY), dict):
        data = data[_VIA2_KEY]
    if not isinstance(data, dict):
        raise InputError(json_path, "expected a JSON object keyed by image (VGG / VIA format)")
    entries = []
    for key, entry in data.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise InputError(json_path, f"entry {key!r} has no 'filename'")
        if Path(entry["filename"]).name != entry["filename"] or entry["filename"] in ("", ".", ".."):
            raise InputError(json_path, f"entry {key!r}: filename {entry['filename']!r} must be a plain file name")
        if not isinstance(entry.get("regions", []), (list, dict)):
            raise InputError(json_path, f"entry {key!r}: 'regions' must be a list or an object")
        entries.append(entry)
    names = [entry["filename"] for entry in entries]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(json_path, f"images listed twice: {', '.join(duplicates)}")
    return entries


def _regions(entry: dict[str, Any], json_path: Path) -> list[Any]:
    regions = entry.get("regions", [])
    if isinstance(regions, list):
        return regions
    try:
        return [regions[key] for key in sorted(regions, key=int)]
    except ValueError as exc:
        raise InputError(json_path, f"image {entry['filename']!r}: region keys must be integers") from exc


def _class_name(region: dict[str, Any], attribute: str | None, where: str, json_path: Path) -> str:
    attributes = region.get("region_attributes") or {}
    if attribute is None:
        if len(attributes) != 1:
            raise InputError(
                json_path,
                f"{where}: cannot tell the class from region_attributes {sorted(attributes)}; give attribute=",
            )
        (value,) = attributes.values()
    elif attribute in attributes:
        value = attributes[attribute]
    else:
        raise InputError(json_path, f"{where}: no region attribute {attribute!r}")
    if not isinstance(value, str):
        raise InputError(json_path, f"{where}: class name must be a string, got {value!r}")
    return value


def _numbers(shape: dict[str, Any], keys: tuple[str, ...], where: str, json_path: Path) -> list[Any]:
    values = [shape.get(key) for key in keys]
    if not all(_is_number(v) or (isinstance(v, list) and all(_is_number(x) for x in v)) for v in values):
        raise InputError(json_path, f"{where}: {shape.get('name')} needs numeric {', '.join(keys)}")
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _draw_region(
    draw: ImageDraw.ImageDraw, shape: dict[str, Any], class_id: int, where: str, json_path: Path
) -> None:
    kind = shape.get("name")
    if kind == "polygon":
        xs, ys = _numbers(shape, ("all_points_x", "all_points_y"), where, json_path)
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or len(xs) < 3:
            raise InputError(json_path, f"{where}: polygon needs at least 3 points with as many x as y")
        draw.polygon(list(zip(xs, ys)), fill=class_id, outline=class_id)
    elif kind == "rect":
        x, y, width, height = _numbers(shape, ("x", "y", "width", "height"), where, json_path)
        if width < 0 or height < 0:
            raise InputError(json_path, f"{where}: rect has a negative size")
        draw.rectangle([x, y, x + width, y + height], fill=class_id)
    elif kind in ("circle", "ellipse"):
        if kind == "circle":
            cx, cy, rx = _numbers(shape, ("cx", "cy", "r"), where, json_path)
            ry = rx
        else:
            cx, cy, rx, ry = _numbers(shape, ("cx", "cy", "rx", "ry"), where, json_path)
            if shape.get("theta", 0):
                raise InputError(json_path, f"{where}: rotated ellipses are not supported")
        if rx < 0 or ry < 0:
            raise InputError(json_path, f"{where}: {kind} has a negative radius")
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=class_id)
    else:
        raise InputError(json_path, f"{where}: unsupported shape {kind!r} (polygon, rect, circle, ellipse)")


def vgg_json_to_masks(
    json_path: str | os.PathLike[str],
    class_names: list[str],
    image_sizes: dict[str, tuple[int, int]] | str | os.PathLike[str],
    *,
    attribute: str | None = None,
) -> dict[str, np.ndarray]:
    """Turn a VGG JSON export into one class-index mask per image.

    Parameters
    ----------
    json_path
        The exported ``.json`` file.
    class_names
        Class names; a region's class id is the index of its name here
        (index 0 is the background, left where no region is drawn).
    image_sizes
        ``{filename: (height, width)}``, or a folder holding the images, whose
        sizes are then read from the file headers.
    attribute
        Region attribute holding the class name (makesense.ai: ``"label"``).
        Default: the region's only attribute.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{filename: (H, W) uint8 mask}`` for every image in the file (an
        image without regions gives an all-background mask).

    Raises
    ------
    InputError
        Malformed JSON or entries; an unknown class name (naming the image
        and the name); an unsupported or malformed shape; an image whose
        size is not given or whose file is missing from the folder.
    """
    json_path = Path(json_path)
    class_ids = {name: index for index, name in enumerate(class_names)}
    if len(class_ids) > 256:
        raise InputError("class_names", "at most 256 classes fit a uint8 mask")
    masks = {}
    for entry in _load_entries(json_path):
        filename = entry["filename"]
        if isinstance(image_sizes, dict):
            if filename not in image_sizes:
                raise InputError(json_path, f"no size given for image {filename!r}")
            height, width = image_sizes[filename]
        else:
            image_path = Path(image_sizes) / filename
            if not image_path.is_file():
                raise InputError(json_path, f"image {filename!r} not found in {image_sizes}")
            height, width = image_size(image_path)
        canvas = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(canvas)
        for index, region in enumerate(_regions(entry, json_path)):
            where = f"image {filename!r}, region {index}"
            if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
                raise InputError(json_path, f"{where}: no shape_attributes")
            name = _class_name(region, attribute, where, json_path)
            if name not in class_ids:
                raise InputError(json_path, f"{where}: class {name!r} is not in class_names {class_names}")
            _draw_region(draw, region["shape_attributes"], class_ids[name], where, json_path)
        masks[filename] = np.asarray(canvas, dtype=np.uint8)
    return masks


def load_vgg_json(
    json_path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str] | None = None,
    *,
    class_names: list[str],
    attribute: str | None = None,
    subject_pattern: str | None = None,
    modality: Modality = "fundus",
    name: str = "",
) -> SampleSet:
    """Load the images of a VGG JSON export with their rasterised masks.

    Parameters
    ----------
    json_path
        The exported ``.json`` file.
    images_dir
        Folder of the annotated images; default: the JSON file's folder.
    class_names, attribute
        See :func:`vgg_json_to_masks`.
    subject_pattern
        Regular expression giving the subject from the image stem (see
        :func:`~retinaseg.io.folders.subject_id`); default: the stem.
    modality
        ``"fundus"`` or ``"oct"``.
    name
        Name of the set; default: the JSON file's stem.

    Returns
    -------
    SampleSet
        One sample per image listed in the JSON (makesense.ai leaves
        unannotated images out), sorted by file name; id = file stem. Task
        ``"binary"`` for two classes, else ``"multiclass"``.

    Raises
    ------
    InputError
        As :func:`vgg_json_to_masks`; also unreadable images and duplicate
        stems.
    """
    json_path = Path(json_path)
    images_dir = json_path.parent if images_dir is None else Path(images_dir)
    masks = vgg_json_to_masks(json_path, class_names, images_dir, attribute=attribute)
    samples: dict[str, Sample] = {}
    for filename in sorted(masks):
        image_path = images_dir / filename
        if image_path.stem in samples:
            raise InputError(json_path, f"two images with stem {image_path.stem!r}")
        samples[image_path.stem] = Sample(
            id=image_path.stem,
            subject=subject_id(image_path.stem, subject_pattern, image_path),
            image=read_image(image_path),
            label=masks[filename],
            source=str(image_path),
        )
    return SampleSet(
        samples=list(samples.values()),
        class_names=list(class_names),
        task="binary" if len(class_names) == 2 else "multiclass",
        modality=modality,
        name=name or json_path.stem,
    )

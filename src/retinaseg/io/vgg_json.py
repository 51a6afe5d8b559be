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

A region partly outside its image is clipped to it. A region that covers no
pixel of its image (drawn outside it, or of zero size) is an error naming the
image and the region: it is a mistake in the file, not an empty annotation.
A file that lists no image, or whose images have no region at all, is
refused too.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from retinaseg.errors import InputError
from retinaseg.io.folders import compile_subject_pattern, subject_id
from retinaseg.io.images import image_size, read_image
from retinaseg.io.limits import check_class_names, check_image_size
from retinaseg.io.records import read_json
from retinaseg.numeric import is_number
from retinaseg.types import Modality, Sample, SampleSet

_VIA2_KEY = "_via_img_metadata"
# Pillow draws with 32-bit integers; real vertices lie within a few pixels of
# their image (MAX_IMAGE_SIDE at most), so anything farther is a broken file.
_MAX_COORDINATE = 1_000_000
# Pillow rounds coordinates to pixels and draws 1-pixel outlines: it paints
# nothing farther than this from a shape's coordinates.
_MARGIN = 2


def _load_entries(json_path: Path) -> list[dict[str, Any]]:
    data = read_json(json_path, "VGG JSON file")
    if isinstance(data, dict) and isinstance(data.get(_VIA2_KEY), dict):
        data = data[_VIA2_KEY]
    if not isinstance(data, dict):
        raise InputError(json_path, "expected a JSON object keyed by image (VGG / VIA format)")
    if not data:
        raise InputError(json_path, "lists no images (an empty export)")
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
    if not isinstance(attributes, dict):
        raise InputError(json_path, f"{where}: region_attributes must be an object, got {attributes!r:.60}")
    if not attributes:
        raise InputError(json_path, f"{where}: has no class name (region_attributes is empty)")
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
        raise InputError(json_path, f"{where}: no region attribute {attribute!r} (has {sorted(attributes)})")
    if not isinstance(value, str):
        raise InputError(json_path, f"{where}: class name must be a string, got {value!r}")
    return value


def _numbers(shape: dict[str, Any], keys: tuple[str, ...], where: str, json_path: Path) -> list[Any]:
    values = [shape.get(key) for key in keys]
    if not all(_is_number(v) or (isinstance(v, list) and all(_is_number(x) for x in v)) for v in values):
        raise InputError(
            json_path,
            f"{where}: {shape.get('name')} needs numeric {', '.join(keys)} within +-{_MAX_COORDINATE} pixels",
        )
    return values


def _is_number(value: Any) -> bool:
    """A JSON number usable as a pixel coordinate (finite, within :data:`_MAX_COORDINATE`)."""
    # abs() first: converting integers beyond 2**63 to floats can overflow.
    return is_number(value) and abs(value) <= _MAX_COORDINATE


def _draw_region(
    draw: ImageDraw.ImageDraw, shape: dict[str, Any], class_id: int, where: str, json_path: Path
) -> tuple[float, float, float, float]:
    """Draw one shape; return the bounding box ``(x0, y0, x1, y1)`` of its coordinates."""
    kind = shape.get("name")
    if kind == "polygon":
        xs, ys = _numbers(shape, ("all_points_x", "all_points_y"), where, json_path)
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or len(xs) < 3:
            raise InputError(json_path, f"{where}: polygon needs at least 3 points with as many x as y")
        draw.polygon(list(zip(xs, ys)), fill=class_id, outline=class_id)
        return (min(xs), min(ys), max(xs), max(ys))
    if kind == "rect":
        x, y, width, height = _numbers(shape, ("x", "y", "width", "height"), where, json_path)
        if width < 0 or height < 0:
            raise InputError(json_path, f"{where}: rect has a negative size")
        draw.rectangle([x, y, x + width, y + height], fill=class_id)
        return (x, y, x + width, y + height)
    if kind in ("circle", "ellipse"):
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
        return (cx - rx, cy - ry, cx + rx, cy + ry)
    raise InputError(json_path, f"{where}: unsupported shape {kind!r} (polygon, rect, circle, ellipse)")


def _window(bounds: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box ``(left, top, right, bottom)``, clipped to the image and maybe empty, that holds
    every pixel a shape with these coordinate bounds can paint."""
    x0, y0, x1, y1 = bounds
    left = min(max(math.floor(x0) - _MARGIN, 0), width)
    top = min(max(math.floor(y0) - _MARGIN, 0), height)
    right = max(min(math.ceil(x1) + _MARGIN + 1, width), left)
    bottom = max(min(math.ceil(y1) + _MARGIN + 1, height), top)
    return (left, top, right, bottom)


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
        An invalid ``class_names``; a missing, huge, malformed or empty
        file; malformed entries; a region without a class name, or with one
        not in ``class_names`` (naming the image and the name); an
        unsupported or malformed shape, coordinates beyond
        :data:`_MAX_COORDINATE`; a region covering no pixel of its image; no
        region in any image; an image whose size is not given or whose file
        is missing from the folder or too large.
    """
    json_path = Path(json_path)
    class_ids = {name: index for index, name in enumerate(check_class_names(class_names))}
    masks, regions = {}, 0
    for entry in _load_entries(json_path):
        size = _image_size(entry["filename"], image_sizes, json_path)
        masks[entry["filename"]] = _rasterise(entry, size, class_ids, attribute, json_path)
        regions += len(_regions(entry, json_path))
    if regions == 0:
        raise InputError(json_path, f"none of its {len(masks)} images has a region: nothing is annotated")
    return masks


def _image_size(
    filename: str, image_sizes: dict[str, tuple[int, int]] | str | os.PathLike[str], json_path: Path
) -> tuple[int, int]:
    """``(height, width)`` of an annotated image, given or read from its file's header."""
    if isinstance(image_sizes, dict):
        if filename not in image_sizes:
            raise InputError(json_path, f"no size given for image {filename!r}")
        height, width = image_sizes[filename]
        check_image_size(height, width, f"{json_path}: image {filename!r}")
        return height, width
    image_path = Path(image_sizes) / filename
    if not image_path.exists():
        raise InputError(json_path, f"image {filename!r} not found in {image_sizes}")
    return image_size(image_path)


def _rasterise(
    entry: dict[str, Any], size: tuple[int, int], class_ids: dict[str, int], attribute: str | None, json_path: Path
) -> np.ndarray:
    """The ``(H, W)`` uint8 class-id mask of one image's regions, drawn in file order."""
    height, width = size
    canvas = Image.new("L", (width, height), 0)
    # Each region is drawn alone first, to tell one that paints no pixel of the
    # image; work stays within the region's window, not the whole image.
    scratch = Image.new("L", (width, height), 0)
    for index, region in enumerate(_regions(entry, json_path)):
        where = f"image {entry['filename']!r}, region {index}"
        if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
            raise InputError(json_path, f"{where}: no shape_attributes")
        name = _class_name(region, attribute, where, json_path)
        if name not in class_ids:
            raise InputError(json_path, f"{where}: class {name!r} is not in class_names {list(class_ids)}")
        bounds = _draw_region(ImageDraw.Draw(scratch), region["shape_attributes"], 255, where, json_path)
        window = _window(bounds, width, height)
        shape = scratch.crop(window)
        if shape.getbbox() is None:
            raise InputError(
                json_path,
                f"{where} ({name!r}): covers no pixel of the {width} x {height} image "
                "(it lies outside the image or has zero size)",
            )
        canvas.paste(class_ids[name], window, mask=shape)
        scratch.paste(0, window)
    return np.asarray(canvas, dtype=np.uint8)


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
        Invalid options (checked before any file is read); as
        :func:`vgg_json_to_masks`; also unreadable images and duplicate
        stems.
    """
    json_path = Path(json_path)
    class_names = check_class_names(class_names)
    pattern = compile_subject_pattern(subject_pattern)
    if attribute is not None and not isinstance(attribute, str):
        raise InputError("attribute", f"must be the name of a region attribute (text), got {attribute!r:.60}")
    images_dir = json_path.parent if images_dir is None else Path(images_dir)
    masks = vgg_json_to_masks(json_path, class_names, images_dir, attribute=attribute)
    samples: dict[str, Sample] = {}
    for filename in sorted(masks):
        image_path = images_dir / filename
        if image_path.stem in samples:
            raise InputError(json_path, f"two images with stem {image_path.stem!r}")
        samples[image_path.stem] = Sample(
            id=image_path.stem,
            subject=subject_id(image_path.stem, pattern, image_path),
            image=read_image(image_path),
            label=masks[filename],
            source=str(image_path),
        )
    return SampleSet(
        samples=list(samples.values()),
        class_names=class_names,
        task="binary" if len(class_names) == 2 else "multiclass",
        modality=modality,
        name=name or json_path.stem,
    )

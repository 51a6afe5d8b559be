"""Tests for retinaseg.io.images: reading images and masks, atomic PNG writing."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from retinaseg.errors import InputError
from retinaseg.io.images import (
    image_size,
    read_binary_mask,
    read_image,
    read_label_image,
    write_image_atomic,
)

from conftest import bomb_png, png_chunk


def _png_16bit_rgb(path: Path, height: int = 2, width: int = 2) -> None:
    """A valid 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(6 * width) for _ in range(height))
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def bomb_tiff(path: Path, height: int, width: int) -> Path:
    """A 4x4 TIFF whose size tags are overwritten to declare ``height`` x ``width`` pixels."""
    tifffile.imwrite(path, np.zeros((4, 4), np.uint8))
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags["ImageLength"].overwrite(height)
        tif.pages[0].tags["ImageWidth"].overwrite(width)
    return path


# --- round trips through write_image_atomic ------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.array([[0, 7, 255], [1, 2, 3]], dtype=np.uint8),
        np.array([[0, 300, 65535], [1, 2, 40000]], dtype=np.uint16),
        np.arange(18, dtype=np.uint8).reshape(2, 3, 3),
    ],
    ids=["grey8", "grey16", "rgb8"],
)
def test_write_read_round_trip_keeps_values_and_dtype(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "x.png"
    write_image_atomic(path, array)
    back = read_image(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temp file left


def test_write_bool_as_0_255_and_replace_existing(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    write_image_atomic(path, np.zeros((2, 2), np.uint8))
    write_image_atomic(path, np.array([[True, False], [False, True]]))
    np.testing.assert_array_equal(read_image(path), [[255, 0], [0, 255]])


@pytest.mark.parametrize(
    "array, name",
    [
        (np.zeros((2, 2, 3), np.uint16), "x.png"),
        (np.zeros((2, 2), np.float32), "x.png"),
        (np.zeros((2, 2), np.uint8), "x.jpg"),
    ],
)
def test_write_refuses_unstorable(tmp_path: Path, array: np.ndarray, name: str) -> None:
    with pytest.raises(InputError, match=name):
        write_image_atomic(tmp_path / name, array)
    assert list(tmp_path.iterdir()) == []


# --- formats ----------------------------------------------------------------------------------


def test_real_chase_jpeg(chase_root: Path) -> None:
    image = read_image(chase_root / "Image_01L.jpg")
    assert image.shape == (960, 999, 3) and image.dtype == np.uint8
    assert image_size(chase_root / "Image_01L.jpg") == (960, 999)


def test_one_bit_png_reads_as_0_255_image_and_0_1_label(chase_root: Path) -> None:
    path = chase_root / "Image_01L_1stHO.png"
    assert set(np.unique(read_image(path)).tolist()) == {0, 255}
    label = read_label_image(path)
    assert label.dtype == np.uint8 and set(np.unique(label).tolist()) == {0, 1}


def test_tiff_variants(tmp_path: Path) -> None:
    grey16 = np.array([[0, 1000], [65535, 3]], np.uint16)
    tifffile.imwrite(tmp_path / "g.tif", grey16)
    np.testing.assert_array_equal(read_image(tmp_path / "g.tif"), grey16)
    assert read_image(tmp_path / "g.tif").dtype == np.uint16

    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    tifffile.imwrite(tmp_path / "rgba.tiff", rgba, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.tiff"), rgba[..., :3])

    rgb = np.arange(18, dtype=np.uint8).reshape(2, 3, 3)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), rgb)

    floats = np.array([[0.25, 1.5]], np.float64)
    tifffile.imwrite(tmp_path / "f.tif", floats)
    assert read_image(tmp_path / "f.tif").dtype == np.float32

    tifffile.imwrite(tmp_path / "i16.tif", np.array([[5, 6]], np.int16))
    assert read_image(tmp_path / "i16.tif").dtype == np.uint16
    assert image_size(tmp_path / "planar.tif") == (2, 3)


def test_tiff_stack_and_negative_values_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 4, 5), np.uint8), photometric="minisblack")
    with pytest.raises(InputError, match="stack.tif"):
        read_image(tmp_path / "stack.tif")
    tifffile.imwrite(tmp_path / "neg.tif", np.array([[-1, 2]], np.int16))
    with pytest.raises(InputError, match="0..65535"):
        read_image(tmp_path / "neg.tif")


def test_palette_alpha_and_grey_alpha(tmp_path: Path) -> None:
    grey = np.array([[0, 255], [128, 0]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.gif")  # stored as palette indices
    np.testing.assert_array_equal(read_image(tmp_path / "g.gif"), grey)

    colour = Image.new("P", (2, 1))
    colour.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    colour.putpixel((1, 0), 1)
    colour.save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), [[[0, 0, 0], [255, 0, 0]]])

    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 9, 100
    Image.fromarray(rgba).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), [[[9, 0, 0], [9, 0, 0]]])

    Image.fromarray(np.array([[[7, 255], [8, 0]]], np.uint8), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), [[7, 8]])


def test_16bit_colour_png_refused(tmp_path: Path) -> None:
    _png_16bit_rgb(tmp_path / "rgb16.png")
    with pytest.raises(InputError, match="16-bit colour"):
        read_image(tmp_path / "rgb16.png")


# --- broken files -----------------------------------------------------------------------------


def test_broken_files_raise_input_error_naming_the_file(tmp_path: Path, chase_root: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "noise.png").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "text.tif").write_text("not a tiff")
    (tmp_path / "notes.txt").write_text("hello")
    jpeg = (chase_root / "Image_01L.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    for name in ["empty.png", "noise.png", "text.tif", "notes.txt", "cut.jpg", "missing.png"]:
        with pytest.raises(InputError) as info:
            read_image(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(InputError, match="noise.png"):
        image_size(tmp_path / "noise.png")


# --- declared sizes are checked before decoding -----------------------------------------------


@pytest.mark.parametrize(
    "make, height, width",
    [
        (bomb_png, 100_000, 100_000),  # above twice Pillow's own limit
        (bomb_png, 12_000, 12_000),  # between Pillow's warning and its error
        (bomb_png, 9_000, 9_000),  # below Pillow's limit, above ours
        (bomb_png, 16, 200_000),  # a strip: few pixels, one absurd side
        (bomb_tiff, 100_000, 100_000),
        (bomb_tiff, 200_000, 16),
    ],
    ids=["png-1e10", "png-144M", "png-81M", "png-strip", "tiff-1e10", "tiff-strip"],
)
def test_oversized_declared_image_refused_before_decoding(tmp_path: Path, make, height: int, width: int) -> None:
    suffix = ".png" if make is bomb_png else ".tif"
    path = make(tmp_path / f"bomb{suffix}", height, width)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning printed either
        for read in (read_image, image_size, read_label_image):
            with pytest.raises(InputError, match=rf"^{path}: image declares (more than )?\d+"):
                read(path)


@pytest.mark.parametrize("make", ["fifo", "folder"])
def test_non_regular_files_refused_without_opening(tmp_path: Path, make: str) -> None:
    path = tmp_path / "image.png"
    if make == "fifo":
        os.mkfifo(path)  # opening it would block until a writer appears
    else:
        path.mkdir()
    for read in (read_image, image_size):
        with pytest.raises(InputError, match=rf"^{path}: is (not a regular file|a folder)"):
            read(path)


def test_tiff_stack_refused_from_its_header(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((2, 3, 4), np.uint8), photometric="minisblack")
    tifffile.imwrite(
        tmp_path / "samples.tif",
        np.zeros((3, 4, 6), np.uint8),
        planarconfig="contig",
        photometric="minisblack",
        extrasamples=[0] * 5,
    )
    for name in ("pages.tif", "samples.tif"):
        with pytest.raises(InputError, match=rf"{name}: expected one 2-D grey or RGB image"):
            image_size(tmp_path / name)


# --- label masks ------------------------------------------------------------------------------


def _save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_label_binary_and_index_masks(tmp_path: Path) -> None:
    binary = _save(tmp_path / "b.png", np.array([[0, 255], [255, 0]], np.uint8))
    np.testing.assert_array_equal(read_label_image(binary), [[0, 1], [1, 0]])
    only_fg = _save(tmp_path / "f.png", np.full((1, 2), 255, np.uint8))
    np.testing.assert_array_equal(read_label_image(only_fg), [[1, 1]])
    index = _save(tmp_path / "i.png", np.array([[0, 1, 2, 3]], np.uint8))
    np.testing.assert_array_equal(read_label_image(index, num_classes=4), [[0, 1, 2, 3]])
    grey_rgb = _save(tmp_path / "g.png", np.repeat(np.array([[[0], [255]]], np.uint8), 3, axis=2))
    np.testing.assert_array_equal(read_label_image(grey_rgb), [[0, 1]])


def test_label_value_mapping(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.png", np.array([[0, 128, 255], [128, 0, 0]], np.uint8))
    label = read_label_image(path, {0: 0, 128: 2, 255: 1}, num_classes=3)
    np.testing.assert_array_equal(label, [[0, 2, 1], [2, 0, 0]])
    assert label.dtype == np.uint8
    with pytest.raises(InputError, match=r"m\.png.*\[128, 255\]"):
        read_label_image(path, {0: 0})
    with pytest.raises(InputError, match=r"value_to_class: entry 128: 2 must map .* class id 0\.\.1"):
        read_label_image(path, {0: 0, 128: 2, 255: 1})


def test_label_colour_mask(tmp_path: Path) -> None:
    colours = np.array([[[255, 0, 0], [0, 0, 255], [0, 0, 0]]], np.uint8)
    path = _save(tmp_path / "c.png", colours)
    with pytest.raises(InputError, match="value_to_class"):
        read_label_image(path)
    mapping = {0xFF0000: 1, 0x0000FF: 2, 0: 0}
    np.testing.assert_array_equal(read_label_image(path, mapping, num_classes=3), [[1, 2, 0]])


def test_label_16bit_without_mapping_refused(tmp_path: Path) -> None:
    path = tmp_path / "m16.png"
    write_image_atomic(path, np.array([[0, 1000]], np.uint16))
    with pytest.raises(InputError, match=r"m16.png: mask values \[0, 1000\] are not class ids"):
        read_label_image(path, num_classes=10)
    np.testing.assert_array_equal(read_label_image(path, {0: 0, 1000: 3}, num_classes=4), [[0, 3]])


@pytest.mark.parametrize(
    "values",
    [np.array([[0, 128, 255, 0]], np.uint8), np.array([[0, 17, 3, 200]], np.uint8)],
    ids=["0-128-255", "random"],
)
def test_label_values_that_are_no_class_ids_are_listed(tmp_path: Path, values: np.ndarray) -> None:
    path = _save(tmp_path / "m.png", values)
    found = ", ".join(str(v) for v in np.unique(values))
    for num_classes in (2, 5):
        with pytest.raises(InputError, match=rf"^{path}: mask values \[{found}\] are not class ids 0..{num_classes - 1}"):
            read_label_image(path, num_classes=num_classes)


def test_two_values_are_binary_only_for_two_classes(tmp_path: Path) -> None:
    path = _save(tmp_path / "b.png", np.array([[0, 255]], np.uint8))
    np.testing.assert_array_equal(read_label_image(path, num_classes=2), [[0, 1]])
    with pytest.raises(InputError, match=r"\[0, 255\] are not class ids 0..2"):
        read_label_image(path, num_classes=3)  # 255 is no class of three


def test_binary_mask(tmp_path: Path) -> None:
    np.testing.assert_array_equal(read_binary_mask(_save(tmp_path / "a.png", np.array([[0, 255]], np.uint8))), [[False, True]])
    np.testing.assert_array_equal(read_binary_mask(_save(tmp_path / "b.png", np.array([[1, 0]], np.uint8))), [[True, False]])
    grey = _save(tmp_path / "g.png", np.array([[0, 128]], np.uint8))
    with pytest.raises(InputError, match=r"g.png: binary mask holds values \[0, 128\]"):
        read_binary_mask(grey)
    red = _save(tmp_path / "r.png", np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8))
    with pytest.raises(InputError, match=r"r.png: binary mask holds colours"):
        read_binary_mask(red)


@pytest.mark.parametrize(
    "mapping, message",
    [
        ([0, 1], "must map stored mask values"),
        (3, "must map stored mask values"),
        ({}, "must map stored mask values"),
        ({0: 0, 255: 2}, "entry 255: 2 must map"),
        ({-1: 0, 255: 1}, "entry -1: 0 must map"),
        ({0: 0, 255: True}, "entry 255: True must map"),
    ],
)
def test_value_to_class_checked(tmp_path: Path, mapping: object, message: str) -> None:
    path = _save(tmp_path / "m.png", np.array([[0, 255]], np.uint8))
    with pytest.raises(InputError, match=rf"^value_to_class: {message}"):
        read_label_image(path, mapping)

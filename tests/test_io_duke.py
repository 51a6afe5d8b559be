"""Tests for retinaseg.io.duke: the staged .npy B-scans and the original .mat schema."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from retinaseg.conventions import DUKE_AXIAL_UM, DUKE_CLASS_NAMES
from retinaseg.errors import InputError
from retinaseg.io.duke import boundaries_to_labels, load_duke_mat, load_duke_npy

# --- staged .npy data (real) ------------------------------------------------------------------

WIDTH_BY_SUBJECT = {"Subject_01": 536, "Subject_04": 548, "Subject_07": 500, "Subject_09": 506}


def test_real_duke_npy(duke_npy_root: Path) -> None:
    samples = load_duke_npy(duke_npy_root)
    assert len(samples) == 110
    assert samples.subjects() == [f"Subject_{k:02d}" for k in range(1, 11)]
    assert [s.id for s in samples.samples] == sorted(s.id for s in samples.samples)
    assert samples.class_names == DUKE_CLASS_NAMES and len(DUKE_CLASS_NAMES) == 10
    assert (samples.task, samples.modality) == ("multiclass", "oct")
    for sample in samples.samples:
        assert sample.image.dtype == np.uint8 and sample.label.dtype == np.uint8
        assert sample.image.shape[0] == 496 and sample.label.shape == sample.image.shape
        assert sample.spacing_um == (DUKE_AXIAL_UM, None)
        if sample.subject in WIDTH_BY_SUBJECT:
            assert sample.width == WIDTH_BY_SUBJECT[sample.subject]
    assert sum(bool((s.label == 9).any()) for s in samples.samples) == 78  # SOURCE.md: fluid in 78 of 110
    first = samples.samples[0]
    assert first.id == "Subject_01_00" and first.subject == "Subject_01"


def _layout(root: Path, image: np.ndarray, mask: np.ndarray, name: str = "Subject_01_00.npy") -> Path:
    for kind, arr in (("images", image), ("masks", mask)):
        (root / "DukeData" / "train" / kind).mkdir(parents=True, exist_ok=True)
        np.save(root / "DukeData" / "train" / kind / name, arr)
    return root


def test_upstream_float32_files_equal_staged_uint8(duke_npy_root: Path, tmp_path: Path) -> None:
    originals = duke_npy_root / "original_float32_examples"
    for kind in ("images", "masks"):
        target = tmp_path / "DukeData" / "val" / kind
        target.mkdir(parents=True)
        shutil.copy(originals / f"{kind}_Subject_01_00.npy", target / "Subject_01_00.npy")
    loaded = load_duke_npy(tmp_path).samples[0]
    staged = duke_npy_root / "DukeData" / "train"
    assert loaded.label.dtype == np.uint8
    np.testing.assert_array_equal(loaded.image, np.load(staged / "images" / "Subject_01_00.npy"))
    np.testing.assert_array_equal(loaded.label, np.load(staged / "masks" / "Subject_01_00.npy"))


def test_npy_accepts_duke_data_folder_itself(tmp_path: Path) -> None:
    _layout(tmp_path, np.zeros((4, 3), np.uint8), np.zeros((4, 3), np.uint8))
    assert len(load_duke_npy(tmp_path / "DukeData")) == 1


@pytest.mark.parametrize(
    "image, mask, message",
    [
        (np.zeros((4, 3), np.uint8), np.full((4, 3), 10, np.uint8), r"masks/Subject_01_00.npy.*\[10\]"),
        (np.zeros((4, 3), np.uint8), np.zeros((4, 2), np.uint8), "differs from image shape"),
        (np.zeros((4, 3, 2), np.uint8), np.zeros((4, 3, 2), np.uint8), "2-D"),
        (np.zeros((4, 3), np.float32), np.full((4, 3), 0.5, np.float32), "integers 0..255"),
        (np.zeros((4, 3), np.float32), np.full((4, 3), np.nan, np.float32), "integers 0..255"),
    ],
    ids=["value10", "shape", "3d", "fraction", "nan"],
)
def test_npy_bad_arrays(tmp_path: Path, image: np.ndarray, mask: np.ndarray, message: str) -> None:
    _layout(tmp_path, image, mask)
    with pytest.raises(InputError, match=message):
        load_duke_npy(tmp_path)


def test_npy_bad_layouts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Duke .npy"):
        load_duke_npy(tmp_path)
    _layout(tmp_path, np.zeros((4, 3), np.uint8), np.zeros((4, 3), np.uint8), name="scan.npy")
    with pytest.raises(InputError, match="Subject_XX_YY"):
        load_duke_npy(tmp_path)


def test_npy_missing_mask_duplicate_and_corrupt(tmp_path: Path) -> None:
    _layout(tmp_path, np.zeros((4, 3), np.uint8), np.zeros((4, 3), np.uint8))
    (tmp_path / "DukeData" / "test" / "images").mkdir(parents=True)
    np.save(tmp_path / "DukeData" / "test" / "images" / "Subject_02_00.npy", np.zeros((4, 3), np.uint8))
    with pytest.raises(InputError, match="Subject_02_00.npy.*missing"):
        load_duke_npy(tmp_path)
    shutil.copytree(tmp_path / "DukeData" / "train", tmp_path / "DukeData" / "test", dirs_exist_ok=True)
    (tmp_path / "DukeData" / "test" / "images" / "Subject_02_00.npy").unlink()
    with pytest.raises(InputError, match="also found"):
        load_duke_npy(tmp_path)
    shutil.rmtree(tmp_path / "DukeData" / "test")
    (tmp_path / "DukeData" / "train" / "masks" / "Subject_01_00.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(InputError, match="cannot read"):
        load_duke_npy(tmp_path)


def _npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "|u1", data: bytes = b"") -> None:
    """A ``.npy`` file whose header declares ``shape`` but that holds only ``data``."""
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": dtype, "fortran_order": False, "shape": shape})
        handle.write(data)


@pytest.mark.parametrize(
    "shape, dtype, data, message",
    [
        ((100_000, 100_000), "|u1", b"", "image declares 100000 x 100000 pixels"),
        ((10**10,), "|u1", b"", r"must be 2-D, got shape \(10000000000,\)"),
        ((496, 512), "<f4", bytes(1000), r"declares \(496, 512\) float32 \(1015808 bytes\) but the file holds 1000"),
        ((4, 3), "|O", b"", "unsupported dtype object"),
    ],
    ids=["1e10-pixels", "1e10-elements", "truncated", "pickled-objects"],
)
def test_npy_header_checked_before_loading(tmp_path: Path, shape: tuple[int, ...], dtype: str, data: bytes, message: str) -> None:
    _layout(tmp_path, np.zeros((4, 3), np.uint8), np.zeros((4, 3), np.uint8))
    image = tmp_path / "DukeData" / "train" / "images" / "Subject_01_00.npy"
    _npy_header_only(image, shape, dtype, data)
    with pytest.raises(InputError, match=rf"^{image}: .*{message}"):
        load_duke_npy(tmp_path)


def test_npy_that_is_a_pipe_is_refused(tmp_path: Path) -> None:
    _layout(tmp_path, np.zeros((4, 3), np.uint8), np.zeros((4, 3), np.uint8))
    mask = tmp_path / "DukeData" / "train" / "masks" / "Subject_01_00.npy"
    mask.unlink()
    os.mkfifo(mask)  # np.load would block forever
    with pytest.raises(InputError, match=rf"^{mask}: is not a regular"):
        load_duke_npy(tmp_path)


# --- original .mat schema (written here) ------------------------------------------------------

HEIGHT, WIDTH, NUM_BSCANS = 20, 6, 3
LINES = np.array([3, 5, 7, 9, 11, 13, 15, 17], float)  # 1-based rows
# Class of each 0-based row for LINES: two rows per layer, choroid from row 16.
EXPECTED_COLUMN = np.repeat(np.arange(9), [2, 2, 2, 2, 2, 2, 2, 2, 4])


def _duke_mat(path: Path, *, v73: bool = False, **override: np.ndarray) -> Path:
    """A small Subject_XX.mat in the Duke schema.

    B-scan 0: not annotated. B-scan 1: columns 1-4 fully annotated; column 2
    has IPL/INL (line 3) above NFL/GCL (line 2); column 3 has the ILM at the
    fractional row 2.4; column 5 lacks lines 1-3. B-scan 2: columns 1-5 fully
    annotated; fluid in rows 10-12 of column 3 and in column 0 (outside the
    annotation). Column 0 is never annotated.
    """
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (HEIGHT, WIDTH, NUM_BSCANS), dtype=np.uint8)
    layers = np.full((8, WIDTH, NUM_BSCANS), np.nan)
    layers[:, 1:5, 1] = LINES[:, None]
    layers[2, 2, 1] = 4.0
    layers[0, 3, 1] = 2.4
    layers[3:, 5, 1] = LINES[3:]
    layers[:, 1:6, 2] = LINES[:, None]
    fluid = np.zeros((HEIGHT, WIDTH, NUM_BSCANS))
    fluid[10:13, 3, 2] = 1
    fluid[:, 0, 2] = 1
    variables = {"images": images, "manualLayers1": layers, "manualFluid1": fluid}
    variables.update(override)
    scipy.io.savemat(path, variables)
    if v73:  # scipy tells v7.3 (HDF5) files by the version bytes of the header
        data = bytearray(path.read_bytes())
        data[124:126] = (0x0200).to_bytes(2, "little")
        path.write_bytes(bytes(data))
    return path


def test_boundaries_to_labels_rule() -> None:
    lines = np.stack([LINES, LINES]).T.copy()
    lines[0, 1] = np.nan  # ILM missing: zero-thickness RNFL, vitreous down to line 2
    labels = boundaries_to_labels(lines, HEIGHT)
    np.testing.assert_array_equal(labels[:, 0], EXPECTED_COLUMN)
    np.testing.assert_array_equal(labels[:, 1], np.where(EXPECTED_COLUMN == 1, 0, EXPECTED_COLUMN))


def test_mat_labels_match_hand_derivation(tmp_path: Path) -> None:
    path = _duke_mat(tmp_path / "Subject_03.mat")
    samples = load_duke_mat(path)
    assert [s.id for s in samples.samples] == ["Subject_03_00", "Subject_03_01"]
    assert samples.subjects() == ["Subject_03"]
    assert samples.extra == {
        "bscan_index": {"Subject_03_00": 1, "Subject_03_01": 2},
        "crop_x0": {"Subject_03_00": 1, "Subject_03_01": 1},
    }
    first, second = samples.samples
    images = scipy.io.loadmat(path)["images"]
    np.testing.assert_array_equal(first.image, images[:, 1:6, 1])  # crop: columns 1..5
    assert first.spacing_um == (DUKE_AXIAL_UM, None)

    # B-scan 1, cropped column c = original column c + 1.
    np.testing.assert_array_equal(first.label[:, 0], EXPECTED_COLUMN)
    crossing = [0, 0, 1, 3, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 8, 8]  # line 3 lifts line 2 to row 3
    np.testing.assert_array_equal(first.label[:, 1], crossing)
    np.testing.assert_array_equal(first.label[:, 2], EXPECTED_COLUMN)  # ILM 2.4 -> first RNFL row 2
    np.testing.assert_array_equal(first.label[:, 3], EXPECTED_COLUMN)
    partial = np.where(EXPECTED_COLUMN <= 3, 0, EXPECTED_COLUMN)  # lines 1-3 missing
    np.testing.assert_array_equal(first.label[:, 4], partial)
    np.testing.assert_array_equal(first.fov, np.broadcast_to([True, True, True, True, False], (HEIGHT, 5)))

    expected = np.repeat(EXPECTED_COLUMN[:, None], 5, axis=1)
    expected[10:13, 2] = 9
    np.testing.assert_array_equal(second.label, expected)
    assert second.fov is None  # every column of the crop fully annotated


def test_mat_without_crop_keeps_width_and_marks_fov(tmp_path: Path) -> None:
    samples = load_duke_mat(_duke_mat(tmp_path / "Subject_01.mat"), crop=False)
    first, second = samples.samples
    assert first.label.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(first.fov[0], [False, True, True, True, True, False])
    np.testing.assert_array_equal(first.label[:, 0], np.zeros(HEIGHT))
    np.testing.assert_array_equal(second.label[:, 0], np.full(HEIGHT, 9))
    assert samples.extra["crop_x0"] == {"Subject_01_00": 0, "Subject_01_01": 0}


def test_mat_folder_reads_all_subject_files(tmp_path: Path) -> None:
    _duke_mat(tmp_path / "Subject_01.mat")
    _duke_mat(tmp_path / "Subject_02.mat")
    (tmp_path / "notes.mat").write_bytes(b"ignored: not Subject_XX.mat")
    samples = load_duke_mat(tmp_path)
    assert samples.subjects() == ["Subject_01", "Subject_02"] and len(samples) == 4


def test_mat_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Subject_XX.mat"):
        load_duke_mat(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_duke_mat(tmp_path / "Subject_09.mat")
    cases = {
        "v73": ({"v73": True}, "v7.3"),
        "layers": ({"manualLayers1": np.zeros((7, WIDTH, NUM_BSCANS))}, "manualLayers1' must be 8 x 6 x 3"),
        "fluid": ({"manualFluid1": np.zeros((HEIGHT, WIDTH, 2))}, "manualFluid1' must be"),
        "images2d": ({"images": np.zeros((HEIGHT, WIDTH), np.uint8)}, "H x W x N"),
        "unannotated": ({"manualLayers1": np.full((8, WIDTH, NUM_BSCANS), np.nan)}, "no annotated B-scan"),
    }
    for name, (options, message) in cases.items():
        path = _duke_mat(tmp_path / f"{name}.mat", **options)
        with pytest.raises(InputError, match=message):
            load_duke_mat(path)
    scipy.io.savemat(tmp_path / "partial.mat", {"images": np.zeros((HEIGHT, WIDTH, NUM_BSCANS), np.uint8)})
    with pytest.raises(InputError, match="missing variable.*manualLayers1, manualFluid1"):
        load_duke_mat(tmp_path / "partial.mat")
    (tmp_path / "garbage.mat").write_bytes(b"this is not a MATLAB file at all" * 10)
    with pytest.raises(InputError, match="garbage.mat.*cannot read"):
        load_duke_mat(tmp_path / "garbage.mat")


@pytest.mark.parametrize(
    "variable, declared",
    [("images", (HEIGHT, 50_000, NUM_BSCANS)), ("manualFluid1", (HEIGHT, WIDTH, 100_000))],
)
def test_mat_sizes_checked_from_variable_headers(tmp_path: Path, variable: str, declared: tuple) -> None:
    """A variable header declaring a huge array is refused before scipy allocates it."""
    path = _duke_mat(tmp_path / "Subject_01.mat")
    data = path.read_bytes()
    # Uncompressed MAT v5 stores each array's size as int32s after an miINT32 tag of 12 bytes.
    dims = struct.pack("<iiii", 5, 12, HEIGHT, WIDTH) + struct.pack("<i", NUM_BSCANS)
    start = data.index(dims, data.index(variable.encode()) - 64)
    patched = struct.pack("<iiii", 5, 12, *declared[:2]) + struct.pack("<i", declared[2])
    path.write_bytes(data[:start] + patched + data[start + len(dims) :])
    with pytest.raises(InputError, match=rf"^{path} \('{variable}'\): OCT volume declares"):
        load_duke_mat(path)

"""Tests for retinaseg.io.nifti: NIfTI export with the physical voxel sizes."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")

from retinaseg.conventions import DUKE_CLASS_NAMES
from retinaseg.errors import InputError
from retinaseg.io.nifti import nifti_affine, write_bscans_nifti, write_labels_nifti
from retinaseg.volume import BScanGeometry, OctVolume

WIDTH = 16


def _volume(n: int = 3, height: int = 8, *, pitch: float = 0.0113, axial: float = 0.0039, spacing: float = 0.24) -> OctVolume:
    """``n`` horizontal B-scans ``spacing`` mm apart, moving up the SLO as Spectralis rasters do; random reflectance."""
    rng = np.random.default_rng(0)
    reflectance = rng.uniform(0.0, 1.0, (n, height, WIDTH)).astype(np.float32)
    reflectance[0, 0, :3] = np.nan  # invalid pixels
    geometry = [BScanGeometry((1.0, 3.0 - i * spacing), (1.0 + WIDTH * pitch, 3.0 - i * spacing), math.nan) for i in range(n)]
    return OctVolume(reflectance, pitch, axial, geometry, scan_pattern=3 if n > 1 else 1, laterality="OD", source="scan.vol")


def _column_norms(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


def test_bscans_round_trip(tmp_path: Path) -> None:
    volume = _volume()
    path = write_bscans_nifti(volume, tmp_path / "scan.nii.gz")
    image = nib.load(path)
    data = np.asanyarray(image.dataobj)
    assert data.shape == (WIDTH, 8, 3) and data.dtype == np.uint8
    np.testing.assert_array_equal(data, volume.display_bscans().transpose(2, 1, 0))
    assert (data[:3, 0, 0] == 0).all()  # NaN pixels
    np.testing.assert_allclose(image.header.get_zooms(), (0.0113, 0.0039, 0.24), rtol=1e-6)
    affine = nifti_affine(volume)
    assert image.header.get_qform(coded=True)[1] == image.header.get_sform(coded=True)[1] == 1
    np.testing.assert_allclose(image.header.get_qform(), affine, atol=1e-7)
    np.testing.assert_allclose(image.header.get_sform(), affine, atol=1e-7)
    assert image.header.get_xyzt_units()[0] == "mm"
    # A-scans to the left, rows posterior, B-scans (moving up the SLO) superior.
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_labels_round_trip(tmp_path: Path) -> None:
    volume = _volume()
    labels = np.random.default_rng(1).integers(0, len(DUKE_CLASS_NAMES), volume.shape).astype(np.uint8)
    path = write_labels_nifti(labels, volume, tmp_path / "labels.nii.gz", DUKE_CLASS_NAMES)
    image = nib.load(path)
    data = np.asanyarray(image.dataobj)
    assert data.dtype == np.uint8
    np.testing.assert_array_equal(data, labels.transpose(2, 1, 0))
    np.testing.assert_allclose(image.affine, nifti_affine(volume), atol=1e-7)
    assert image.header.get_intent()[0] == "label"
    assert image.header["descrip"].item().decode() == "labels: " + ",".join(DUKE_CLASS_NAMES)


def test_long_class_names_left_out(tmp_path: Path) -> None:
    volume = _volume()
    names = [f"a rather long class name {i}" for i in range(5)]
    image = nib.load(write_labels_nifti(np.zeros(volume.shape, np.int64), volume, tmp_path / "l.nii.gz", names))
    assert image.header["descrip"].item() == b""
    assert image.get_data_dtype() == np.uint8


def test_voxel_sizes_are_the_physical_spacings() -> None:
    """Spectralis-like 11.3 µm A-scan pitch, 3.9 µm axial pixels, B-scans 0.24 mm apart."""
    affine = nifti_affine(_volume(n=5, pitch=0.0113, axial=0.0039, spacing=0.24))
    np.testing.assert_allclose(_column_norms(affine), (0.0113, 0.0039, 0.24), rtol=1e-9)
    image = nib.Nifti1Image(np.zeros((WIDTH, 8, 5), np.uint8), affine)
    np.testing.assert_allclose(image.header.get_zooms(), (0.0113, 0.0039, 0.24), rtol=1e-6)


def test_bscans_moving_down_run_inferior() -> None:
    affine = nifti_affine(_volume(spacing=-0.12))
    assert nib.aff2axcodes(affine) == ("L", "P", "I")
    np.testing.assert_allclose(_column_norms(affine), (0.0113, 0.0039, 0.12), rtol=1e-9)


def test_one_bscan_affine_not_degenerate(tmp_path: Path) -> None:
    volume = _volume(n=1)
    affine = nifti_affine(volume)
    assert abs(np.linalg.det(affine)) > 0
    np.testing.assert_allclose(_column_norms(affine), (0.0113, 0.0039, 0.0113), rtol=1e-9)
    image = nib.load(write_bscans_nifti(volume, tmp_path / "line.nii"))
    assert image.shape == (WIDTH, 8, 1)
    np.testing.assert_allclose(image.header.get_zooms(), (0.0113, 0.0039, 0.0113), rtol=1e-6)


def test_same_volume_same_bytes(tmp_path: Path) -> None:
    """No time stamp or temporary file name in the gzip header."""
    volume = _volume()
    first = write_bscans_nifti(volume, tmp_path / "a.nii.gz").read_bytes()
    assert write_bscans_nifti(volume, tmp_path / "b.nii.gz").read_bytes() == first
    assert gzip.decompress(first)[344:348] == b"n+1\0"  # single-file NIfTI-1 magic


@pytest.mark.parametrize("shape", [(3, 8, WIDTH + 1), (2, 8, WIDTH), (3, 8)])
def test_wrong_label_shape_refused(tmp_path: Path, shape: tuple[int, ...]) -> None:
    path = tmp_path / "labels.nii.gz"
    with pytest.raises(InputError) as info:
        write_labels_nifti(np.zeros(shape, np.uint8), _volume(), path)
    assert info.value.where == str(path) and "shape" in info.value.problem
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("labels", [np.full((3, 8, WIDTH), 0.5), np.full((3, 8, WIDTH), 256), np.full((3, 8, WIDTH), -1)])
def test_labels_not_uint8_refused(tmp_path: Path, labels: np.ndarray) -> None:
    with pytest.raises(InputError, match="labels.nii.gz"):
        write_labels_nifti(labels, _volume(), tmp_path / "labels.nii.gz")


def test_other_suffix_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.nii\.gz or \.nii"):
        write_bscans_nifti(_volume(), tmp_path / "scan.nrrd")

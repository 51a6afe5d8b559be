"""Tests for retinaseg.io.heidelberg (Spectralis .vol reader) and retinaseg.volume."""

from __future__ import annotations

import dataclasses
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from retinaseg.errors import InputError
from retinaseg.io.heidelberg import read_vol
from retinaseg.io.oct_files import read_oct
from retinaseg.volume import DEVICE_LINES_OUTSIDE_KEY, BScanGeometry, OctVolume

from conftest import BSCAN0, GENUINE, HOSTILE, PIXEL0, patch_bytes

# --- genuine Spectralis exports (values from the data set's SOURCE.md) -----------------------


@pytest.mark.parametrize("name", sorted(GENUINE))
def test_genuine_spectralis_files(spectralis_vol_root: Path, name: str) -> None:
    rel, pattern, scale_x, start, end, quality, n_invalid, medians = GENUINE[name]
    vol = read_vol(spectralis_vol_root / rel)
    assert vol.shape == (1, 496, 768) and vol.reflectance.dtype == np.float32
    assert vol.scan_pattern == pattern
    assert vol.scan_pattern_name == {1: "line", 2: "circle"}[pattern]
    assert vol.scale_x_mm == pytest.approx(scale_x, abs=5e-7)
    assert vol.scale_z_mm == pytest.approx(0.0038717, abs=5e-8)
    assert vol.axial_um == pytest.approx(3.8717, abs=5e-5)
    assert vol.laterality == "OD" and vol.metadata["slo_field_size_deg"] == 30
    assert vol.metadata["version"] == "HSF-OCT-103" and vol.metadata["header_distance_mm"] == 0.0
    assert vol.slo is not None and vol.slo.shape == (768, 768) and vol.slo.dtype == np.uint8
    assert vol.slo.std() > 10  # a real fundus image, not blank

    (geom,) = vol.bscan_geometry
    np.testing.assert_allclose(geom.start_xy_mm, start, atol=5e-4)
    np.testing.assert_allclose(geom.end_xy_mm, end, atol=5e-4)
    assert geom.quality == pytest.approx(quality, abs=0.05)

    r = vol.reflectance
    assert not np.isnan(r).any() and r.min() >= 0 and r.max() <= 1
    assert list(vol.device_layers) == ["ILM", "BM", "RNFL"]
    for (line, rows), invalid, median in zip(vol.device_layers.items(), n_invalid, medians):
        assert rows.shape == (1, 768) and int(np.isnan(rows).sum()) == invalid, line
        if median is not None:
            assert np.nanmedian(rows) == pytest.approx(median, abs=0.05), line
    ilm, bm, rnfl = (vol.device_layers[k][0] for k in ("ILM", "BM", "RNFL"))
    both = ~np.isnan(ilm) & ~np.isnan(bm)
    assert both.sum() == 768 - max(n_invalid[:2]) and (ilm[both] < bm[both]).all()
    # line 2 is the outer RNFL boundary: between ILM and BM
    all3 = both & ~np.isnan(rnfl)
    assert (ilm[all3] <= rnfl[all3] + 1e-3).all() and (rnfl[all3] < bm[all3]).all()


def test_genuine_line_scan_positions(spectralis_vol_root: Path) -> None:
    vol = read_vol(spectralis_vol_root / GENUINE["Willis_B_716_0"][0])
    pos = vol.ascan_positions_mm()
    assert pos.shape == (1, 768, 2)
    np.testing.assert_allclose(pos[0, 0], vol.bscan_geometry[0].start_xy_mm)
    # consecutive A-scans are ScaleX apart; the stored end is one pitch past the last A-scan
    np.testing.assert_allclose(np.linalg.norm(np.diff(pos[0], axis=0), axis=1), vol.scale_x_mm)
    np.testing.assert_allclose(pos[0, -1, 0] + vol.scale_x_mm, vol.bscan_geometry[0].end_xy_mm[0])
    assert vol.bscan_spacing_mm().shape == (0,)


@pytest.mark.parametrize("name", ["Willis_B_716_2", "valid", "onh"])
def test_genuine_circle_geometry(spectralis_vol_root: Path, name: str) -> None:
    vol = read_vol(spectralis_vol_root / GENUINE[name][0])
    (geom,) = vol.bscan_geometry
    assert geom.is_circle and geom.circle_centre_xy_mm == geom.end_xy_mm
    # the stored circle is consistent with the lateral scale: circumference = SizeX * ScaleX
    assert 2 * np.pi * geom.circle_radius_mm == pytest.approx(768 * vol.scale_x_mm, rel=2e-3)
    pos = vol.ascan_positions_mm()[0]
    np.testing.assert_allclose(pos[0], geom.start_xy_mm)
    np.testing.assert_allclose(np.linalg.norm(pos - geom.circle_centre_xy_mm, axis=1), geom.circle_radius_mm)
    np.testing.assert_allclose(pos.mean(axis=0), geom.circle_centre_xy_mm, atol=1e-9)
    # OD: start temporal (left of the disc), then superior (up on the SLO, smaller y)
    assert pos[0, 0] < geom.circle_centre_xy_mm[0]
    assert pos[192, 1] == pytest.approx(geom.circle_centre_xy_mm[1] - geom.circle_radius_mm)


# --- Duke DME volumes (assembled .vol files, see their SOURCE.md) ----------------------------

DUKE_WIDTH = {1: 536, 2: 524, 3: 524, 4: 548, 5: 542, 6: 542, 7: 500, 8: 542, 9: 506, 10: 524}
DUKE_X0 = {1: 118, 2: 109, 3: 105, 4: 85, 5: 116, 6: 125, 7: 134, 8: 99, 9: 121, 10: 128}
DUKE_OS = {5, 7, 9}
DUKE_FIRST_Y_MM = {4: 7.296, 5: 7.056, 7: 6.696, 8: 7.056}
# B-scan indices 10,15,20,25,28,30,32,35,40,45,50 (shifted per subject) of a 0.12 mm raster
DUKE_SPACING_MM = 0.12 * np.array([5, 5, 5, 3, 2, 2, 3, 5, 5, 5])


def test_duke_volumes_geometry_and_lines(duke_volumes_root: Path) -> None:
    for subject in range(1, 11):
        vol = read_vol(duke_volumes_root / f"Subject_{subject:02d}.vol")
        width = DUKE_WIDTH[subject]
        assert vol.shape == (11, 496, width), subject
        assert (vol.scan_pattern, vol.scan_pattern_name) == (3, "volume")
        assert vol.laterality == ("OS" if subject in DUKE_OS else "OD")
        assert (vol.scale_x_mm, vol.scale_z_mm, vol.axial_um) == (0.0115, 0.00387, pytest.approx(3.87))
        assert vol.slo.shape == (768, 768) and vol.slo_scale_xy_mm == (0.0115, 0.0115)
        geom = vol.bscan_geometry
        assert geom[0].start_xy_mm == pytest.approx((DUKE_X0[subject] * 0.0115, DUKE_FIRST_Y_MM.get(subject, 6.816)))
        assert geom[0].end_xy_mm[0] - geom[0].start_xy_mm[0] == pytest.approx(width * 0.0115)
        assert all(not g.is_circle and np.isnan(g.quality) for g in geom)  # Quality = FLT_MAX
        # header Distance is the original 61-B-scan pitch, not the spacing of these 11 B-scans
        assert vol.metadata["header_distance_mm"] == 0.12
        np.testing.assert_allclose(vol.bscan_spacing_mm(), DUKE_SPACING_MM, atol=1e-9)
        assert vol.metadata["exam_time"] is None and vol.metadata["visit_date"] is None

        assert len(vol.device_layers) == 17
        filled = {"ILM", "RNFL", "IPL", "INL", "OPL", "PR1", "PR2", "BM"}
        for name, rows in vol.device_layers.items():
            assert rows.shape == (11, width) and rows.dtype == np.float32
            assert np.isnan(rows).all() != (name in filled), (subject, name)
        assert (vol.device_layers["ILM"] < vol.device_layers["BM"]).sum() >= 11 * width - 4
    # SOURCE.md: the only unannotated line positions are Subject 04, B-scan 5, columns 211-214
    ilm = read_vol(duke_volumes_root / "Subject_04.vol").device_layers["ILM"]
    assert np.argwhere(np.isnan(ilm)).tolist() == [[5, c] for c in range(211, 215)]


def test_duke_display_reproduces_npy_bscans(duke_volumes_root: Path, duke_npy_root: Path) -> None:
    for subject in range(1, 11):
        vol = read_vol(duke_volumes_root / f"Subject_{subject:02d}.vol")
        # column c of both forms is column x0 + c of the original B-scan: no offset to apply
        files = sorted(duke_npy_root.glob(f"DukeData/*/images/Subject_{subject:02d}_*.npy"))
        images = np.stack([np.load(f) for f in files])
        display = vol.display_bscans()
        valid = ~np.isnan(vol.reflectance)
        assert display.shape == images.shape and display.dtype == np.uint8
        np.testing.assert_array_equal(display[valid], images[valid])
        # invalid pixels are the white corner wedges of the Duke export; display shows them as 0
        assert 0.02 < (~valid).mean() < 0.075
        assert (images[~valid] == 255).all() and (display[~valid] == 0).all()


# --- domain object on hand-made values -------------------------------------------------------


def _volume(
    geometry: list[BScanGeometry], width: int = 4, laterality: str = "OD", pattern: int = 3, scale_x_mm: float = 0.01
) -> OctVolume:
    return OctVolume(
        reflectance=np.zeros((len(geometry), 2, width), np.float32),
        scale_x_mm=scale_x_mm,
        scale_z_mm=0.004,
        bscan_geometry=geometry,
        scan_pattern=pattern,
        laterality=laterality,  # type: ignore[arg-type]
    )


def test_display_transform_hand_values() -> None:
    vol = _volume([BScanGeometry((0, 0), (2, 0), 30.0)])
    vol.reflectance[0, 0] = [0.0, 0.2**4, 1.0, np.nan]
    vol.reflectance[0, 1] = [0.5**4, 1.5, -0.1, 0.25]
    np.testing.assert_array_equal(vol.display_bscans()[0], [[0, 51, 255, 0], [128, 255, 0, 180]])
    np.testing.assert_array_equal(vol.display_bscans(gamma=0.5)[0, 1], [64, 255, 0, 128])
    with pytest.raises(ValueError, match="gamma"):
        vol.display_bscans(gamma=0)


def test_line_positions_and_spacing() -> None:
    geometry = [BScanGeometry((1.0, y), (3.0, y + 0.1), float("nan")) for y in (5.0, 4.0, 3.5)]
    vol = _volume(geometry)
    pos = vol.ascan_positions_mm()
    np.testing.assert_allclose(pos[0], [[1.0, 5.0], [1.5, 5.025], [2.0, 5.05], [2.5, 5.075]])
    np.testing.assert_allclose(vol.bscan_spacing_mm(), [1.0, 0.5])


def test_circle_positions_run_tsnit_for_both_eyes() -> None:
    # OD: disc right of the fovea, start temporal = left of the centre; OS mirrored. Radius 0.1 mm
    # with 4 A-scans of 2 pi 0.1 / 4 mm: the circumference matches the A-scans.
    pitch = 2 * np.pi * 0.1 / 4
    od = _volume([BScanGeometry((4.9, 5.0), (5.0, 5.0), 1.0, (5.0, 5.0), 0.1)], laterality="OD", pattern=2, scale_x_mm=pitch)
    os_ = _volume([BScanGeometry((5.1, 5.0), (5.0, 5.0), 1.0, (5.0, 5.0), 0.1)], laterality="OS", pattern=2, scale_x_mm=pitch)
    # temporal, superior (smaller y on the SLO), nasal, inferior
    expected_od = [[4.9, 5], [5, 4.9], [5.1, 5], [5, 5.1]]
    np.testing.assert_allclose(od.ascan_positions_mm()[0], expected_od, atol=1e-12)
    np.testing.assert_allclose(os_.ascan_positions_mm()[0], [[5.1, 5], [5, 4.9], [4.9, 5], [5, 5.1]], atol=1e-12)
    mirrored = dataclasses.replace(od, laterality="OS")
    np.testing.assert_allclose(mirrored.ascan_positions_mm()[0, 1], [5, 5.1], atol=1e-12)


def test_volume_rejects_inconsistent_parts() -> None:
    line = BScanGeometry((0, 0), (1, 0), 1.0)
    with pytest.raises(ValueError, match="1 B-scan geometries for 2 B-scans"):
        OctVolume(np.zeros((2, 2, 4), np.float32), 0.01, 0.004, [line], 1, "OD")
    with pytest.raises(ValueError, match="ILM"):
        OctVolume(
            np.zeros((1, 2, 4), np.float32), 0.01, 0.004, [line], 1, "OD", device_layers={"ILM": np.zeros((1, 3), np.float32)}
        )


# --- hostile files ---------------------------------------------------------------------------


@pytest.fixture
def genuine_bytes(spectralis_vol_root: Path) -> bytes:
    return (spectralis_vol_root / GENUINE["onh"][0]).read_bytes()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_raise_input_error(genuine_bytes: bytes, tmp_path: Path, case: str) -> None:
    mutate, message = HOSTILE[case]
    path = tmp_path / f"{case}.vol"
    path.write_bytes(bytes(mutate(bytearray(genuine_bytes))))
    with pytest.raises(InputError) as info:
        read_vol(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_huge_bscan_count_fails_without_allocating(genuine_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "huge.vol"
    path.write_bytes(bytes(patch_bytes("<i", 16, 10**9)(bytearray(genuine_bytes))))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="NumBScans=1000000000"):
            read_vol(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


def test_trailing_bytes_are_accepted(genuine_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "odd.vol"
    path.write_bytes(genuine_bytes + b"\x01" * 300)
    vol = read_vol(path)
    assert vol.shape == (1, 496, 768) and not np.isnan(vol.reflectance).any()


def test_invalid_marker_becomes_nan(genuine_bytes: bytes, tmp_path: Path) -> None:
    flt_max = float(np.finfo(np.float32).max)
    data = bytearray(genuine_bytes)
    for offset in (PIXEL0 + 4 * 3, BSCAN0 + 256 + 4 * 7, BSCAN0 + 56):  # pixel, ILM column 7, quality
        struct.pack_into("<f", data, offset, flt_max)
    path = tmp_path / "marked.vol"
    path.write_bytes(bytes(data))
    vol = read_vol(path)
    assert np.argwhere(np.isnan(vol.reflectance)).tolist() == [[0, 0, 3]]
    assert np.argwhere(np.isnan(vol.device_layers["ILM"])).tolist() == [[0, 7]]
    assert np.isnan(vol.bscan_geometry[0].quality)


def test_file_without_slo_and_unreadable_dates(genuine_bytes: bytes, tmp_path: Path) -> None:
    header = bytearray(genuine_bytes[:2048])
    struct.pack_into("<2i", header, 48, 0, 0)  # SizeXSlo, SizeYSlo
    struct.pack_into("<Q", header, 88, 2**64 - 1)  # ExamTime beyond any date
    struct.pack_into("<d", header, 200, float("nan"))  # VisitDate
    path = tmp_path / "no_slo.vol"
    path.write_bytes(bytes(header) + genuine_bytes[BSCAN0:])
    vol = read_vol(path)
    assert vol.slo is None and vol.slo_scale_xy_mm is None
    assert vol.metadata["exam_time"] is None and vol.metadata["visit_date"] is None
    assert vol.shape == (1, 496, 768)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_vol(tmp_path / "absent.vol")
    with pytest.raises(InputError, match="is a folder"):
        read_vol(tmp_path)


# --- synthetic files: every class of hostile header, without shared data ---------------------

PITCH_MM = 0.0115
FLT_MAX = float(np.finfo(np.float32).max)


def _synthetic_vol(
    n: int = 3,
    height: int = 8,
    width: int = 16,
    *,
    pattern: int = 3,
    scale_x: float = PITCH_MM,
    scale_z: float = 0.0039,
    distance: float = 0.12,
    points: np.ndarray | None = None,
    lines: np.ndarray | None = None,
    pixels: np.ndarray | None = None,
) -> bytes:
    """A ``.vol`` file laid out as the HSF-OCT-103 description says (header offsets written by hand).

    2048-byte header, a 6 x 5 SLO, then per B-scan a 256-byte header with the
    segmentation lines right after it (OffSeg 256) and ``height x width``
    float32 pixels. Defaults: a raster of ``n`` horizontal B-scans
    ``distance`` apart and ``width * scale_x`` long, random pixels in
    [0, 0.5], ILM and BM lines at rows 2 and 6. ``points`` are ``(n, 4)``
    start x, y and end x, y in mm, ``lines`` ``(n, K, width)`` rows.
    """
    rng = np.random.default_rng(0)
    pixels = rng.uniform(0.0, 0.5, (n, height, width)) if pixels is None else pixels
    lines = np.stack([np.full((n, width), 2.0), np.full((n, width), 6.0)], axis=1) if lines is None else lines
    if points is None:
        y = 2.0 + distance * np.arange(n)
        points = np.stack([np.full(n, 1.0), y, np.full(n, 1.0 + width * scale_x), y], axis=1)
    hdr_size = 256 + 4 * lines.shape[1] * width
    head = bytearray(2048)
    struct.pack_into("<12s3i3d", head, 0, b"HSF-OCT-103", width, n, height, scale_x, distance, scale_z)
    struct.pack_into("<2i2d", head, 48, 6, 5, PITCH_MM, PITCH_MM)  # SLO size and pixel size
    struct.pack_into("<4s", head, 84, b"OD")
    struct.pack_into("<2i", head, 96, pattern, hdr_size)
    parts = [bytes(head), rng.integers(0, 256, 30, dtype=np.uint8).tobytes()]
    for i in range(n):
        bscan = bytearray(hdr_size)
        struct.pack_into("<12si4d2if", bscan, 0, b"HSF-BS-103", hdr_size, *points[i], lines.shape[1], 256, 30.0)
        bscan[256:] = lines[i].astype("<f4").tobytes()
        parts += [bytes(bscan), pixels[i].astype("<f4").tobytes()]
    return b"".join(parts)


def _circle_points(width: int, pitch_mm: float, centre: tuple[float, float] = (4.0, 4.0)) -> np.ndarray:
    """One circle B-scan as the device stores it: start on the circle (temporal), end = centre."""
    radius = width * pitch_mm / (2 * np.pi)
    return np.array([[centre[0] - radius, centre[1], *centre]])


def _read(tmp_path: Path, **kwargs: object) -> OctVolume:
    path = tmp_path / "scan.vol"
    path.write_bytes(_synthetic_vol(**kwargs))  # type: ignore[arg-type]
    return read_vol(path)


def _refused(tmp_path: Path, **kwargs: object) -> str:
    """Message of the InputError reading a synthetic file raises; it names the file, on one line."""
    with pytest.raises(InputError) as info:
        _read(tmp_path, **kwargs)
    text = str(info.value)
    assert str(tmp_path / "scan.vol") in text and "\n" not in text
    return text


def test_synthetic_files_read(tmp_path: Path) -> None:
    # the writer's defaults, a circle and the documented "unknown" pattern 0 are all fine
    vol = _read(tmp_path)
    assert vol.shape == (3, 8, 16) and (vol.scan_pattern, vol.laterality) == (3, "OD")
    np.testing.assert_allclose(vol.bscan_spacing_mm(), [0.12, 0.12])
    assert list(vol.device_layers) == ["ILM", "BM"] and DEVICE_LINES_OUTSIDE_KEY not in vol.metadata
    circle = _read(tmp_path, n=1, width=64, pattern=2, distance=0.0, points=_circle_points(64, PITCH_MM))
    assert circle.bscan_geometry[0].circle_radius_mm == pytest.approx(64 * PITCH_MM / (2 * np.pi))
    assert _read(tmp_path, pattern=0).scan_pattern_name == "unknown"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"scale_x": 0.0}, "ScaleX = 0 mm is not in"),
        ({"scale_x": 1e-300}, "ScaleX = 1e-300 mm"),
        ({"scale_x": 5e-324}, "ScaleX = 4.94066e-324 mm"),
        ({"scale_x": 1e300}, "ScaleX = 1e+300 mm"),
        ({"scale_x": 100.0}, "ScaleX = 100 mm"),
        ({"scale_x": float("inf")}, "ScaleX = inf mm"),
        ({"scale_z": 0.1}, "ScaleZ = 0.1 mm is not in (0.0005, 0.02] mm, the plausible axial pixel size"),
        ({"scale_z": 1e-300}, "ScaleZ = 1e-300 mm"),
        ({"scale_z": 3.87}, "(micrometres given as millimetres?)"),
        ({"scale_z": float("nan")}, "ScaleZ = nan mm"),
        ({"distance": 120.0}, "Distance = 120 mm"),
        ({"distance": -0.12}, "Distance = -0.12 mm"),
    ],
)
def test_implausible_scales_are_refused_before_any_pixel(tmp_path: Path, header: dict, message: str) -> None:
    # NaN pixels would be refused too: the header is refused first, before any pixel is read
    assert message in _refused(tmp_path, pixels=np.full((3, 8, 16), np.nan), **header)


@pytest.mark.parametrize("pattern", [6, 10, -1, 2**31 - 1])
def test_unknown_scan_patterns_are_refused(tmp_path: Path, pattern: int) -> None:
    assert f"unknown scan pattern {pattern}; known codes: 0 unknown, 1 line, 2 circle" in _refused(tmp_path, pattern=pattern)


def test_circle_geometry_must_match_the_ascans(tmp_path: Path) -> None:
    # a 5.75 mm raster B-scan labelled as a circle would be a 36 mm circle
    raster = {"n": 1, "width": 500, "pattern": 2, "distance": 0.0}
    assert "circumference of 36.13 mm (radius 5.75 mm) but its 500 A-scans x 0.0115 mm span 5.75 mm" in _refused(
        tmp_path, **raster
    )
    # a true circle with twice the stored pitch, and one with a tenth of it
    for scale_x in (2 * PITCH_MM, PITCH_MM / 10):
        text = _refused(tmp_path, n=1, width=64, pattern=2, distance=0.0, scale_x=scale_x, points=_circle_points(64, PITCH_MM))
        assert "not a circle scan, or a wrong A-scan pitch" in text
    # start point on the centre
    assert "zero or non-finite radius" in _refused(
        tmp_path, n=1, pattern=2, distance=0.0, points=np.array([[4.0, 4.0, 4.0, 4.0]])
    )


@pytest.mark.parametrize(
    ("points", "message"),
    [
        (np.array([[1.0, 2.0, 10_000.0, 2.0]]), "A-scan positions span x 1..1e+04 mm"),  # one A-scan 10 m away
        (np.array([[1e6, 1e6, 1e6 + 0.2, 1e6]]), "within 40 mm of the SLO origin"),
        (np.array([[-50.0, 2.0, -49.8, 2.0]]), "x -50..-49.8 mm"),
        (np.array([[1.0, 2.0, 1.2, float("inf")]]), "positions are not finite"),
    ],
)
def test_positions_outside_a_fundus_field_are_refused_before_any_pixel(tmp_path: Path, points: np.ndarray, message: str) -> None:
    assert message in _refused(tmp_path, n=1, distance=0.0, points=points, pixels=np.full((1, 8, 16), np.nan))


def test_device_lines_outside_the_bscan_become_nan_and_are_counted(tmp_path: Path) -> None:
    lines = np.stack([np.full((3, 16), 2.0), np.full((3, 16), 6.0)], axis=1)
    lines[0, 0, 3], lines[2, 0, 5], lines[1, 1, 0] = -5.0, 1e9, FLT_MAX  # ILM, ILM, BM (invalid marker)
    lines[1, 1, 1], lines[1, 1, 2] = 0.0, 8.0  # on the edges of the 8-row B-scans: kept
    vol = _read(tmp_path, lines=lines)
    assert np.argwhere(np.isnan(vol.device_layers["ILM"])).tolist() == [[0, 3], [2, 5]]
    assert np.argwhere(np.isnan(vol.device_layers["BM"])).tolist() == [[1, 0]]
    assert vol.device_layers["BM"][1, 1:3].tolist() == [0.0, 8.0]
    assert vol.metadata[DEVICE_LINES_OUTSIDE_KEY] == {"ILM": 2}  # the marker is not counted


@pytest.mark.parametrize(
    ("value", "message"),
    [(0.0, "every valid pixel is 0 (black)"), (1.0, "every valid pixel is 1 (saturated)"), (FLT_MAX, "holds no valid pixel")],
)
def test_volumes_without_signal_are_refused(tmp_path: Path, value: float, message: str) -> None:
    pixels = np.full((3, 8, 16), value)
    pixels[1, :2] = FLT_MAX  # invalid pixels do not count as signal
    assert message in _refused(tmp_path, pixels=pixels)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({16: 1000, 20: 1024, 12: 1024}, "declares 1000 B-scans x 1024 rows x 1024 A-scans"),  # 4 GiB
        ({16: 1, 20: 496, 12: 100_000}, "100000 A-scans"),
        ({16: 3000, 20: 8, 12: 16}, "3000 B-scans"),
        ({48: 30_000, 52: 30_000}, "30000 x 30000"),  # SLO of 900 MB: the image limits apply
    ],
)
def test_sparse_files_declaring_gigabytes_fail_without_allocating(tmp_path: Path, header: dict, message: str) -> None:
    head = bytearray(_synthetic_vol()[:2048])
    for offset, value in header.items():
        struct.pack_into("<i", head, offset, value)
    path = tmp_path / "sparse.vol"
    with path.open("wb") as stream:
        stream.write(head)
        stream.truncate(8 * 2**30)  # sparse: as large as the header needs, holding nothing
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=message):
            read_vol(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


@pytest.mark.parametrize("name", ["x.vol", "x.e2e"])
def test_named_pipes_are_refused_without_blocking(tmp_path: Path, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(InputError, match="is not a regular OCT file"):
        read_oct(fifo)
    if name.endswith(".vol"):
        with pytest.raises(InputError, match=r"is not a regular \.vol file"):
            read_vol(fifo)


def test_bscans_with_fewer_lines_than_others(tmp_path: Path) -> None:
    data = bytearray(_synthetic_vol())
    bscan1 = 2048 + 30 + (256 + 4 * 2 * 16 + 4 * 8 * 16)  # second B-scan header
    struct.pack_into("<i", data, bscan1 + 48, 1)  # NumSeg 1: its BM slot is not segmentation...
    struct.pack_into("<f", data, bscan1 + 256 + 4 * 16, float("nan"))  # ...so its bytes do not matter
    path = tmp_path / "scan.vol"
    path.write_bytes(bytes(data))
    vol = read_vol(path)
    assert np.isnan(vol.device_layers["BM"][1]).all() and not np.isnan(vol.device_layers["BM"][[0, 2]]).any()
    assert not np.isnan(vol.device_layers["ILM"]).any()

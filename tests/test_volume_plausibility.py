"""OctVolume refuses what no OCT scan of one eye can be, whichever reader built it.

The readers' own tests (test_io_heidelberg, test_io_oct_files) show the same
rules applied to files before their pixels are decoded.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from retinaseg.errors import InputError
from retinaseg.io.limits import check_oct_size
from retinaseg.volume import (
    DEVICE_LINES_OUTSIDE_KEY,
    BScanGeometry,
    OctVolume,
    check_scale,
    check_signal,
)

WIDTH = 64
PITCH_MM = 0.0115


def _line(y: float = 2.0, length_mm: float = WIDTH * PITCH_MM) -> BScanGeometry:
    return BScanGeometry(start_xy_mm=(1.0, y), end_xy_mm=(1.0 + length_mm, y), quality=math.nan)


def _circle(radius_mm: float = WIDTH * PITCH_MM / (2 * math.pi), centre: tuple[float, float] = (4.0, 4.0)) -> BScanGeometry:
    start = (centre[0] - radius_mm, centre[1])
    return BScanGeometry(start, centre, math.nan, circle_centre_xy_mm=centre, circle_radius_mm=radius_mm)


def _volume(**changes: object) -> OctVolume:
    """A plausible 2-B-scan raster, with ``changes`` to its fields."""
    fields: dict = {
        "reflectance": np.full((2, 8, WIDTH), 0.25, np.float32),
        "scale_x_mm": PITCH_MM,
        "scale_z_mm": 0.0039,
        "bscan_geometry": [_line(2.0), _line(2.12)],
        "scan_pattern": 3,
        "laterality": "OD",
        "source": "scan.vol",
    }
    return OctVolume(**{**fields, **changes})


def _refused(**changes: object) -> str:
    with pytest.raises(InputError) as info:
        _volume(**changes)
    assert info.value.where == "scan.vol" and "\n" not in str(info.value)
    return info.value.problem


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scale_x_mm", 0.0, "scale_x_mm = 0 mm is not in (0.0005, 0.25] mm, the plausible A-scan pitch"),
        ("scale_x_mm", 1e-300, "scale_x_mm = 1e-300 mm"),
        ("scale_x_mm", 5e-324, "scale_x_mm = 4.94066e-324 mm"),
        ("scale_x_mm", 1e300, "scale_x_mm = 1e+300 mm"),
        ("scale_x_mm", 100.0, "scale_x_mm = 100 mm"),
        ("scale_x_mm", -PITCH_MM, "scale_x_mm = -0.0115 mm"),
        ("scale_x_mm", 11.5, "(micrometres given as millimetres?)"),
        ("scale_z_mm", 0.0, "scale_z_mm = 0 mm is not in (0.0005, 0.02] mm, the plausible axial pixel size"),
        ("scale_z_mm", 1e300, "scale_z_mm = 1e+300 mm"),
        ("scale_z_mm", math.nan, "scale_z_mm = nan mm"),
        ("scale_z_mm", math.inf, "scale_z_mm = inf mm"),
        ("scale_z_mm", "4 µm", "scale_z_mm = '4 µm' is not a number of millimetres"),
        ("slo_scale_xy_mm", (PITCH_MM, 0.0), "SLO pixel size y = 0 mm"),
        ("slo_scale_xy_mm", (100.0, PITCH_MM), "SLO pixel size x = 100 mm"),
        ("metadata", {"header_distance_mm": 1e300}, "header B-scan distance = 1e+300 mm"),
        ("metadata", {"header_distance_mm": -0.12}, "header B-scan distance = -0.12 mm"),
    ],
)
def test_implausible_scales_are_refused(field: str, value: object, message: str) -> None:
    assert message in _refused(**{field: value})


def test_plausible_scales_of_real_devices_are_accepted() -> None:
    # (A-scan pitch, axial pixel) in mm: Spectralis HR line, Spectralis wide-field, Cirrus 512x128,
    # Cirrus 200x200, Topcon Triton, PLEX Elite 12 mm OCTA, 2x-binned Spectralis
    for scale_x, scale_z in [
        (0.0057, 0.00387),
        (0.021, 0.00387),
        (0.0117, 0.00196),
        (0.03, 0.00200),
        (0.0234, 0.0026),
        (0.024, 0.00195),
        (0.023, 0.00774),
    ]:
        length = WIDTH * scale_x
        geometry = [_line(2.0, length), _line(2.1, length)]
        volume = _volume(scale_x_mm=scale_x, scale_z_mm=scale_z, bscan_geometry=geometry)
        assert (volume.scale_x_mm, volume.scale_z_mm) == (scale_x, scale_z)
    assert _volume(metadata={"header_distance_mm": 0.0}).metadata["header_distance_mm"] == 0.0  # "not given"


@pytest.mark.parametrize("pattern", [6, 10, -1, 2**31, "2", 2.0, None, True])
def test_unknown_scan_patterns_are_refused(pattern: object) -> None:
    assert f"unknown scan pattern {pattern!r}; known codes: 0 unknown, 1 line, 2 circle" in _refused(scan_pattern=pattern)


def test_laterality_must_be_od_or_os() -> None:
    assert "laterality 'R' is neither 'OD' nor 'OS'" in _refused(laterality="R")
    assert "laterality None" in _refused(laterality=None)


def test_circle_geometry_must_be_a_circle_of_the_ascans() -> None:
    one = np.full((1, 8, WIDTH), 0.25, np.float32)
    circle = _volume(reflectance=one, bscan_geometry=[_circle()], scan_pattern=2)
    assert circle.bscan_geometry[0].is_circle
    # a 5.75 mm raster B-scan labelled as a circle: as a circle it would be 36 mm round
    raster = {"reflectance": np.full((1, 8, 500), 0.25, np.float32), "scan_pattern": 2}
    assert "has no circle geometry" in _refused(**raster, bscan_geometry=[_line(2.0, 5.75)])
    assert "circumference of 36.13 mm (radius 5.75 mm) but its 500 A-scans x 0.0115 mm span 5.75 mm" in _refused(
        **raster, bscan_geometry=[_circle(radius_mm=5.75)]
    )
    assert "circumference" in _refused(reflectance=one, bscan_geometry=[_circle()], scan_pattern=2, scale_x_mm=0.02)
    # circle geometry on a raster, radius not the start point's distance, no radius
    assert "B-scan 1 has circle geometry but the scan pattern is 3 (volume)" in _refused(bscan_geometry=[_line(), _circle()])
    shifted = dataclasses.replace(_circle(), start_xy_mm=(3.0, 4.0))
    assert "radius differs from the distance" in _refused(reflectance=one, bscan_geometry=[shifted], scan_pattern=2)
    flat = dataclasses.replace(_circle(), circle_radius_mm=0.0)
    assert "zero or non-finite radius" in _refused(reflectance=one, bscan_geometry=[flat], scan_pattern=2)


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ([_line(2.0), BScanGeometry((1.0, 2.1), (10_001.0, 2.1), math.nan)], "span x 1..1e+04 mm"),  # 10 m
        ([_line(2.0), _line(2.0 + 45.0)], "y 2..47 mm"),  # B-scans 45 mm apart
        ([BScanGeometry((1e9, 2.0), (1e9 + 0.7, 2.0), math.nan)] * 2, "within 40 mm of the SLO origin"),
        ([_line(2.0), BScanGeometry((1.0, math.nan), (1.7, 2.1), math.nan)], "positions are not finite"),
    ],
)
def test_positions_outside_a_fundus_field_are_refused(geometry: list, message: str) -> None:
    assert message in _refused(bscan_geometry=geometry)


def test_a_circle_reaching_outside_the_field_is_refused() -> None:
    width = 4096
    huge = _circle(radius_mm=width * 0.06 / (2 * math.pi), centre=(20.0, 20.0))  # 39 mm radius
    problem = _refused(
        reflectance=np.full((1, 1, width), 0.25, np.float32), bscan_geometry=[huge], scan_pattern=2, scale_x_mm=0.06
    )
    assert "A-scan positions span x -19.11..59.11 mm" in problem


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2049, 1, 1), "2049 B-scans"), ((1, 4097, 1), "4097 rows"), ((1, 1, 8193), "8193 A-scans")],
)
def test_sizes_above_the_limits_are_refused(shape: tuple[int, int, int], message: str) -> None:
    geometry = [_line(2.0 + 0.01 * i, shape[2] * PITCH_MM) for i in range(shape[0])]
    assert message in _refused(reflectance=np.full(shape, 0.25, np.float32), bscan_geometry=geometry)


def test_voxel_limit_is_checked_from_declared_sizes() -> None:
    check_oct_size(193, 496, 1024, "spectralis.vol")  # a dense Spectralis volume
    check_oct_size(500, 1536, 500, "plex.eye")  # a swept-source cube
    for shape in [(2000, 4096, 100), (1024, 1024, 1024)]:
        with pytest.raises(InputError, match="M voxels are read"):
            check_oct_size(*shape, "big.vol")
    with pytest.raises(InputError, match="empty size"):
        check_oct_size(0, 496, 512, "empty.vol")


def test_device_values_outside_the_bscan_become_nan_and_are_counted() -> None:
    ilm = np.full((2, WIDTH), 2.0, np.float32)
    bm = np.full((2, WIDTH), 6.0, np.float32)
    ilm[0, :3] = [-5.0, 1e9, np.inf]
    bm[1, 4:7] = [np.nan, 0.0, 8.0]  # unsegmented, and on the B-scan's top and bottom edge: kept
    volume = _volume(device_layers={"ILM": ilm, "BM": bm}, metadata={"version": "HSF-OCT-103"})
    assert np.isnan(volume.device_layers["ILM"][0, :3]).all() and np.isnan(volume.device_layers["ILM"]).sum() == 3
    np.testing.assert_array_equal(volume.device_layers["BM"], bm)
    assert volume.metadata == {"version": "HSF-OCT-103", DEVICE_LINES_OUTSIDE_KEY: {"ILM": 3}}
    assert ilm[0, 0] == -5.0  # the caller's array is not changed
    # rebuilding the volume keeps the count (its values are NaN now, nothing new to count)
    assert dataclasses.replace(volume).metadata[DEVICE_LINES_OUTSIDE_KEY] == {"ILM": 3}


@pytest.mark.parametrize(
    ("value", "message"),
    [(0.0, "every valid pixel is 0 (black)"), (1.0, "every valid pixel is 1 (saturated)"), (np.nan, "holds no valid pixel")],
)
def test_check_signal_refuses_blank_volumes(value: float, message: str) -> None:
    reflectance = np.full((2, 8, WIDTH), value, np.float32)
    reflectance[0, 0, :5] = np.nan
    with pytest.raises(InputError) as info:
        check_signal(reflectance, "scan.vol")
    assert message in info.value.problem


def test_check_signal_accepts_any_contrast() -> None:
    reflectance = np.zeros((2, 8, WIDTH), np.float32)
    reflectance[1, 4, 9] = 1e-6  # one faint pixel is signal
    check_signal(reflectance, "scan.vol")
    check_signal(np.array([[[1.0, np.nan, 0.0]]], np.float32), "scan.vol")


def test_check_scale_returns_a_float() -> None:
    assert check_scale(np.float64(0.0039), "scale_z_mm", "scan.vol") == 0.0039
    assert type(check_scale(np.float32(0.5), "bscan_spacing_mm", "folder")) is float

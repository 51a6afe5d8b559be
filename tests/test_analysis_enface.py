"""En-face grids and maps from rasters of B-scans."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from retinaseg.analysis.enface import (
    EnfaceGrid,
    NotARasterError,
    enface_grid,
    enface_maps,
)
from retinaseg.analysis.etdrs import etdrs_table, find_fovea
from retinaseg.analysis.thickness import layer_thickness_um
from retinaseg.errors import InputError
from retinaseg.io.heidelberg import read_vol
from retinaseg.io.limits import MAX_ENFACE_CELLS

NAN = np.nan


def _raster(
    v_mm: list[float],
    u_start_mm: list[float],
    width: int,
    pitch_mm: float,
    angle_deg: float,
    origin_xy_mm: tuple[float, float],
    reverse: tuple[int, ...] = (),
) -> np.ndarray:
    """(N, W, 2) positions of straight B-scans along u at the given v, rotated by angle_deg."""
    a = math.radians(angle_deg)
    u_axis, v_axis = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    u = np.array(u_start_mm)[:, None] + pitch_mm * np.arange(width)[None, :]
    u[list(reverse)] = u[list(reverse), ::-1]
    v = np.array(v_mm)[:, None]
    return np.asarray(origin_xy_mm) + u[..., None] * u_axis + v[..., None] * v_axis


def _reference_map(
    values: np.ndarray, positions: np.ndarray, grid: EnfaceGrid, angle_deg: float, origin_xy_mm: tuple[float, float]
) -> np.ndarray:
    """Straightforward per-grid-point version of the rule in enface_maps' docstring."""
    a = math.radians(angle_deg)
    scans = []
    for i in range(positions.shape[0]):
        rel = positions[i] - origin_xy_mm
        u = rel[:, 0] * math.cos(a) + rel[:, 1] * math.sin(a)
        v = -rel[0, 0] * math.sin(a) + rel[0, 1] * math.cos(a)
        order = np.argsort(u)
        scans.append((v, list(u[order]), list(values[i][order])))
    scans.sort(key=lambda s: s[0])

    def along(scan: tuple, gu: float) -> float:
        _, us, fs = scan
        if gu < us[0] or gu > us[-1]:
            return NAN
        for c in range(len(us) - 1):
            if us[c] <= gu <= us[c + 1]:
                if gu == us[c]:
                    return fs[c]
                if gu == us[c + 1]:
                    return fs[c + 1]
                t = (gu - us[c]) / (us[c + 1] - us[c])
                return (1 - t) * fs[c] + t * fs[c + 1]
        raise AssertionError

    out = np.full(grid.shape, NAN)
    for row, y in enumerate(grid.y_mm):
        for col, x in enumerate(grid.x_mm):
            gu = (x - origin_xy_mm[0]) * math.cos(a) + (y - origin_xy_mm[1]) * math.sin(a)
            gv = -(x - origin_xy_mm[0]) * math.sin(a) + (y - origin_xy_mm[1]) * math.cos(a)
            for lower, upper in itertools.pairwise(scans):
                if lower[0] <= gv <= upper[0]:
                    if gv == lower[0]:
                        out[row, col] = along(lower, gu)
                    elif gv == upper[0]:
                        out[row, col] = along(upper, gu)
                    else:
                        t = (gv - lower[0]) / (upper[0] - lower[0])
                        out[row, col] = (1 - t) * along(lower, gu) + t * along(upper, gu)
                    break
    return out


def test_grid_is_snapped_to_multiples_of_the_spacing() -> None:
    positions = np.array([[[1.013, 2.5], [2.29, 2.5]], [[1.013, 3.011], [2.29, 3.011]]])
    grid = enface_grid(positions, spacing_mm=0.1)
    np.testing.assert_array_equal(grid.x_mm, np.arange(10, 24) * 0.1)
    np.testing.assert_array_equal(grid.y_mm, np.arange(25, 31) * 0.1)
    assert grid.shape == (6, 14) and grid.spacing_mm == pytest.approx(0.1)
    assert grid.extent_mm == pytest.approx((0.95, 2.35, 3.05, 2.45))  # left, right, bottom (max y), top
    # cells cover the bounding box of the positions
    left, right, bottom, top = grid.extent_mm
    assert left <= 1.013 and right >= 2.29 and top <= 2.5 and bottom >= 3.011
    x, y = grid.mesh()
    assert x.shape == y.shape == (6, 14)
    np.testing.assert_array_equal(x[3], grid.x_mm)
    np.testing.assert_array_equal(y[:, 5], grid.y_mm)
    # a second volume shifted by a few cells lines up cell for cell
    shifted = enface_grid(positions + 0.3, spacing_mm=0.1)
    np.testing.assert_array_equal(shifted.x_mm[:-3], grid.x_mm[3:])


@pytest.mark.parametrize(
    ("x_mm", "y_mm"),
    [([0.0], [1.0]), ([0.0, 0.1, 0.3], [0.0, 0.1]), ([0.0, 0.1], [0.0, 0.2]), ([[0.0, 0.1]], [0.0, 0.1])],
)
def test_bad_grids_raise(x_mm: list, y_mm: list) -> None:
    with pytest.raises(InputError):
        EnfaceGrid(x_mm=np.array(x_mm), y_mm=np.array(y_mm))


def test_maps_match_a_per_point_computation_on_a_rotated_uneven_raster() -> None:
    angle, origin = 25.0, (2.0, 3.0)
    v_mm = [0.9, 0.0, 0.45, 1.3, 0.3]  # uneven, not in order
    positions = _raster(
        v_mm, [0.0, 0.05, -0.03, 0.02, 0.0], width=12, pitch_mm=0.1, angle_deg=angle, origin_xy_mm=origin, reverse=(2,)
    )
    rng = np.random.default_rng(1)
    values = rng.uniform(100, 300, size=(5, 12, 2))
    values[1, 4, 0] = values[3, 0, 1] = values[4, 11, :] = NAN
    grid = enface_grid(positions, spacing_mm=0.03)
    maps = enface_maps(values, positions, grid)
    assert maps.shape == (2, *grid.shape) and maps.dtype == np.float64
    for k in range(2):
        expected = _reference_map(values[..., k], positions, grid, angle, origin)
        np.testing.assert_array_equal(np.isnan(maps[k]), np.isnan(expected))
        np.testing.assert_allclose(maps[k], expected, rtol=0, atol=1e-9)
    # the rotated raster fills the inside of its bounding box but not the corners
    assert 0.3 < np.isfinite(maps[0]).mean() < 0.8
    np.testing.assert_array_equal(enface_maps(values[..., 1], positions, grid), maps[1])


def test_linear_values_are_reproduced() -> None:
    angle, origin = -40.0, (1.0, 1.0)
    positions = _raster([0.0, 0.2, 0.7, 0.8], [0.0] * 4, width=9, pitch_mm=0.15, angle_deg=angle, origin_xy_mm=origin)
    values = 3.0 + 2.0 * positions[..., 0] - 5.0 * positions[..., 1]
    grid = enface_grid(positions, spacing_mm=0.01)
    x, y = grid.mesh()
    result = enface_maps(values, positions, grid)
    known = np.isfinite(result)
    assert known.sum() > 0.4 * known.size
    np.testing.assert_allclose(result[known], (3.0 + 2.0 * x - 5.0 * y)[known], atol=1e-9)


def test_masking_by_hand() -> None:
    # B-scan y = 1 stored first (inferior first, as Spectralis does), x = 0 .. 1 in 0.25 steps
    x_ascan = np.arange(5) * 0.25
    positions = np.stack([np.stack([x_ascan, np.full(5, y)], axis=-1) for y in (1.0, 0.0)])
    values = np.stack([10.0 + 4.0 * x_ascan, 4.0 * x_ascan])
    values[0, 3] = NAN  # x = 0.75 on the y = 1 B-scan
    grid = EnfaceGrid(x_mm=np.arange(-1, 10) * 0.125, y_mm=np.arange(-1, 10) * 0.125)
    result = enface_maps(values, positions, grid)
    x, y = grid.mesh()
    expected = 4.0 * x + 10.0 * y
    expected[(x < 0) | (x > 1) | (y < 0) | (y > 1)] = NAN  # outside the raster
    expected[(y > 0) & (x > 0.5) & (x < 1.0)] = NAN  # next to the invalid A-scan, except on the other B-scan
    np.testing.assert_array_equal(np.isnan(result), np.isnan(expected))
    np.testing.assert_allclose(result, expected, atol=1e-12)
    assert result[1, 7] == 3.0  # exactly on the y = 0 B-scan beside the invalid A-scan


def test_non_rasters_raise() -> None:
    phi = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = np.stack([2 + 1.7 * np.cos(phi), 2 + 1.7 * np.sin(phi)], axis=-1)[None]
    line = _raster([0.0, 0.5], [0.0, 0.0], 10, 0.1, 0.0, (0.0, 0.0))
    tilted = line.copy()
    tilted[1, :, 1] += np.linspace(0, 0.05, 10)
    grid = EnfaceGrid(x_mm=np.arange(10) * 0.1, y_mm=np.arange(6) * 0.1)
    for positions, message in [
        (np.concatenate([circle, circle + [0.0, 0.5]]), "parallel"),
        (line[:1], "2\\+ parallel B-scans; got 1"),
        (tilted, "parallel"),
        (np.concatenate([line[:1], line[:1]]), "same line"),
        (line[:, :1], "W >= 2"),
    ]:
        with pytest.raises(NotARasterError, match=message):
            enface_maps(np.zeros(positions.shape[:2]), positions, grid)
    # wrong inputs are not "no raster"
    with pytest.raises(InputError, match="values") as info:
        enface_maps(np.zeros((2, 9)), line, grid)
    assert not isinstance(info.value, NotARasterError)


def test_duke_volume_thickness_map(duke_volumes_root: Path) -> None:
    volume = read_vol(duke_volumes_root / "Subject_01.vol")
    positions = volume.ascan_positions_mm()
    layers = volume.device_layers
    boundaries = np.stack([layers["ILM"], layers["RNFL"], layers["BM"]], axis=1)  # (N, 3, W)
    thickness = np.moveaxis(layer_thickness_um(boundaries, volume.axial_um), 1, -1)  # (N, W, 2)
    total = thickness.sum(axis=-1)
    grid = enface_grid(positions)
    maps = enface_maps(np.concatenate([thickness, total[..., None]], axis=-1), positions, grid)
    assert maps.shape == (3, *grid.shape)
    n, _, width = volume.shape
    # the grid covers the raster: x from 1.357 mm over 535 A-scan pitches of 11.5 µm, y 2.016 - 6.816 mm
    assert (n, width) == (11, 536)
    assert grid.x_mm[0] == pytest.approx(1.36) and grid.x_mm[-1] == pytest.approx(7.50)
    assert grid.y_mm[0] == pytest.approx(2.02) and grid.y_mm[-1] == pytest.approx(6.82)
    x, y = grid.mesh()
    inside = (x >= positions[..., 0].min()) & (x <= positions[..., 0].max())
    inside &= (y >= positions[..., 1].min()) & (y <= positions[..., 1].max())
    assert np.isfinite(maps[2][inside]).mean() > 0.99
    assert np.isnan(maps[2][~inside]).all()
    assert 150 < np.nanmin(maps[2]) and np.nanmax(maps[2]) < 900
    np.testing.assert_allclose(maps[0] + maps[1], maps[2], atol=1e-9)
    # the superior-most B-scan (stored last) is the top row of the map, within half a cell
    top_row = np.flatnonzero(np.isfinite(maps[2]).any(axis=1))[0]
    assert abs(grid.y_mm[top_row] - positions[-1, 0, 1]) <= grid.spacing_mm / 2


@pytest.mark.parametrize("subject", ["Subject_01", "Subject_05"])
def test_duke_map_matches_bilinear_interpolation_of_the_manual_layers(duke_volumes_root: Path, subject: str) -> None:
    """The Duke B-scans share their x positions, so the rule is plain bilinear interpolation on (y, x)."""
    from scipy.interpolate import RegularGridInterpolator

    volume = read_vol(duke_volumes_root / f"{subject}.vol")
    positions = volume.ascan_positions_mm()
    layers = volume.device_layers
    total = layer_thickness_um(np.stack([layers["ILM"], layers["BM"]], axis=1), volume.axial_um)[:, 0]
    grid = enface_grid(positions)
    ours = enface_maps(total, positions, grid)

    x_mm = positions[0, :, 0]
    assert np.array_equal(positions[..., 0], np.broadcast_to(x_mm, positions.shape[:2]))
    order = np.argsort(positions[:, 0, 1])  # the file stores the inferior-most (largest y) first
    interpolator = RegularGridInterpolator((positions[order, 0, 1], x_mm), total[order], bounds_error=False)
    x, y = grid.mesh()
    expected = interpolator(np.stack([y.ravel(), x.ravel()], axis=1)).reshape(grid.shape)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


# --- grid limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("positions", "spacing_mm", "message"),
    [
        (np.array([[[0.0, 0.0], [10_000.0, 0.0]], [[0.0, 5.0], [10_000.0, 5.0]]]), 0.02, "5e\\+05 x 251 cells"),
        (np.array([[[0.0, 0.0], [1e300, 0.0]], [[0.0, 1e300], [1e300, 1e300]]]), 0.02, "5e\\+301 x 5e\\+301 cells"),
        (_raster([0.0, 6.0], [0.0, 0.0], 10, 0.6, 0.0, (1.0, 1.0)), 1e-4, "5\\.4e\\+04 x 6e\\+04 cells"),
    ],
)
def test_grids_above_the_cell_limit_are_refused(positions: np.ndarray, spacing_mm: float, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        enface_grid(positions, spacing_mm)
    assert info.value.where == "grid" and f"at most {MAX_ENFACE_CELLS} cells" in info.value.problem


def test_etdrs_lattice_and_centre_are_bounded() -> None:
    fine = EnfaceGrid(x_mm=np.array([0.0, 1e-6]), y_mm=np.array([0.0]))  # two cells of 1 nm
    with pytest.raises(InputError, match="on the ETDRS grid") as info:
        etdrs_table({"total": np.ones(fine.shape)}, fine, (0.0, 0.0), "OD")
    assert info.value.where == "grid"
    grid = EnfaceGrid(x_mm=np.arange(10) * 0.1, y_mm=np.arange(6) * 0.1)
    for centre in [(1e300, 0.5), (0.5, -41.0)]:
        with pytest.raises(InputError, match="within 40 mm of the SLO origin"):
            etdrs_table({"total": np.ones(grid.shape)}, grid, centre, "OD")
    # a far centre inside the field is fine: nothing of the ETDRS grid is covered
    far = etdrs_table({"total": np.ones(grid.shape)}, grid, (30.0, 30.0), "OD")
    assert {row.coverage for row in far} == {0.0}


def test_find_fovea_with_a_smoothing_wider_than_the_map() -> None:
    grid = EnfaceGrid(x_mm=np.arange(5) * 1e-6, y_mm=np.arange(4) * 1e-6)
    thickness = np.arange(20, dtype=np.float64).reshape(4, 5)
    thickness[2, 3] = -1.0
    assert find_fovea(thickness, grid, (0.0, 0.0), search_radius_mm=1.0, smooth_mm=0.0) == (3e-6, 2e-6)
    # sigma = 1e7 cells flattens the map to its mean; its kernel is cut at the map size, not 8e7 taps long
    x, y = find_fovea(thickness, grid, (0.0, 0.0), search_radius_mm=1.0, smooth_mm=10.0)
    assert x in grid.x_mm and y in grid.y_mm

"""Layer boundaries from label maps and their mean absolute errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retinaseg.analysis import boundaries as boundaries_module
from retinaseg.analysis.boundaries import (
    boundaries_from_labels,
    boundary_mad,
    layer_surfaces,
)
from retinaseg.conventions import (
    DUKE_BOUNDARY_NAMES,
    DUKE_FLUID_CLASS,
    DUKE_LAYER_CLASSES,
    DUKE_TO_DEVICE_LINES,
)
from retinaseg.errors import InputError
from retinaseg.io.heidelberg import read_vol

NAN = np.nan


def _column_map(columns: list[list[int]]) -> np.ndarray:
    """Label map whose columns are the given top-to-bottom class lists."""
    return np.array(columns, dtype=np.uint8).T


def test_top_row_of_each_layer() -> None:
    label = _column_map(
        [
            [0, 0, 1, 1, 2, 2, 3, 3],
            [0, 1, 1, 1, 1, 2, 3, 3],
            [0, 0, 0, 0, 0, 0, 0, 0],  # no retina in this column
        ]
    )
    b = boundaries_from_labels(label, [1, 2, 3])
    assert b.shape == (3, 3) and b.dtype == np.float64
    np.testing.assert_array_equal(b, [[2, 1, NAN], [4, 5, NAN], [6, 6, NAN]])


def test_zero_thickness_layer_lies_on_the_next_boundary() -> None:
    label = _column_map([[0, 0, 1, 1, 3, 3, 3, 3]])  # layer 2 pinched out
    np.testing.assert_array_equal(boundaries_from_labels(label, [1, 2, 3])[:, 0], [2, 4, 4])


def test_fluid_hides_the_boundary_it_covers() -> None:
    fluid = 9
    label = _column_map(
        [
            [0, 1, 9, 1, 2, 2, 3, 3],  # cyst inside layer 1: nothing hidden
            [0, 1, 1, 9, 9, 2, 3, 3],  # cyst over the 1/2 boundary: boundary 2 unknown
            [0, 9, 9, 9, 9, 9, 9, 9],  # fluid below the vitreous, no layer
        ]
    )
    b = boundaries_from_labels(label, [1, 2, 3], fluid_classes=[fluid])
    np.testing.assert_array_equal(b, [[1, 1, NAN], [4, NAN, NAN], [6, 6, NAN]])
    # without a fluid class the cyst is just "not a layer": boundary 2 under the cyst
    assert boundaries_from_labels(label, [1, 2, 3])[1, 1] == 5


def test_duke_constants() -> None:
    assert DUKE_LAYER_CLASSES == (1, 2, 3, 4, 5, 6, 7, 8)
    assert DUKE_FLUID_CLASS == 9
    assert len(DUKE_BOUNDARY_NAMES) == len(DUKE_LAYER_CLASSES)
    assert DUKE_BOUNDARY_NAMES[0] == "ILM" and DUKE_BOUNDARY_NAMES[-1] == "BM"


def test_duke_boundaries_rebuild_the_label_map(duke_npy_root: Path) -> None:
    for path in sorted((duke_npy_root / "DukeData" / "test" / "masks").glob("*.npy"))[:3]:
        label = np.load(path)
        b = boundaries_from_labels(label, DUKE_LAYER_CLASSES, [DUKE_FLUID_CLASS])
        assert b.shape == (8, label.shape[1])
        known = np.isfinite(b).all(axis=0)
        assert known.mean() > 0.9
        assert (np.diff(b[:, known], axis=0) >= 0).all()  # boundaries never cross
        # class of a pixel = number of boundaries at or above its row
        rows = np.arange(label.shape[0])[:, None, None]
        rebuilt = (rows >= b[None, :, known]).sum(axis=1)
        layer_pixels = label[:, known] != DUKE_FLUID_CLASS
        np.testing.assert_array_equal(rebuilt[layer_pixels], label[:, known][layer_pixels])


def test_boundary_mad_by_hand() -> None:
    pred = np.array([[1.0, 2.0, NAN], [5.0, 5.0, 5.0]])
    true = np.array([[2.0, 2.0, 2.0], [NAN, NAN, NAN]])
    out = boundary_mad(pred, true, axial_um=3.87)
    np.testing.assert_allclose(out["mad_px"], [0.5, NAN])
    np.testing.assert_allclose(out["mad_um"], [0.5 * 3.87, NAN])
    np.testing.assert_array_equal(out["n_columns"], [2, 0])
    assert "mad_um" not in boundary_mad(pred, true)


@pytest.mark.parametrize(
    "label",
    [
        np.zeros((4, 4), dtype=np.float32),  # not a class map
        np.zeros((2, 4, 4), dtype=np.uint8),  # not one B-scan
        -np.ones((4, 4), dtype=np.int16),
    ],
)
def test_bad_label_maps_raise(label: np.ndarray) -> None:
    with pytest.raises(InputError):
        boundaries_from_labels(label, [1, 2])


def test_mad_shape_mismatch_raises() -> None:
    with pytest.raises(InputError):
        boundary_mad(np.zeros((8, 10)), np.zeros((8, 11)))


# --- layer_surfaces: ordered boundaries for measurements ---------------------------------------


def test_surfaces_of_clean_columns_are_the_top_rows() -> None:
    label = _column_map([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 1, 1, 1, 2, 3, 3], [0, 0, 0, 1, 3, 3, 3, 3]])
    surfaces = layer_surfaces(label, [1, 2, 3], min_retina_px=1)
    np.testing.assert_array_equal(surfaces, [[2, 1, 3], [4, 5, 4], [6, 6, 4]])


def test_stray_pixels_do_not_pull_boundaries() -> None:
    clean = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    noisy = [
        [0, 3, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3],  # a "choroid" pixel in the vitreous
        [0, 0, 0, 0, 1, 1, 2, 2, 3, 0, 0, 3],  # "vitreous" holes in the choroid
        [0, 0, 0, 0, 1, 2, 1, 2, 3, 3, 3, 3],  # two swapped layer pixels
    ]
    surfaces = layer_surfaces(_column_map([clean, *noisy]), [1, 2, 3], min_retina_px=1)
    assert np.abs(surfaces[:, 1:] - surfaces[:, :1]).max() <= 1
    first_rows = boundaries_from_labels(_column_map(noisy), [1, 2, 3])
    assert first_rows[2, 0] == 1  # reading the map literally, the stray pixel moves the boundaries


def test_surfaces_never_cross_on_noisy_maps() -> None:
    rng = np.random.default_rng(0)
    clean = np.repeat(np.repeat(np.arange(5), 8)[:, None], 30, axis=1)  # 40 rows, classes 0..4
    noisy = np.where(rng.random(clean.shape) < 0.1, rng.integers(0, 5, clean.shape), clean).astype(np.uint8)
    surfaces = layer_surfaces(noisy, [1, 2, 3, 4], min_retina_px=1)
    assert np.isfinite(surfaces).all() and (np.diff(surfaces, axis=0) >= 0).all()
    error = np.abs(surfaces - np.array([8, 16, 24, 32])[:, None])
    assert error.mean() < 0.5 and error.max() <= 3


def test_boundary_under_fluid_is_interpolated_into_the_pocket() -> None:
    seen = [0, 0, 1, 1, 1, 2, 2, 2, 3, 3]  # boundary 2 at row 5
    covered = [0, 0, 1, 9, 9, 9, 9, 2, 3, 3]  # a pocket over the 1/2 boundary, rows 3-6
    deeper = [0, 0, 1, 1, 1, 1, 1, 2, 3, 3]  # boundary 2 at row 7
    surfaces = layer_surfaces(_column_map([seen, covered, deeper]), [1, 2, 3], fluid_classes=[9], min_retina_px=1)
    # pocket column: boundary 2 midway between its neighbours (rows 5 and 7), inside the pocket (rows 3-6)
    np.testing.assert_array_equal(surfaces[:, 1], [2, 6, 8])


def test_invalid_wedge_over_a_boundary_leaves_it_unknown() -> None:
    column = [0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    label = _column_map([column, column])
    invalid = np.zeros(label.shape, dtype=bool)
    invalid[:4, 1] = True  # the wedge covers the vitreous and the top of the retina in column 1
    surfaces = layer_surfaces(label, [1, 2, 3], invalid=invalid, min_retina_px=1)
    np.testing.assert_array_equal(surfaces[:, 0], [3, 8, 11])
    assert np.isnan(surfaces[0, 1]) and surfaces[1, 1] == 8 and surfaces[2, 1] == 11


def test_columns_without_retina_are_nan() -> None:
    label = _column_map([[0, 0, 1, 1, 2, 2, 3, 3], [0] * 8, [0, 0, 0, 0, 0, 0, 1, 3]])
    surfaces = layer_surfaces(label, [1, 2, 3], min_retina_px=2)
    assert np.isfinite(surfaces[:, 0]).all() and np.isnan(surfaces[:, 1:]).all()


def test_surfaces_of_duke_masks_reproduce_the_volume_lines(duke_npy_root: Path, duke_volumes_root: Path) -> None:
    """The manual masks give back the manual lines stored in the .vol files (same fluid rule)."""
    for subject in ("Subject_06", "Subject_09"):
        volume = read_vol(duke_volumes_root / f"{subject}.vol")
        masks = np.stack([np.load(next(duke_npy_root.glob(f"DukeData/*/masks/{subject}_{i:02d}.npy"))) for i in range(11)])
        surfaces = layer_surfaces(masks, DUKE_LAYER_CLASSES, [DUKE_FLUID_CLASS], invalid=np.isnan(volume.reflectance))
        lines = np.stack([volume.device_layers[DUKE_TO_DEVICE_LINES[name]] for name in DUKE_BOUNDARY_NAMES], axis=1)
        difference = np.abs(surfaces - lines)
        assert np.isfinite(difference).all()
        assert (difference == 0).mean() > 0.999 and difference.mean() < 0.01


def test_volumes_are_processed_in_chunks_with_the_same_result() -> None:
    rng = np.random.default_rng(3)
    clean = np.repeat(np.repeat(np.arange(5), 6)[:, None], 12, axis=1)
    volume = np.stack([np.where(rng.random(clean.shape) < 0.1, rng.integers(0, 5, clean.shape), clean) for _ in range(9)])
    together = layer_surfaces(volume.astype(np.uint8), [1, 2, 3, 4], min_retina_px=1)
    one_by_one = np.stack([layer_surfaces(bscan.astype(np.uint8), [1, 2, 3, 4], min_retina_px=1) for bscan in volume])
    np.testing.assert_array_equal(together, one_by_one)


@pytest.mark.parametrize("wedges", [False, True])
def test_surfaces_from_the_rows_around_the_retina_equal_those_of_the_whole_height(
    wedges: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    clean = np.repeat(np.repeat([0, 1, 2, 3, 4, 4], [30, 6, 6, 6, 6, 30])[:, None], 20, axis=1)  # 84 rows, 4 = last layer
    band = slice(28, 56)  # noise, fluid and a stray pixel in and around the retina only
    volume = np.stack([clean] * 6).astype(np.uint8)
    volume[:, band] = np.where(
        rng.random(volume[:, band].shape) < 0.15, rng.integers(0, 5, volume[:, band].shape), volume[:, band]
    )
    volume[2, 40:44, 5:9] = 9
    volume[2, 29:31, 10:12] = 9  # fluid at the top of the retina
    volume[4, 12, 3] = 2
    invalid = np.zeros(volume.shape, dtype=bool)
    if wedges:  # padding joined to the top and to the bottom edge, one reaching into the retina; a column without data
        invalid[1, :10, 15:] = True
        invalid[0, 60:, :4] = True
        invalid[3, :33, 7:9] = True
        invalid[5, :, 11] = True
    mask = invalid if wedges else None
    real = boundaries_module._rows_needed
    crops: list[tuple[int, int]] = []
    monkeypatch.setattr(boundaries_module, "_rows_needed", lambda *args: crops.append(real(*args)) or crops[-1])
    cropped = layer_surfaces(volume, [1, 2, 3, 4], [9], invalid=mask, min_retina_px=1)
    assert any(start > 0 for start, _ in crops) and any(stop < clean.shape[0] for _, stop in crops)
    monkeypatch.setattr(boundaries_module, "_rows_needed", lambda labels, *args: (0, labels.shape[1]))
    whole = layer_surfaces(volume, [1, 2, 3, 4], [9], invalid=mask, min_retina_px=1)
    np.testing.assert_array_equal(cropped, whole)
    assert np.isfinite(whole).mean() > 0.8


def test_columns_already_in_order_are_their_own_fit() -> None:
    """The fit runs only on out-of-order columns; fitting every column gives the same depths at the known pixels."""
    rng = np.random.default_rng(7)
    ordered = np.sort(rng.integers(-1, 4, size=(3, 25, 40)), axis=1).astype(np.int8)  # (N, H, W), layers -1 to 3
    depth = np.where(rng.random(ordered.shape) < 0.02, rng.integers(-1, 4, ordered.shape), ordered).astype(np.int8)
    unknown = rng.random(depth.shape) < 0.1
    fitted = boundaries_module._monotone_fit(depth, unknown, 4)
    everything = boundaries_module._fit_columns(
        depth.transpose(1, 0, 2).reshape(25, -1), unknown.transpose(1, 0, 2).reshape(25, -1), 4
    )
    everything = everything.reshape(25, 3, 40).transpose(1, 0, 2)
    out_of_order = (depth != ordered).any(axis=1)
    assert 0 < out_of_order.mean() < 1
    np.testing.assert_array_equal(fitted[~unknown], everything[~unknown])
    np.testing.assert_array_equal(fitted[unknown], depth[unknown])

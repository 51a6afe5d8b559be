"""Segmenting only the rows around the retina: the crop, its check, and class maps equal to full height."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from retinaseg.conventions import DUKE_CLASS_NAMES
from retinaseg.data.phantom import make_phantom_oct_volume
from retinaseg.data.preprocess import Preprocessing
from retinaseg.inference.rows import GUARD_PX, RetinaRows
from retinaseg.inference.volume import segment_volume
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config
from retinaseg.volume import OctVolume

HEIGHT, WIDTH = 144, 24  # 144 rows: the phantom needs 1 mm of depth


def _retina(top: int, bottom: int) -> np.ndarray:
    """``(1, HEIGHT, WIDTH)`` classes: 0 above row ``top``, 1 from it to ``bottom`` (inclusive), 2 below."""
    labels = np.full((1, HEIGHT, WIDTH), 2, dtype=np.uint8)
    labels[:, :top] = 0
    labels[:, top : bottom + 1] = 1
    return labels


def test_the_first_window_is_the_whole_height_then_the_band_plus_margin_rounded_to_the_multiple() -> None:
    rows = RetinaRows(HEIGHT, size_multiple=8, margin_px=16)
    assert rows.window() == (0, HEIGHT)
    rows.update(_retina(40, 59), full_height=np.array([True]))
    # rows 24..75 (52 rows), grown downwards with real rows to 56, a multiple of 8
    assert rows.window() == (24, 80)


def test_a_window_at_the_image_bottom_grows_upwards() -> None:
    rows = RetinaRows(HEIGHT, size_multiple=16, margin_px=16)
    rows.update(_retina(100, 120), full_height=np.array([True]))
    start, stop = rows.window()
    assert stop == HEIGHT and (stop - start) % 16 == 0 and start <= 100 - 16


def test_a_crop_is_placed_between_the_classes_above_and_below() -> None:
    rows = RetinaRows(HEIGHT, margin_px=16)
    rows.update(_retina(40, 59), full_height=np.array([True]))
    window = rows.window()
    crop = _retina(42, 61)[:, window[0] : window[1]]  # the next B-scan, retina 2 rows lower
    full, passed = rows.place(crop, window)
    assert passed.tolist() == [True]
    np.testing.assert_array_equal(full, _retina(42, 61))
    assert (rows.cropped, rows.repeated) == (1, 0)


@pytest.mark.parametrize("shift", [-20, 20])
def test_a_retina_reaching_the_crop_edge_fails_the_check(shift: int) -> None:
    rows = RetinaRows(HEIGHT, margin_px=16)
    rows.update(_retina(40, 59), full_height=np.array([True]))
    window = rows.window()
    moved = _retina(40 + shift, 59 + shift)[:, window[0] : window[1]]
    assert moved[:, :GUARD_PX].any() or (moved[:, -GUARD_PX:] != 2).any()
    _, passed = rows.place(moved, window)
    assert passed.tolist() == [False]
    assert rows.repeated == 1


def test_a_blank_bscan_keeps_the_band() -> None:
    rows = RetinaRows(HEIGHT, margin_px=16)
    rows.update(_retina(40, 59), full_height=np.array([True]))
    window = rows.window()
    rows.update(np.full((1, HEIGHT, WIDTH), 2, dtype=np.uint8), full_height=np.array([False]))
    assert rows.window() == window


def test_a_crop_without_retina_fails_the_check() -> None:
    rows = RetinaRows(HEIGHT, margin_px=16)
    rows.update(_retina(40, 59), full_height=np.array([True]))
    window = rows.window()
    no_retina = _retina(50, 49)[:, window[0] : window[1]]  # vitreous straight onto choroid
    _, passed = rows.place(no_retina, window)
    assert passed.tolist() == [False]


def test_nothing_is_learned_from_a_bscan_with_one_class_at_top_and_bottom() -> None:
    rows = RetinaRows(HEIGHT, margin_px=16)
    blank = np.zeros((1, HEIGHT, WIDTH), dtype=np.uint8)
    rows.update(blank, full_height=np.array([True]))
    assert rows.window() == (0, HEIGHT)
    background_both_sides = _retina(40, 59) % 2  # classes 0, 1, 0: a crop could not tell a missed retina
    rows.update(background_both_sides, full_height=np.array([True]))
    assert rows.window() == (0, HEIGHT)


def test_a_margin_smaller_than_the_guard_is_refused() -> None:
    with pytest.raises(ValueError, match="margin_px"):
        RetinaRows(HEIGHT, margin_px=GUARD_PX - 1)


class _ColumnLayers(nn.Module):
    """Class 0 above each column's first bright pixel, 1 where bright, 2 below; records the rows of each image it was given.

    Context-dependent along the column (as a real network), yet a crop that starts in the dark
    above the retina gives exactly the full-height answer: the class maps must match exactly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # a parameter: the model's device is read from it
        self.rows: list[int] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.rows += [int(images.shape[2])] * len(images)
        bright = (images[:, :1] > 0.5).float()
        seen = torch.cummax(bright, dim=2).values
        return 10 * torch.cat([1 - seen, bright, seen - bright], dim=1) + self.weight


class _Bright(_ColumnLayers):
    """Class 1 where bright, 0 elsewhere: background both above and below the retina."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return super().forward(images)[:, :2]


def _model(network: nn.Module | None = None) -> TrainedModel:
    config = load_config(None, ["name=rows", "data.source=retinaseg", "data.root=unused", "model.options={depth: 3}"])
    model = TrainedModel.from_config(
        config, DUKE_CLASS_NAMES, "multiclass", Preprocessing(channels="grey", clahe=False, normalize="percentile")
    )
    model.network = network or _ColumnLayers()
    return model


def _volume(tops: list[int], height: int) -> OctVolume:
    """B-scans dark but for a bright band of 20 rows starting at each of ``tops``, tilted by 4 rows across."""
    phantom = make_phantom_oct_volume(seed=0, n_bscans=len(tops), height=height, width=WIDTH)[0]
    reflectance = np.full((len(tops), height, WIDTH), 0.01, dtype=np.float32)
    tilt = np.linspace(0, 4, WIDTH).astype(int)
    for k, top in enumerate(tops):
        for column in range(WIDTH):
            reflectance[k, top + tilt[column] : top + tilt[column] + 20, column] = 0.8
    return dataclasses.replace(phantom, reflectance=reflectance)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_segmenting_the_retina_rows_gives_the_full_height_class_maps_with_fewer_rows(batch_size: int) -> None:
    # the retina drifts slowly, then jumps by 80 rows: that B-scan is redone at full height
    height = 320
    volume = _volume([100, 102, 104, 106, 186, 184, 182, 180], height)
    model = _model()
    full = segment_volume(volume, model, batch_size=batch_size, progress=False, inference="fp32")
    assert model.network.rows == [height] * len(volume.reflectance)
    model.network.rows.clear()
    cropped = segment_volume(volume, model, batch_size=batch_size, progress=False, inference="fp32", retina_rows=True)
    np.testing.assert_array_equal(cropped, full)
    assert set(np.unique(full)) == {0, 1, 2}
    whole = model.network.rows.count(height)
    assert whole >= batch_size + 1  # the first batch, and the jump redone whole
    assert min(model.network.rows) <= height // 2  # the others saw the band and its margins only


def test_a_model_with_background_above_and_below_sees_every_bscan_whole() -> None:
    height = 320
    volume = _volume([40, 42, 220, 222, 224], height)  # a jump a crop would miss entirely
    model = _model(_Bright())
    full = segment_volume(volume, model, batch_size=1, progress=False, inference="fp32")
    model.network.rows.clear()
    rows = segment_volume(volume, model, batch_size=1, progress=False, inference="fp32", retina_rows=True)
    np.testing.assert_array_equal(rows, full)
    assert model.network.rows == [height] * len(volume.reflectance)

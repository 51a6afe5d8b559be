"""Prediction panels: outcome codes and colours, and the PNG files of retinaseg.report.panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinaseg.errors import InputError
from retinaseg.report.palette import colorize, palette_for
from retinaseg.report.panels import (
    OUTCOME_PALETTE,
    PanelRow,
    outcome_map,
    panel_file_name,
    save_prediction_panels,
)

BLACK, VERMILLION, SKY_BLUE, WHITE, GREY = ((0, 0, 0), (213, 94, 0), (86, 180, 233), (255, 255, 255), (128, 128, 128))

# Reference and prediction of a 2x2 image: TP top left, FN top right, FP bottom left, TN bottom right.
REFERENCE = np.array([[1, 1], [0, 0]], dtype=np.uint8)
PREDICTION = np.array([[1, 0], [1, 0]], dtype=np.uint8)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"))


def _count(rgb: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((rgb == colour).all(axis=-1).sum())


def test_outcome_colours_by_hand() -> None:
    codes = outcome_map(PREDICTION, REFERENCE)
    np.testing.assert_array_equal(codes, [[3, 2], [1, 0]])
    np.testing.assert_array_equal(colorize(codes, OUTCOME_PALETTE), [[WHITE, SKY_BLUE], [VERMILLION, BLACK]])
    # Outside the field of view the outcome does not count: grey.
    fov = np.array([[True, True], [True, False]])
    np.testing.assert_array_equal(colorize(outcome_map(PREDICTION, REFERENCE, fov), OUTCOME_PALETTE)[1, 1], GREY)


def test_outcome_map_refuses_different_shapes() -> None:
    with pytest.raises(InputError, match="shapes differ"):
        outcome_map(PREDICTION, REFERENCE[:1])


def test_binary_panel_has_the_outcome_column(tmp_path: Path) -> None:
    fov = np.array([[True, True], [True, False]])
    row = PanelRow("drive_01", np.array([[10, 200], [90, 30]], dtype=np.uint8), REFERENCE, PREDICTION, fov)
    path = save_prediction_panels([row], ["background", "vessel"], tmp_path / "panels" / "drive_01.png", binary=True)
    rgb = _pixels(path)
    # 4 square panels of 3 inches at 150 dpi; each of the 2x2 pixels is drawn as a block of ~200 x 200.
    assert rgb.shape[1] == 4 * 3 * 150
    for colour in (VERMILLION, SKY_BLUE, GREY):
        assert _count(rgb, colour) > 10_000, colour
    assert [p.name for p in path.parent.iterdir()] == ["drive_01.png"]  # no temp file left


def test_multiclass_panel_uses_the_palette_and_has_no_outcome_column(tmp_path: Path) -> None:
    names = ["background", "retina", "fluid_pocket"]
    reference = np.array([[0, 1], [2, 2]], dtype=np.uint8)
    prediction = np.array([[0, 1], [1, 2]], dtype=np.uint8)
    image = np.linspace(0.0, 1.0, 2 * 2 * 3).reshape(2, 2, 3)  # RGB float: stretched for display
    path = save_prediction_panels([PanelRow("oct_01", image, reference, prediction)], names, tmp_path / "oct.png", binary=False)
    rgb = _pixels(path)
    assert rgb.shape[1] == 3 * 3 * 150
    for colour in palette_for(names)[1:]:
        assert _count(rgb, tuple(colour)) > 10_000, colour
    assert _count(rgb, VERMILLION) == 0 and _count(rgb, SKY_BLUE) == 0


def test_rows_stack_and_tall_images_keep_the_panel_size_bounded(tmp_path: Path) -> None:
    tall = PanelRow("bscan", np.zeros((40, 10)), np.zeros((40, 10), dtype=np.uint8), np.ones((40, 10), dtype=np.uint8))
    one = _pixels(save_prediction_panels([tall], ["background", "retina"], tmp_path / "one.png", binary=False))
    two = _pixels(save_prediction_panels([tall, tall], ["background", "retina"], tmp_path / "two.png", binary=False))
    # A 4:1 B-scan gets the narrowest panels, 1.5 inches wide and so 6 high (3 inches wide would make them 12).
    assert one.shape[1] == two.shape[1] == 3 * 1.5 * 150
    assert 6 * 150 < one.shape[0] < 7.5 * 150
    assert two.shape[0] > one.shape[0] + 6 * 150


def test_panel_file_names_are_safe() -> None:
    assert panel_file_name("Subject_01.b-03") == "Subject_01.b-03.png"
    assert panel_file_name("Subject 01/bscan:3") == "Subject_01_bscan_3.png"

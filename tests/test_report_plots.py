"""Palettes, colour overlays and report figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinaseg.conventions import DUKE_CLASS_NAMES
from retinaseg.errors import InputError
from retinaseg.report.palette import (
    BINARY_PALETTE,
    LAYER_PALETTE,
    colorize,
    legend_image,
    overlay,
    palette_for,
    to_rgb8,
)
from retinaseg.report.plots import (
    plot_confusion_matrix,
    plot_pr_curve,
    plot_prediction_panel,
    plot_training_curves,
)

PALETTE = np.array([[0, 0, 0], [200, 0, 100], [10, 20, 30]], dtype=np.uint8)


def _assert_png(path: Path) -> None:
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width > 100 and img.height > 100
        assert np.asarray(img.convert("L")).std() > 0  # not a blank page
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_layer_palette() -> None:
    assert LAYER_PALETTE.shape == (10, 3) and LAYER_PALETTE.dtype == np.uint8
    assert (LAYER_PALETTE[0] == 0).all()  # vitreous black
    assert len({tuple(c) for c in LAYER_PALETTE}) == 10
    np.testing.assert_array_equal(BINARY_PALETTE, [[0, 0, 0], [255, 255, 255]])


def test_palette_for() -> None:
    np.testing.assert_array_equal(palette_for(DUKE_CLASS_NAMES), LAYER_PALETTE)
    # a subset of Duke classes keeps the Duke colours
    np.testing.assert_array_equal(palette_for(["vitreous", "INL", "fluid"]), LAYER_PALETTE[[0, 3, 9]])
    np.testing.assert_array_equal(palette_for(["background", "vessel"]), BINARY_PALETTE)
    for n in (5, 15, 30):
        palette = palette_for([f"c{k}" for k in range(n)])
        assert palette.shape == (n, 3) and palette.dtype == np.uint8
        assert (palette[0] == 0).all()
        assert len({tuple(c) for c in palette}) == n


def test_colorize_exact() -> None:
    label = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    np.testing.assert_array_equal(colorize(label, PALETTE), [[[0, 0, 0], [200, 0, 100]], [[10, 20, 30], [200, 0, 100]]])
    assert colorize(label, LAYER_PALETTE).dtype == np.uint8
    with pytest.raises(InputError):
        colorize(np.array([[3]]), PALETTE)


def test_overlay_exact() -> None:
    image = np.array([[100, 200]], dtype=np.uint8)
    label = np.array([[0, 1]], dtype=np.uint8)
    out = overlay(image, label, PALETTE, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    # background untouched; foreground (1 - a) * 200 + a * (200, 0, 100)
    np.testing.assert_array_equal(out, [[[100, 100, 100], [200, 100, 150]]])
    out = overlay(image, label, PALETTE, alpha=0.5, skip_background=False)
    np.testing.assert_array_equal(out[0, 0], [50, 50, 50])
    with pytest.raises(InputError):
        overlay(image, label[:, :1], PALETTE)


def test_to_rgb8_scales_other_dtypes() -> None:
    grey16 = np.array([[0, 500, 1000]], dtype=np.uint16)
    np.testing.assert_array_equal(to_rgb8(grey16)[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(to_rgb8(np.full((2, 2), 0.3)), 0)
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(to_rgb8(rgb), rgb)


def test_legend_image() -> None:
    img = legend_image(DUKE_CLASS_NAMES, LAYER_PALETTE)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.std() > 0


def test_confusion_matrix_plot(tmp_path: Path) -> None:
    cm = np.array([[50, 3, 0], [4, 20, 1], [0, 0, 0]])  # empty last row
    for normalize in ("true", "pred", "all", None):
        path = tmp_path / f"cm_{normalize}.png"
        assert plot_confusion_matrix(cm, ["bg", "a", "b"], path, normalize=normalize) == path
        _assert_png(path)
    with pytest.raises(InputError):
        plot_confusion_matrix(cm, ["bg", "a"], tmp_path / "bad.png")
    with pytest.raises(InputError):
        plot_confusion_matrix(cm, ["bg", "a", "b"], tmp_path / "bad.png", normalize="rows")


def test_pr_curve_plot(tmp_path: Path) -> None:
    recall = np.linspace(1.0, 0.0, 50)
    precision = np.array([None] + list(0.3 + 0.7 * (1 - recall[1:] ** 3)), dtype=object)  # JSON-style None
    path = tmp_path / "sub" / "pr.png"
    plot_pr_curve(precision, recall, path, f1_points={"threshold 0.5": (0.7, 0.8)})
    _assert_png(path)


def test_training_curves_with_blank_cells(tmp_path: Path) -> None:
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(
        "epoch,step,train_loss,val_loss,val_dice,lr\n"
        "0,10,1.2,,,0.001\n"
        "0,10,,1.0,0.4,\n"
        "1,20,0.9,,,0.001\n"
        "1,20,,0.8,0.6,\n"
        "2,30,0.7,,,\n"
    )
    _assert_png(plot_training_curves(csv_path, tmp_path / "curves.png"))


@pytest.mark.parametrize(
    "content",
    ["", "step,lr\n1,0.1\n", "epoch,lr\n0,0.1\n", "\x00\x01garbage"],
)
def test_training_curves_bad_csv(tmp_path: Path, content: str) -> None:
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(content)
    with pytest.raises(InputError):
        plot_training_curves(csv_path, tmp_path / "curves.png")
    with pytest.raises(InputError):
        plot_training_curves(tmp_path / "missing.csv", tmp_path / "curves.png")


def test_prediction_panel(tmp_path: Path) -> None:
    image = np.linspace(0, 1, 64 * 80).reshape(64, 80)
    target = np.zeros((64, 80), dtype=np.uint8)
    target[20:30] = 1
    target[30:40] = 2
    pred = np.roll(target, 2, axis=0)
    names = ["bg", "a", "b"]
    _assert_png(plot_prediction_panel(image, pred, target, names, PALETTE, tmp_path / "p.png", title="x"))
    _assert_png(plot_prediction_panel(image, pred, None, names, PALETTE, tmp_path / "q.png"))

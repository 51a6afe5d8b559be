"""B-scans in the analysis report: pictures drawn into arrays, the slider viewer, and the whole report."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.conventions import DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES
from retinaseg.data.phantom import make_phantom_oct_volume
from retinaseg.errors import InputError
from retinaseg.inference.volume import network_images
from retinaseg.report.bscan_render import (
    bscan_pictures,
    class_palette,
    composite,
    display_rows,
    line_mask,
    reference_lines,
    stretch_and_note,
)
from retinaseg.report.bscan_viewer import Locator, bscan_viewer_html
from retinaseg.report.encoding import png_bytes
from retinaseg.report.html import PLOTLY_DATA_ID
from retinaseg.report.palette import LAYER_PALETTE, boundary_palette, overlay
from retinaseg.report.volume_report import write_volume_report

from conftest import measured_phantom

ORANGE = (230, 159, 0)  # RNFL, so the ILM line


def _rgba(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGBA"))


def _grey(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.format == "JPEG"
        return np.asarray(img)


def _bscan() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """40 x 64 B-scan: 8 flat layers 3 px thick from row 8 (labels 1..8, 9 = choroid below BM)."""
    height, width = 40, 64
    boundaries = np.repeat((8.0 + 3.0 * np.arange(8))[:, None], width, axis=1)
    rows = np.arange(height)[:, None, None]
    labels = (rows >= boundaries[None]).sum(axis=1).astype(np.uint8)
    image = np.where(labels > 0, 150, 20).astype(np.uint8)
    return image, labels, boundaries


# --- pictures --------------------------------------------------------------------------------


def test_display_rows_are_the_network_images() -> None:
    volume, _ = make_phantom_oct_volume(seed=1, n_bscans=3)
    reflectance = volume.reflectance.copy()
    reflectance[0, 20:30, 5:9] = np.nan  # invalid pixels
    volume = dataclasses.replace(volume, reflectance=reflectance)
    np.testing.assert_array_equal(display_rows(volume.reflectance[[0, 2], 10:90]), network_images(volume)[[0, 2], 10:90])


def test_line_mask_connects_columns_and_keeps_gaps() -> None:
    rows = np.array([1.0, 1.4, 5.0, np.nan, 2.0, np.nan, np.nan, -3.0, 9.6, 12.0])
    mask = line_mask(rows, 10)
    columns = [np.flatnonzero(mask[:, x]).tolist() for x in range(rows.size)]
    assert columns == [
        [1],  # half-way to 1.4 rounds to 1
        [1, 2, 3],  # from half-way back (1.2) to half-way to the next (3.2)
        [3, 4, 5],  # a gap follows: only the half-way back
        [],  # gap
        [2],  # alone between gaps
        [],
        [],
        [0, 1, 2, 3],  # above the picture, cut at its top
        [3, 4, 5, 6, 7, 8, 9],  # cut at its bottom
        [],  # below the picture
    ]


def test_stretch_and_note() -> None:
    # 40 rows x 4 um = 160 um deep, 64 A-scans x 10 um = 640 um wide: 1:4 is flatter than 1:3, so x2
    assert stretch_and_note(40, 64, 4.0, 10.0) == (2.0, "depth stretched ×2 for readability")
    assert stretch_and_note(40, 64, None, 10.0) == (None, "square pixels, scale unknown")


def test_pictures_blend_like_the_overlay_and_draw_lines_in_layer_colours() -> None:
    image, labels, boundaries = _bscan()
    boundaries[2, 20:30] = np.nan  # a gap in one line
    colours = boundary_palette(DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES, LAYER_PALETTE)
    np.testing.assert_array_equal(colours[0], ORANGE)  # ILM in the RNFL colour
    pictures = bscan_pictures(image, labels, boundaries, colours, palette=LAYER_PALETTE, reference_px=boundaries[[0, 7]] + 0.5)

    grey = _grey(pictures.image)
    assert grey.shape == image.shape and np.abs(grey.astype(int) - image).max() <= 12  # lossy, but close
    classes, lines, reference = _rgba(pictures.classes), _rgba(pictures.boundaries), _rgba(pictures.reference)
    # class colours: transparent class 0, the others 30 % opaque; blended by the browser as overlay() blends
    assert (classes[labels == 0, 3] == 0).all() and (classes[labels > 0, 3] == 76).all()  # round(0.3 * 255)
    np.testing.assert_allclose(composite([image, classes]), overlay(image, labels, LAYER_PALETTE, alpha=0.3), atol=1)
    # each boundary an opaque line in its colour, with a dark edge; the gap stays open
    np.testing.assert_array_equal(lines[8, 5], [*ORANGE, 255])  # ILM at row 8
    np.testing.assert_array_equal(lines[7, 5], [0, 0, 0, 200])  # its edge above
    assert lines[14, 25, 3] == 0 and lines[14, 5, 3] == 255  # boundary 2 (row 14) has a gap at A-scans 20-29
    np.testing.assert_array_equal(lines[29, 5, :3], LAYER_PALETTE[DUKE_CLASS_NAMES.index("choroid")])  # BM
    # reference: black and white dashes 3 A-scans long, half a pixel lower (rounded up)
    np.testing.assert_array_equal(reference[9, :6, :3], [[255] * 3] * 3 + [[0] * 3] * 3)
    assert reference[8, :, 3].max() == 0
    # all layers together: the ILM shows in the RNFL colour
    flat = composite([grey, classes, lines, reference])
    assert (np.abs(flat.astype(int) - ORANGE).sum(axis=2) < 10).any()


def test_pictures_without_labels_or_reference() -> None:
    image, _, boundaries = _bscan()
    colours = boundary_palette([f"b{k}" for k in range(8)], DUKE_CLASS_NAMES, LAYER_PALETTE)  # not Duke names
    assert len({tuple(c) for c in colours}) == 8
    pictures = bscan_pictures(image, None, boundaries, colours, palette=LAYER_PALETTE)
    assert pictures.classes is None and pictures.reference is None and _rgba(pictures.boundaries)[:, :, 3].max() == 255


def test_pictures_reject_bad_input() -> None:
    image, labels, boundaries = _bscan()
    colours = boundary_palette(DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES, LAYER_PALETTE)
    with pytest.raises(InputError, match="boundaries_px"):
        bscan_pictures(image, labels, boundaries[:, :10], colours, palette=LAYER_PALETTE)
    with pytest.raises(InputError, match="reference_px"):
        bscan_pictures(image, labels, boundaries, colours, palette=LAYER_PALETTE, reference_px=boundaries[:, :5])
    with pytest.raises(InputError, match="labels"):
        bscan_pictures(image, labels[:5], boundaries, colours, palette=LAYER_PALETTE)
    with pytest.raises(InputError, match="labels"):
        bscan_pictures(image, labels, boundaries, colours, palette=LAYER_PALETTE[:5])  # label 8 has no colour
    with pytest.raises(InputError, match="colours"):
        bscan_pictures(image, labels, boundaries, colours[:3], palette=LAYER_PALETTE)
    with pytest.raises(InputError, match="image_u8"):
        bscan_pictures(image.astype(np.float32), labels, boundaries, colours, palette=LAYER_PALETTE)


def test_palette_png_keeps_indices_and_opacity() -> None:
    index, palette = reference_lines(np.array([[1.0, 1.0, np.nan, 2.0]]), 4)
    rgba = _rgba(png_bytes(index, palette_rgba=palette))
    np.testing.assert_array_equal(rgba, palette[index])
    np.testing.assert_array_equal(class_palette(LAYER_PALETTE[:3], 0.5)[:, 3], [0, 128, 128])
    with pytest.raises(ValueError, match="outside"):
        png_bytes(np.array([[3]], dtype=np.uint8), palette_rgba=palette)


# --- viewer ----------------------------------------------------------------------------------


def _frames(n: int = 3) -> list:
    image, labels, boundaries = _bscan()
    colours = boundary_palette(DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES, LAYER_PALETTE)
    return [
        bscan_pictures(
            np.roll(image, k, axis=0),
            labels,
            boundaries,
            colours,
            palette=LAYER_PALETTE,
            reference_px=None if k == 1 else boundaries[:1],
        )
        for k in range(n)
    ]


def test_viewer_fragment() -> None:
    frames = _frames()
    lines = [np.array([[0.0, y], [6.0, y]]) for y in (1.0, 2.0, 3.0)]
    locator = Locator(view_mm=(0.0, 0.0, 6.0, 4.0), scan_lines_mm=lines, marker_xy_mm=(3.0, 2.0))
    fragment = bscan_viewer_html(
        "bv",
        frames,
        ["B-scan 1 of 3", "B-scan <2>", "B-scan 3 of 3"],
        display_ratio=3.2,
        start=1,
        classes=[("RNFL", LAYER_PALETTE[1])],
        boundaries=[("ILM", LAYER_PALETTE[1])],
        reference_label="device <x>",
        locator=locator,
    )
    data = json.loads(re.search(r'<script type="application/json" class="bv-frames">(.*?)</script>', fragment).group(1))
    assert len(data) == 3 and data[1][0] == "B-scan <2>" and data[1][4] is None  # frame 2 has no reference lines
    assert data[0][1] == "data:image/jpeg;base64," + base64.b64encode(frames[0].image).decode("ascii")
    # the first frame shown is frame `start`, in plain HTML, with its title escaped
    assert f'<img data-layer="image" src="{data[1][1]}"' in fragment
    assert '<img data-layer="reference" src="" alt="reference lines" style="' in fragment and " hidden>" in fragment
    assert "B-scan &lt;2&gt;" in fragment and "device &lt;x&gt;" in fragment and "<2>" not in fragment.split("<script")[0]
    assert 'type="range" min="0" max="2" step="1" value="1"' in fragment
    assert "aspect-ratio:3.2" in fragment
    # every B-scan's line on the fundus, the shown one highlighted
    assert fragment.count('class="bv-scan"') == 3 and 'class="bv-current" points="0,2 6,2"' in fragment
    assert 'viewBox="0 0 6 4"' in fragment
    for toggle in ("classes", "boundaries", "reference"):
        assert f'data-toggle="{toggle}"' in fragment


def test_viewer_rejects_bad_input() -> None:
    frames = _frames(2)
    with pytest.raises(InputError, match="frames"):
        bscan_viewer_html("bv", frames, ["one"], display_ratio=1.0)
    with pytest.raises(InputError, match="element_id"):
        bscan_viewer_html('bv" onclick="x', frames, ["a", "b"], display_ratio=1.0)
    with pytest.raises(InputError, match="start"):
        bscan_viewer_html("bv", frames, ["a", "b"], display_ratio=1.0, start=2)
    with pytest.raises(InputError, match="locator"):
        locator = Locator(view_mm=(0.0, 0.0, 1.0, 1.0), scan_lines_mm=[np.zeros((2, 2))])
        bscan_viewer_html("bv", frames, ["a", "b"], display_ratio=1.0, locator=locator)


# --- the report of an analysis ---------------------------------------------------------------


@pytest.fixture(scope="module")
def phantom_result():
    """A measured phantom (its true labels as the segmentation) with an SLO, and the truth as reference."""
    return measured_phantom(9)


def test_volume_report(phantom_result, tmp_path: Path) -> None:
    result = phantom_result
    page_path = write_volume_report(result, tmp_path)
    page = page_path.read_text(encoding="utf-8")
    # figures/: the maps, the 3D view and the difference map as PNGs; no B-scan files
    names = sorted(p.name for p in (tmp_path / "figures").iterdir())
    maps = [f"thickness_{k:02d}_" for k in range(len(result.raster.maps_um))]
    assert [n[:13] for n in names if n.startswith("thickness_0")] == maps
    assert {"surfaces_3d.png", "thickness_difference.png"} <= set(names) and len(names) == len(maps) + 2
    for name in names:
        with Image.open(tmp_path / "figures" / name) as img:
            assert img.format == "PNG" and img.width >= 600
    # one viewer with every B-scan, starting at the one through the fovea
    assert page.count('class="bscan-viewer"') == 1
    frames = json.loads(re.search(r'class="bv-frames">(.*?)</script>', page).group(1))
    n = result.volume.shape[0]
    assert [frame[0] for frame in frames] == [f"B-scan {k + 1} of {n}" for k in range(n)]
    fovea_y = result.raster.fovea_xy_mm[1]
    nearest = int(np.argmin(np.abs(result.volume.ascan_positions_mm()[:, 0, 1] - fovea_y)))
    assert f'data-current="{nearest}"' in page
    assert all(frame[4] is not None for frame in frames)  # the reference lines
    assert page.count('class="bv-scan"') == n and '<image href="data:image/jpeg;base64,' in page  # SLO in the locator
    # the maps are embedded as JPEG, under the names of their PNG files
    for name in names:
        assert f"<figcaption>{name}</figcaption>" in page
    assert page.count("data:image/jpeg;base64,") >= len(maps) + 1 + n
    # plotly.js once (compressed), for the 3D view
    assert page.count(f'id="{PLOTLY_DATA_ID}"') == 1 and page.count("Plotly.newPlot(") == 1
    # the legend names the classes of the B-scans and every boundary
    for name in (*DUKE_BOUNDARY_NAMES, "RNFL", "fluid", "truth segmentation"):
        assert f"</span> {name}</span>" in page, name


def test_volume_report_without_slo_or_reference(phantom_result, tmp_path: Path) -> None:
    # the locator falls back to the total thickness map; no reference layer
    volume = dataclasses.replace(phantom_result.volume, slo=None, slo_scale_xy_mm=None)
    result = dataclasses.replace(phantom_result, volume=volume, reference=None)
    page = write_volume_report(result, tmp_path).read_text(encoding="utf-8")
    assert '<image href="data:image/png;base64,' in page
    assert 'data-toggle="reference"' not in page and 'data-layer="reference"' not in page
    assert "total retinal thickness map" in page and TOTAL_RETINA in page

"""The HTML report in a real browser: headless Chromium renders it without console messages.

Chromium started with ``--enable-logging=stderr`` writes every message of the
page's console to stderr as ``[...:INFO:CONSOLE:<line>] "<message>", source:
<url> (<line>)``; the level (log, warning, error) is not shown, so any console
message counts, except the notices the browser itself gives about software
WebGL on a machine without GPU. A report has no reason to log anything.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from retinaseg.conventions import DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES
from retinaseg.report.bscan_render import bscan_pictures
from retinaseg.report.bscan_viewer import Locator, bscan_viewer_html
from retinaseg.report.html import ReportSection, render_report
from retinaseg.report.palette import LAYER_PALETTE, boundary_palette
from retinaseg.report.surface_figures import surface_figure_html
from retinaseg.report.volume_report import write_volume_report

from conftest import measured_phantom, needs_chromium, open_in_chromium, page_messages

pytestmark = needs_chromium

# Test-only fragment: after loading, write the pixel width of every <img> into the DOM,
# so the dumped DOM shows whether the embedded images decoded.
_IMAGE_PROBE = (
    '<script>window.addEventListener("load", function () { document.body.dataset.imageWidths = '
    'Array.from(document.images).map(function (img) { return img.naturalWidth; }).join(","); });</script>'
)


def test_console_messages_are_detected(tmp_path: Path) -> None:
    # a deliberately faulty fragment: an error message, an uncaught exception, an external image
    faulty = (
        '<script>console.error("deliberate error 7f3a"); '
        'setTimeout(function () { throw new Error("deliberate exception 7f3a"); }, 0);</script>'
        '<img src="https://example.invalid/tracker.png" alt="">'
    )
    page = render_report(
        tmp_path / "faulty.html", title="faulty", metadata={}, sections=[ReportSection("faulty", html_fragments=[faulty])]
    )
    _, messages = open_in_chromium(page, tmp_path / "profile")
    found = page_messages(messages)
    assert any("deliberate error 7f3a" in m for m in found), messages
    assert any("Uncaught Error: deliberate exception 7f3a" in m for m in found), messages
    # the page's Content-Security-Policy blocks the external image (no request is made)
    assert any("example.invalid" in m and "Content Security Policy" in m for m in found), messages


def test_report_renders_3d_plot_and_image(tmp_path: Path) -> None:
    image = tmp_path / "figure.png"
    Image.fromarray((np.arange(48 * 64) % 256).reshape(48, 64).astype(np.uint8)).save(image)
    x = np.linspace(0.0, 6.0, 25)
    y = np.linspace(0.0, 6.0, 25)
    ilm = 0.25 + 0.05 * np.exp(-((x[None, :] - 3) ** 2 + (y[:, None] - 3) ** 2))
    bm = np.full_like(ilm, 0.55)
    bm[:3, :3] = np.nan
    fragment = surface_figure_html({"ILM": ilm, "BM": bm}, x, y, colour_by_um=(bm - ilm) * 1000, title="surfaces")
    page = render_report(
        tmp_path / "report.html",
        title="browser check",
        metadata={"file": "synthetic"},
        sections=[ReportSection("figure", images=[image]), ReportSection("3D", html_fragments=[fragment, _IMAGE_PROBE])],
    )
    dom, messages = open_in_chromium(page, tmp_path / "profile")
    assert page_messages(messages) == []
    # plotly drew the graph: its container, SVG layers and the WebGL canvas of the 3D scene
    assert 'class="plot-container plotly"' in dom
    assert 'class="main-svg"' in dom
    assert 'class="gl-container"' in dom
    assert 'data-image-widths="64"' in dom  # the embedded PNG decoded at its 64 px width


# Test-only probe: drive the B-scan viewer as a user would (slider, button, click on the fundus,
# arrow key, tick box) and write what it showed after each step into the DOM.
_VIEWER_PROBE = """<script>window.addEventListener("load", function () {
  var root = document.getElementById("bv");
  var frames = JSON.parse(root.querySelector(".bv-frames").textContent);
  var image = root.querySelector("img[data-layer=image]");
  var reference = root.querySelector("img[data-layer=reference]");
  var seen = [];
  function note() {
    var i = Number(root.dataset.current);
    seen.push([i, image.src === frames[i][1], reference.hidden, root.querySelector(".bv-current").getAttribute("points")].join(":"));
  }
  var slider = root.querySelector("input[type=range]");
  slider.value = "2";
  slider.dispatchEvent(new Event("input"));
  note();
  root.querySelector("button[data-step='-1']").click();
  note();
  var svg = root.querySelector(".bv-locator");
  var p = new DOMPoint(3.0, 1.1).matrixTransform(svg.getScreenCTM());
  svg.dispatchEvent(new MouseEvent("click", {clientX: p.x, clientY: p.y, bubbles: true}));
  note();
  root.querySelector("button[data-step='1']").dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowRight", bubbles: true}));
  note();
  root.querySelector("input[data-toggle=boundaries]").click();
  seen.push(root.querySelector("img[data-layer=boundaries]").style.visibility);
  document.body.dataset.viewer = seen.join("|");
});</script>"""


def test_bscan_viewer_slider_locator_and_toggles(tmp_path: Path) -> None:
    height, width = 40, 64
    boundaries = np.repeat((8.0 + 3.0 * np.arange(8))[:, None], width, axis=1)
    labels = (np.arange(height)[:, None, None] >= boundaries[None]).sum(axis=1).astype(np.uint8)
    colours = boundary_palette(DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES, LAYER_PALETTE)
    frames = [
        bscan_pictures(
            np.full((height, width), 40 * (k + 1), dtype=np.uint8),
            labels,
            boundaries,
            colours,
            palette=LAYER_PALETTE,
            reference_px=None if k == 1 else boundaries[:1] + 1,
        )
        for k in range(3)
    ]
    lines = [np.array([[0.0, y], [6.0, y]]) for y in (1.0, 2.0, 3.0)]
    viewer = bscan_viewer_html(
        "bv",
        frames,
        [f"B-scan {k + 1} of 3" for k in range(3)],
        display_ratio=3.0,
        boundaries=list(zip(DUKE_BOUNDARY_NAMES, colours)),
        locator=Locator(view_mm=(0.0, 0.0, 6.0, 4.0), scan_lines_mm=lines, marker_xy_mm=(3.0, 2.0)),
    )
    page = render_report(
        tmp_path / "viewer.html",
        title="viewer",
        metadata={},
        sections=[ReportSection("B-scans", html_fragments=[viewer, _VIEWER_PROBE])],
    )
    dom, messages = open_in_chromium(page, tmp_path / "profile")
    assert page_messages(messages) == []
    steps = re.search(r'data-viewer="([^"]*)"', dom).group(1).split("|")
    # slider to the 3rd B-scan; back one (it has no reference lines); click near the 1st line; right arrow; lines off
    assert steps == ["2:true:false:0,3 6,3", "1:true:true:0,2 6,2", "0:true:false:0,1 6,1", "1:true:true:0,2 6,2", "hidden"]


def test_analysis_report_with_slo_renders(tmp_path: Path) -> None:
    # the whole report of a measured phantom (its true labels as the segmentation, an SLO, the truth as reference)
    result = measured_phantom(5)
    dom, messages = open_in_chromium(write_volume_report(result, tmp_path / "analysis"), tmp_path / "profile")
    assert page_messages(messages) == []
    assert 'class="gl-container"' in dom  # the 3D view drew (plotly.js unpacked)
    assert dom.count("<img ") == 4 + 10  # the viewer's 4 layers; 8 maps, the 3D view and the difference map

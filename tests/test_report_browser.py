"""The HTML report in a real browser: headless Chromium renders it without console messages.

Chromium started with ``--enable-logging=stderr`` writes every message of the
page's console to stderr as ``[...:INFO:CONSOLE:<line>] "<message>", source:
<url> (<line>)``; the level (log, warning, error) is not shown, so any console
message counts, except the notices the browser itself gives about software
WebGL on a machine without GPU. A report has no reason to log anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from retinaseg.report.html import ReportSection, render_report
from retinaseg.report.surface_figures import surface_figure_html

from conftest import needs_chromium, open_in_chromium, page_messages

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

"""The HTML report in a real browser: headless Chromium renders it without console messages.

Chromium started with ``--enable-logging=stderr`` writes every message of the
page's console to stderr as ``[...:INFO:CONSOLE:<line>] "<message>", source:
<url> (<line>)``; the level (log, warning, error) is not shown, so any console
message counts, except the notices the browser itself gives about software
WebGL on a machine without GPU. A report has no reason to log anything.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinaseg.report.html import ReportSection, render_report
from retinaseg.report.volume_figures import surface_figure_html

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="headless Chromium not installed (/usr/bin/chromium, Debian package 'chromium')"
)

#: Seconds one Chromium run may take (a report with a 3D plot takes ~5-10 s on 2 busy cores).
CHROMIUM_TIMEOUT_S = 20

# Console notices from Chromium itself when WebGL runs in software (SwiftShader), not from the page.
_BROWSER_NOTICES = (
    "GPU stall due to ReadPixels",
    "Automatic fallback to software WebGL",
    "Canvas2D: Multiple readback operations using getImageData",
)

_CONSOLE_LINE = re.compile(r':CONSOLE[(:]\d+\)?\] "(?P<message>.*)", source: ')

# Test-only fragment: after loading, write the pixel width of every <img> into the DOM,
# so the dumped DOM shows whether the embedded images decoded.
_IMAGE_PROBE = (
    '<script>window.addEventListener("load", function () { document.body.dataset.imageWidths = '
    'Array.from(document.images).map(function (img) { return img.naturalWidth; }).join(","); });</script>'
)


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` after it has run, and the page's console messages."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
        "--dump-dom", page.as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish {page.name} in {CHROMIUM_TIMEOUT_S} s")
    assert done.returncode == 0, done.stderr[-2000:]
    messages = [m.group("message") for m in map(_CONSOLE_LINE.search, done.stderr.splitlines()) if m]
    return done.stdout, messages


def page_messages(messages: list[str]) -> list[str]:
    return [m for m in messages if not any(notice in m for notice in _BROWSER_NOTICES)]


def test_console_messages_are_detected(tmp_path: Path) -> None:
    # a deliberately faulty fragment: an error message, an uncaught exception, an external image
    faulty = (
        '<script>console.error("deliberate error 7f3a"); '
        'setTimeout(function () { throw new Error("deliberate exception 7f3a"); }, 0);</script>'
        '<img src="https://example.invalid/tracker.png" alt="">'
    )
    page = render_report(tmp_path / "faulty.html", title="faulty", metadata={},
                         sections=[ReportSection("faulty", html_fragments=[faulty])])
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
        tmp_path / "report.html", title="browser check", metadata={"file": "synthetic"},
        sections=[ReportSection("figure", images=[image]),
                  ReportSection("3D", html_fragments=[fragment, _IMAGE_PROBE])],
    )
    dom, messages = open_in_chromium(page, tmp_path / "profile")
    assert page_messages(messages) == []
    # plotly drew the graph: its container, SVG layers and the WebGL canvas of the 3D scene
    assert 'class="plot-container plotly"' in dom
    assert 'class="main-svg"' in dom
    assert 'class="gl-container"' in dom
    assert 'data-image-widths="64"' in dom  # the embedded PNG decoded at its 64 px width

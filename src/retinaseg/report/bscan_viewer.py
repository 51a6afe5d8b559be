"""A B-scan viewer for the HTML report: one B-scan at a time, chosen with a slider.

The viewer is an HTML fragment for :class:`retinaseg.report.html.ReportSection`:

- the B-scan as a stack of pictures (grey JPEG, class colours, boundary lines,
  reference lines; :mod:`retinaseg.report.bscan_render`) the browser lays
  over each other, stretched to the B-scan's display aspect;
- a slider with previous / next buttons (and the arrow keys) through all
  B-scans, and the B-scan's title;
- tick boxes that hide the class colours, the boundaries or the reference
  lines, each with its legend (colour squares, line samples);
- a locator: the fundus (SLO image, or a thickness map) with every B-scan's
  line on it, the shown one highlighted; a click on the fundus shows the
  B-scan nearest to it.

The pictures of every B-scan are embedded once, as ``data:`` URIs in a JSON
block; a few lines of inline JavaScript swap them. Nothing is loaded from
outside the page, and without JavaScript the first B-scan shown stays visible.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retinaseg.errors import InputError
from retinaseg.report.bscan_render import BscanPictures
from retinaseg.report.encoding import data_uri

#: Width of the locator in CSS pixels.
LOCATOR_WIDTH_PX = 260

_LAYER_STYLE = "position:absolute;left:0;top:0;width:100%;height:100%"


@dataclass(frozen=True)
class Locator:
    """The fundus beside the viewer, with the line of every B-scan on it.

    Positions are in mm in the SLO frame (x to the right, y down), which is
    also the SVG user space of the picture.

    Attributes
    ----------
    view_mm
        ``(x, y, width, height)`` of the area shown.
    scan_lines_mm
        One ``(P, 2)`` array of ``(x, y)`` points per B-scan of the viewer,
        in the viewer's order (2 points for a straight B-scan).
    background
        ``(picture, mime, (x, y, width, height))``: a PNG or JPEG stretched
        over that rectangle; ``None``: a plain grey area.
    marker_xy_mm
        A point marked with a red cross (the fovea), or ``None``.
    """

    view_mm: tuple[float, float, float, float]
    scan_lines_mm: Sequence[np.ndarray]
    background: tuple[bytes, str, tuple[float, float, float, float]] | None = None
    marker_xy_mm: tuple[float, float] | None = None


def _rgb(colour: Sequence[int] | np.ndarray) -> str:
    r, g, b = (int(c) for c in colour)
    return f"rgb({r},{g},{b})"


def _points(line: np.ndarray) -> str:
    return " ".join(f"{x:.4g},{y:.4g}" for x, y in np.asarray(line, dtype=np.float64).reshape(-1, 2))


def _legend(toggle: str, label: str, entries: Sequence[str], *, checked: bool = True) -> str:
    box = f'<input type="checkbox" data-toggle="{toggle}"{" checked" if checked else ""}>'
    items = "".join(f'<span style="margin-right:0.9em;white-space:nowrap">{entry}</span>' for entry in entries)
    return f'<div style="margin:0.25em 0"><label style="margin-right:1em;font-weight:600">{box} {html.escape(label)}</label>{items}</div>'


def _square(name: str, colour: Sequence[int] | np.ndarray) -> str:
    swatch = (
        f'<span style="display:inline-block;width:0.9em;height:0.9em;vertical-align:-0.1em;'
        f'background:{_rgb(colour)};border:1px solid #666"></span>'
    )
    return f"{swatch} {html.escape(name)}"


def _line_sample(name: str, colour: Sequence[int] | np.ndarray) -> str:
    sample = (
        f'<span style="display:inline-block;width:1.6em;height:3px;vertical-align:0.25em;'
        f'background:{_rgb(colour)};outline:1px solid #000"></span>'
    )
    return f"{sample} {html.escape(name)}"


def _dashed_sample(name: str) -> str:
    sample = (
        '<span style="display:inline-block;width:1.6em;height:3px;vertical-align:0.25em;'
        'background:repeating-linear-gradient(90deg,#fff 0 4px,#000 4px 8px);outline:1px solid #000"></span>'
    )
    return f"{sample} {html.escape(name)}"


def _locator_svg(locator: Locator, start: int) -> str:
    x0, y0, width, height = locator.view_mm
    if not (width > 0 and height > 0):
        raise InputError("view_mm", f"needs a positive width and height, got {locator.view_mm}")
    height_px = max(1, round(LOCATOR_WIDTH_PX * height / width))
    svg = (
        f'<svg class="bv-locator" viewBox="{x0:.4g} {y0:.4g} {width:.4g} {height:.4g}" width="{LOCATOR_WIDTH_PX}" '
        f'height="{height_px}" style="flex:0 0 auto;max-width:100%;height:auto;cursor:crosshair;border:1px solid #e0e0e0" '
        'role="img" aria-label="position of the B-scan on the fundus">'
    )
    parts = [svg, f'<rect x="{x0:.4g}" y="{y0:.4g}" width="{width:.4g}" height="{height:.4g}" fill="#ececec"/>']
    if locator.background is not None:
        picture, mime, (bx, by, bw, bh) = locator.background
        parts.append(
            f'<image href="{data_uri(picture, mime)}" x="{bx:.4g}" y="{by:.4g}" width="{bw:.4g}" height="{bh:.4g}" '
            'preserveAspectRatio="none"/>'
        )
    line_style = 'fill="none" vector-effect="non-scaling-stroke"'
    parts.append('<g stroke="#fff" stroke-opacity="0.55" stroke-width="1">')
    parts += [f'<polyline class="bv-scan" points="{_points(line)}" {line_style}/>' for line in locator.scan_lines_mm]
    parts.append("</g>")
    current = _points(locator.scan_lines_mm[start])
    parts.append(f'<polyline class="bv-current" points="{current}" stroke="#000" stroke-width="4.5" {line_style}/>')
    parts.append(f'<polyline class="bv-current" points="{current}" stroke="#ffd400" stroke-width="2.5" {line_style}/>')
    if locator.marker_xy_mm is not None:
        mx, my = locator.marker_xy_mm
        arm = 0.025 * max(width, height)
        parts.append(
            f'<path d="M{mx - arm:.4g} {my:.4g}H{mx + arm:.4g}M{mx:.4g} {my - arm:.4g}V{my + arm:.4g}" '
            'stroke="#ff3030" stroke-width="2" fill="none" vector-effect="non-scaling-stroke"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


# Inline script of one viewer; __ID__ is replaced by the viewer's element id.
_SCRIPT = """(function () {
  var root = document.getElementById("__ID__");
  var frames = JSON.parse(root.querySelector(".bv-frames").textContent);
  var slider = root.querySelector("input[type=range]");
  var title = root.querySelector(".bv-title");
  var layers = {};
  root.querySelectorAll("img[data-layer]").forEach(function (img) { layers[img.dataset.layer] = img; });
  var order = ["image", "classes", "boundaries", "reference"];
  var svg = root.querySelector(".bv-locator");
  var scans = svg ? Array.prototype.slice.call(svg.querySelectorAll(".bv-scan")) : [];
  var current = svg ? svg.querySelectorAll(".bv-current") : [];
  function show(index) {
    var i = Math.max(0, Math.min(frames.length - 1, index));
    var frame = frames[i];
    slider.value = String(i);
    title.textContent = frame[0];
    order.forEach(function (name, k) {
      var img = layers[name];
      if (!img) { return; }
      if (frame[k + 1]) { img.src = frame[k + 1]; img.hidden = false; } else { img.hidden = true; }
    });
    if (scans[i]) {
      var points = scans[i].getAttribute("points");
      current.forEach(function (line) { line.setAttribute("points", points); });
    }
    root.dataset.current = String(i);
  }
  slider.addEventListener("input", function () { show(Number(slider.value)); });
  root.querySelectorAll("button[data-step]").forEach(function (button) {
    button.addEventListener("click", function () { show(Number(slider.value) + Number(button.dataset.step)); });
  });
  root.addEventListener("keydown", function (event) {
    if (event.target === slider || (event.key !== "ArrowLeft" && event.key !== "ArrowRight")) { return; }
    show(Number(slider.value) + (event.key === "ArrowLeft" ? -1 : 1));
    event.preventDefault();
  });
  root.querySelectorAll("input[data-toggle]").forEach(function (box) {
    box.addEventListener("change", function () {
      var img = layers[box.dataset.toggle];
      if (img) { img.style.visibility = box.checked ? "" : "hidden"; }
    });
  });
  if (svg) {
    svg.addEventListener("click", function (event) {
      var matrix = svg.getScreenCTM();
      if (!matrix) { return; }
      var p = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
      var best = -1, bestDistance = Infinity;
      scans.forEach(function (line, i) {
        var points = line.points, n = points.numberOfItems;
        for (var k = 0; k < n; k++) {
          var a = points.getItem(k), b = points.getItem(Math.min(k + 1, n - 1));
          var dx = b.x - a.x, dy = b.y - a.y, length = dx * dx + dy * dy;
          var t = length > 0 ? Math.max(0, Math.min(1, ((p.x - a.x) * dx + (p.y - a.y) * dy) / length)) : 0;
          var ex = a.x + t * dx - p.x, ey = a.y + t * dy - p.y, distance = ex * ex + ey * ey;
          if (distance < bestDistance) { bestDistance = distance; best = i; }
        }
      });
      if (best >= 0) { show(best); }
    });
  }
})();"""


def bscan_viewer_html(
    element_id: str,
    frames: Sequence[BscanPictures],
    titles: Sequence[str],
    *,
    display_ratio: float,
    start: int = 0,
    classes: Sequence[tuple[str, np.ndarray]] = (),
    boundaries: Sequence[tuple[str, np.ndarray]] = (),
    reference_label: str = "reference",
    locator: Locator | None = None,
) -> str:
    """The viewer as an HTML fragment.

    Parameters
    ----------
    element_id
        ``id`` of the viewer's element, unique in the page (letters, digits,
        ``-`` and ``_``).
    frames
        The pictures of each B-scan, in slider order. Frames without class
        colours or reference lines hide that layer.
    titles
        Title of each frame, e.g. ``"B-scan 12 of 61"``.
    display_ratio
        Width / height at which the B-scans are shown (their physical aspect,
        with depth stretched as wanted).
    start
        Frame shown first.
    classes
        ``(name, (3,) uint8 colour)`` of the classes in the legend of the
        class colours.
    boundaries
        ``(name, colour)`` of each boundary line, for its legend.
    reference_label
        Legend of the reference lines (when a frame has them).
    locator
        The fundus with the B-scan lines (one line per frame), or ``None``.

    Returns
    -------
    str
        A ``<div>`` with the viewer, its data and its script.
    """
    if not frames or len(titles) != len(frames):
        raise InputError("frames", f"need at least one frame and one title per frame, got {len(frames)} and {len(titles)}")
    if not element_id.replace("-", "").replace("_", "").isalnum():
        raise InputError("element_id", f"must be letters, digits, '-' or '_', got {element_id!r}")
    if not 0 <= start < len(frames):
        raise InputError("start", f"must index one of the {len(frames)} frames, got {start}")
    if locator is not None and len(locator.scan_lines_mm) != len(frames):
        raise InputError("locator", f"needs one scan line per frame ({len(frames)}), got {len(locator.scan_lines_mm)}")
    if not display_ratio > 0:
        raise InputError("display_ratio", f"must be > 0, got {display_ratio}")

    def uri(picture: bytes | None, mime: str) -> str | None:
        return None if picture is None else data_uri(picture, mime)

    data = [
        [
            title,
            uri(frame.image, "image/jpeg"),
            uri(frame.classes, "image/png"),
            uri(frame.boundaries, "image/png"),
            uri(frame.reference, "image/png"),
        ]
        for frame, title in zip(frames, titles)
    ]
    has_classes = any(frame.classes is not None for frame in frames)
    has_reference = any(frame.reference is not None for frame in frames)
    first = data[start]
    layers = [("image", first[1], "B-scan")]
    if has_classes:
        layers.append(("classes", first[2], "class colours"))
    layers.append(("boundaries", first[3], "boundaries"))
    if has_reference:
        layers.append(("reference", first[4], "reference lines"))
    images = "".join(
        f'<img data-layer="{name}" src="{src or ""}" alt="{alt}" style="{_LAYER_STYLE}"{"" if src else " hidden"}>'
        for name, src, alt in layers
    )

    controls = (
        '<div style="display:flex;align-items:center;gap:0.5em;margin-bottom:0.4em">'
        '<button type="button" data-step="-1" title="previous B-scan (left arrow)">&#9664;</button>'
        f'<input type="range" min="0" max="{len(frames) - 1}" step="1" value="{start}" aria-label="B-scan" style="flex:1">'
        '<button type="button" data-step="1" title="next B-scan (right arrow)">&#9654;</button>'
        f'<output class="bv-title" style="min-width:10em">{html.escape(titles[start])}</output>'
        "</div>"
    )
    stack = f'<div style="position:relative;width:100%;aspect-ratio:{display_ratio:.5g};background:#000">{images}</div>'
    legends = []
    if has_classes:
        legends.append(_legend("classes", "class colours", [_square(name, colour) for name, colour in classes]))
    legends.append(_legend("boundaries", "boundaries", [_line_sample(name, colour) for name, colour in boundaries]))
    if has_reference:
        legends.append(_legend("reference", "reference", [_dashed_sample(reference_label)]))
    left = (
        f'<div style="flex:1 1 560px;min-width:0">{controls}{stack}<div style="font-size:0.85em">{"".join(legends)}</div></div>'
    )
    right = "" if locator is None else _locator_svg(locator, start)
    frames_json = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    script = _SCRIPT.replace("__ID__", element_id)
    return (
        f'<div class="bscan-viewer" id="{element_id}" data-current="{start}">'
        f'<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">{left}{right}</div>'
        f'<script type="application/json" class="bv-frames">{frames_json}</script>'
        f"<script>{script}</script>"
        "</div>"
    )

"""A self-contained HTML report: one file that opens anywhere, offline.

Images are embedded as base64 ``data:`` URIs and plotly.js (when an
interactive figure needs it) is embedded inline once, so the file can be
mailed or archived alone and never contacts a server. A
Content-Security-Policy in the page forbids any network access, so a
stray external reference fails visibly instead of leaking a request.

plotly.js is its gl3d partial bundle (:data:`PLOTLY_BUNDLE`: everything the
3D surfaces need, 1.75 MB against 4.8 MB for the full library; see
``vendor/README.md``), embedded deflate-compressed (0.56 MB, 0.7 MB as
base64) and unpacked by the browser's ``DecompressionStream`` (Chrome/Edge 80,
Firefox 113, Safari 16.4 and later) when the page opens. Until then a
stand-in ``Plotly.newPlot`` queues the figures, which are drawn as soon as
the library runs; a browser without ``DecompressionStream`` shows a note in
place of each interactive figure.
"""

from __future__ import annotations

import base64
import functools
import html
import math
import numbers
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import retinaseg
from retinaseg.errors import InputError
from retinaseg.io.atomic import write_text_atomic

_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

# Everything the page needs is inline. No 'unsafe-eval': plotly.js (>= 3)
# ships precompiled WebGL code and runs without eval / Function().
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; font-src data:"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #222; background: #fff; max-width: 1100px; margin: 0 auto; padding: 1.5em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.4em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.meta th { width: 14em; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: 0.3em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
figcaption { font-size: 0.85em; color: #555; }
nav ol { padding-left: 1.4em; }
button { font: inherit; }
.plot { margin: 1em 0; border: 1px solid #e0e0e0; }
footer { margin-top: 3em; font-size: 0.8em; color: #777; border-top: 1px solid #ddd; padding-top: 0.5em; }
"""


@dataclass(frozen=True)
class Table:
    """A table of values for a report section.

    Attributes
    ----------
    columns
        Column headings.
    rows
        One sequence of cells per row, each as long as ``columns``. Numbers
        are formatted by :func:`format_value` and right-aligned; ``None``
        and NaN show as "–"; anything else is shown as ``str(cell)``.
    caption
        Title shown above the table.
    """

    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    caption: str = ""

    def __post_init__(self) -> None:
        for k, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise InputError(
                    f"table {self.caption or 'rows'}", f"row {k} has {len(row)} cells for {len(self.columns)} columns"
                )


@dataclass(frozen=True)
class EmbeddedImage:
    """A picture held in memory, to embed in the page.

    Attributes
    ----------
    data
        The encoded picture.
    mime
        ``"image/png"`` or ``"image/jpeg"``.
    caption
        Shown below the picture (e.g. the name of the PNG written beside the
        report, when the page embeds a smaller JPEG of it).
    """

    data: bytes
    mime: str
    caption: str = ""

    def __post_init__(self) -> None:
        if self.mime not in _IMAGE_TYPES.values():
            raise InputError("mime", f"report images must be PNG or JPEG, got {self.mime!r}")


@dataclass(frozen=True)
class ReportSection:
    """One titled part of a report, drawn in this order: text, images, tables, fragments.

    Attributes
    ----------
    title
        Section heading.
    text
        Plain text (escaped); blank lines separate paragraphs.
    images
        PNG or JPEG files, embedded in the page (the file name is the
        caption), or :class:`EmbeddedImage` pictures.
    tables
        :class:`Table` objects.
    html_fragments
        HTML inserted verbatim (not escaped), e.g. from
        :func:`retinaseg.report.surface_figures.surface_figure_html`. Only
        pass HTML built by the program. plotly.js is embedded in the page
        when a fragment calls ``Plotly.newPlot``.
    """

    title: str
    text: str = ""
    images: Sequence[str | os.PathLike[str] | EmbeddedImage] = ()
    tables: Sequence[Table] = ()
    html_fragments: Sequence[str] = ()


def format_value(value: object) -> str:
    """Text of one table cell or metadata value.

    Parameters
    ----------
    value
        Any value.

    Returns
    -------
    str
        ``None``, NaN -> "–"; ±inf -> "∞" / "-∞"; ``bool`` -> "yes"/"no";
        integers as they are; other real numbers with 3 significant digits
        up to 1000 (1 decimal from 100, 2 from 1, 3 below 1, scientific
        below 0.001 and from 10^6) and whole units from 1000; anything else
        ``str(value)``. Not escaped.
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return "–"
        if math.isinf(number):
            return "∞" if number > 0 else "-∞"
        magnitude = abs(number)
        if magnitude == 0:
            return "0"
        if magnitude < 1e-3 or magnitude >= 1e6:
            return f"{number:.3g}"
        if magnitude >= 1000:
            return f"{number:.0f}"
        if magnitude >= 100:
            return f"{number:.1f}"
        if magnitude >= 1:
            return f"{number:.2f}"
        return f"{number:.3f}"
    return str(value)


def _cell(value: object, tag: str = "td") -> str:
    numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
    css = ' class="num"' if numeric and tag == "td" else ""
    return f"<{tag}{css}>{html.escape(format_value(value))}</{tag}>"


def _table_html(table: Table) -> str:
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    head = "".join(_cell(c, "th") for c in table.columns)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _figure_html(data: bytes, mime: str, caption: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    name = html.escape(caption)
    return f'<figure><img src="data:{mime};base64,{encoded}" alt="{name}"><figcaption>{name}</figcaption></figure>'


def _image_html(image: str | os.PathLike[str] | EmbeddedImage) -> str:
    if isinstance(image, EmbeddedImage):
        return _figure_html(image.data, image.mime, image.caption)
    image_path = Path(image)
    mime = _IMAGE_TYPES.get(image_path.suffix.lower())
    if mime is None:
        raise InputError(image_path, f"report images must be PNG or JPEG, got {image_path.suffix or 'no suffix'!r}")
    try:
        data = image_path.read_bytes()
    except OSError as exc:
        raise InputError(image_path, f"cannot read report image ({exc.strerror or exc})") from exc
    return _figure_html(data, mime, image_path.name)


def _text_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def _section_html(index: int, section: ReportSection) -> str:
    parts = [f'<section id="section-{index}">', f"<h2>{html.escape(section.title)}</h2>", _text_html(section.text)]
    parts += [_image_html(p) for p in section.images]
    parts += [_table_html(t) for t in section.tables]
    parts += [f'<div class="plot">{fragment}</div>' for fragment in section.html_fragments]
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _inline_script(code: str) -> str:
    # "</script" inside the code would end the element early; "<\/" means the same in JavaScript
    return "<script>" + code.replace("</script", "<\\/script") + "</script>"


#: ``id`` of the element holding the compressed plotly.js.
PLOTLY_DATA_ID = "retinaseg-plotly-deflated"

# Runs in <head>, after the data element. Plotly.newPlot calls made while the page loads go to
# a stand-in that queues them; they are replayed once the real library has run (its UMD wrapper
# replaces window.Plotly) and the page is parsed. A script element inserted with its code runs
# at once like any inline script: the policy's 'unsafe-inline' allows it, no eval is involved.
_PLOTLY_LOADER = """(function () {
  var queue = [];
  window.Plotly = {newPlot: function () { queue.push(arguments); return Promise.resolve(); }};
  function parsed() {
    return new Promise(function (resolve) {
      if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", resolve); } else { resolve(); }
    });
  }
  function unavailable(reason) {
    parsed().then(function () {
      queue.forEach(function (args) {
        var div = document.getElementById(args[0]);
        if (div) { div.textContent = "The interactive view is not available (" + reason + "); the picture above shows the same."; }
      });
    });
  }
  if (typeof DecompressionStream !== "function") {
    unavailable("this browser cannot unpack it; Chrome/Edge 80, Firefox 113, Safari 16.4 or later can");
    return;
  }
  var text = document.getElementById("__DATA_ID__").textContent.trim();
  var bytes = Uint8Array.from(atob(text), function (c) { return c.charCodeAt(0); });
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  new Response(stream).text().then(function (code) {
    var script = document.createElement("script");
    script.textContent = code;
    document.head.appendChild(script);
    return parsed();
  }).then(function () {
    queue.forEach(function (args) { window.Plotly.newPlot.apply(window.Plotly, args); });
  }).catch(function (error) { unavailable(String(error)); });
})();""".replace("__DATA_ID__", PLOTLY_DATA_ID)


PLOTLY_BUNDLE = Path(__file__).resolve().parent / "vendor" / "plotly-gl3d.min.js"
"""plotly.js's gl3d bundle, the version of the ``plotly`` package (``vendor/README.md``)."""


@functools.lru_cache(maxsize=1)
def _plotly_deflated_base64() -> str:
    """:data:`PLOTLY_BUNDLE` zlib-compressed (what ``DecompressionStream("deflate")`` reads), as base64; made once per process."""
    return base64.b64encode(zlib.compress(PLOTLY_BUNDLE.read_bytes(), 9)).decode("ascii")


def _plotly_html() -> str:
    data = f'<script type="application/octet-stream" id="{PLOTLY_DATA_ID}">{_plotly_deflated_base64()}</script>'
    return data + "\n" + _inline_script(_PLOTLY_LOADER)


def render_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    metadata: Mapping[str, object],
    sections: Sequence[ReportSection],
    generated_at: datetime | None = None,
) -> Path:
    """Write a report as one self-contained HTML file.

    Parameters
    ----------
    path
        Output ``.html`` file. Written to a temporary file in the same
        folder and renamed, so an existing report is replaced only by a
        complete one (and stays as it was if rendering fails).
    title
        Page title and main heading.
    metadata
        ``{name: value}`` shown as a table at the top (scan file, device,
        eye, model, ...); values formatted by :func:`format_value`.
    sections
        :class:`ReportSection` objects, in order; a contents list links them.
    generated_at
        Time written in the footer; default now (UTC).

    Returns
    -------
    pathlib.Path
        The written file.

    Notes
    -----
    All text (title, metadata, section text, table cells, captions) is
    HTML-escaped; only ``html_fragments`` are inserted as they are. The
    page references nothing outside itself: images are ``data:`` URIs,
    CSS and plotly.js are inline (plotly.js compressed, ~2 MB, only when a
    fragment calls ``Plotly.newPlot``; see the module notes).
    """
    path = Path(path)
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    needs_plotly = any("Plotly.newPlot" in fragment for section in sections for fragment in section.html_fragments)
    meta_rows = "\n".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(format_value(v))}</td></tr>" for k, v in metadata.items()
    )
    contents = "\n".join(f'<li><a href="#section-{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(sections, start=1))
    body = "\n".join(_section_html(i, s) for i, s in enumerate(sections, start=1))
    version = getattr(retinaseg, "__version__", "unknown version")
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_CSS}</style>",
            _plotly_html() if needs_plotly else "",
            "</head>",
            "<body>",
            f"<header><h1>{html.escape(title)}</h1>",
            f'<table class="meta"><tbody>\n{meta_rows}\n</tbody></table></header>' if metadata else "</header>",
            f"<nav><ol>\n{contents}\n</ol></nav>" if sections else "",
            body,
            f"<footer>Generated by retinaseg {html.escape(str(version))} on {html.escape(when)}.</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, page)

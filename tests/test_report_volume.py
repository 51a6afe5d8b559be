from __future__ import annotations

import base64
import json
import re
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import plotly.offline
import pytest
from PIL import Image

import retinaseg
from retinaseg.errors import InputError
from retinaseg.report.bscan_render import stretch_and_note
from retinaseg.report.circle_figures import plot_circle_profile
from retinaseg.report.html import PLOTLY_BUNDLE, PLOTLY_DATA_ID, EmbeddedImage, ReportSection, Table, format_value, render_report
from retinaseg.report.map_figures import ThicknessMapFigure, _etdrs_label_positions, plot_thickness_map
from retinaseg.report.surface_figures import plot_surfaces_png, surface_figure_html

PLOTLY_MARKER = "plotly.js (gl3d - minified) v"  # the banner at the top of the embedded bundle


def _assert_png(path: Path, min_side: int = 300) -> np.ndarray:
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.width >= min_side and img.height >= min_side / 3
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.std() > 0  # not a blank page
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left
    return rgb


# --- B-scan aspect ----------------------------------------------------------------------------


def teststretch_and_note() -> None:
    # 40 rows x 4 um = 160 um deep, 64 A-scans x 10 um = 640 um wide: 1:4 is flatter than 1:3,
    # so depth is stretched by ceil((1/3) / (1/4)) = 2
    assert stretch_and_note(40, 64, 4.0, 10.0, None) == (2.0, "depth stretched ×2 for readability")
    assert stretch_and_note(40, 64, 8.0, 10.0, None) == (1.0, "physical aspect 1:1")  # 1:2
    assert stretch_and_note(40, 64, 4.0, 10.0, 3.0) == (3.0, "depth stretched ×3 for readability")
    assert stretch_and_note(40, 64, None, 10.0, None) == (None, "square pixels, scale unknown")


# --- thickness map -----------------------------------------------------------------------------


def test_etdrs_labels_follow_laterality() -> None:
    # SLO frame, y down: superior is above the centre (smaller y); nasal is +x for OD, -x for OS
    od = _etdrs_label_positions((4.0, 5.0), "OD", 3.0)
    assert od == {"S": (4.0, 2.0), "I": (4.0, 8.0), "N": (7.0, 5.0), "T": (1.0, 5.0)}
    os_ = _etdrs_label_positions((4.0, 5.0), "OS", 3.0)
    assert os_ == {"S": (4.0, 2.0), "I": (4.0, 8.0), "N": (1.0, 5.0), "T": (7.0, 5.0)}
    assert _etdrs_label_positions((4.0, 5.0), None, 3.0) == {"S": (4.0, 2.0), "I": (4.0, 8.0)}


@pytest.mark.parametrize("laterality", ["OD", "OS", None])
def test_thickness_map_writes_png(tmp_path: Path, laterality: str | None) -> None:
    map_um = 250.0 + np.arange(12.0)[None, :] * np.ones((5, 1))
    map_um[:, :3] = np.nan
    map_um[2, 6] = np.nan
    slo = (np.arange(60 * 60) % 251).reshape(60, 60).astype(np.uint8)
    path = plot_thickness_map(
        map_um,
        (1.0, 5.0, 4.0, 2.0),
        tmp_path / "m.png",
        slo=slo,
        slo_scale_xy_mm=(0.1, 0.1),
        etdrs_centre_xy_mm=(3.0, 3.0),
        laterality=laterality,
        title="total",
    )
    _assert_png(path)


def test_thickness_map_nan_is_transparent(tmp_path: Path) -> None:
    # a uniform SLO (grey 77) exactly under the map: its grey shows only where the map is NaN
    slo = np.full((50, 50), 77, dtype=np.uint8)
    grey = np.array([77, 77, 77])

    def grey_pixels(map_um: np.ndarray, name: str) -> int:
        rgb = _assert_png(
            plot_thickness_map(
                map_um, (0.0, 5.0, 5.0, 0.0), tmp_path / name, slo=slo, slo_scale_xy_mm=(0.1, 0.1), vmin=200.0, vmax=300.0
            )
        )
        return int((rgb == grey).all(axis=2).sum())

    full = np.full((10, 10), 250.0)
    half = full.copy()
    half[:, :5] = np.nan
    assert grey_pixels(full, "full.png") < 50  # at most a few anti-aliased edge pixels
    assert grey_pixels(half, "half.png") > 10_000  # half of the map area


def test_thickness_map_without_slo_and_all_nan(tmp_path: Path) -> None:
    _assert_png(
        plot_thickness_map(
            np.full((4, 6), np.nan), (0.0, 6.0, 4.0, 0.0), tmp_path / "m.png", etdrs_centre_xy_mm=(3.0, 2.0), laterality="OS"
        )
    )


def test_thickness_map_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="slo_scale_xy_mm"):
        plot_thickness_map(np.ones((3, 3)), (0, 1, 1, 0), tmp_path / "m.png", slo=np.zeros((5, 5), np.uint8))
    with pytest.raises(InputError, match="laterality"):
        plot_thickness_map(np.ones((3, 3)), (0, 1, 1, 0), tmp_path / "m.png", laterality="left")
    with pytest.raises(InputError, match="map_um"):
        plot_thickness_map(np.ones(3), (0, 1, 1, 0), tmp_path / "m.png")


# --- circle profile ----------------------------------------------------------------------------


def test_circle_profile_writes_png(tmp_path: Path) -> None:
    angle = np.linspace(0.0, 360.0, 256, endpoint=False)
    thickness = 100.0 + 30.0 * np.cos(np.deg2rad(2 * (angle - 90.0)))
    thickness[100:110] = np.nan
    sectors = {"global": 100.0, "T": 70.0, "TS": 130.0, "NS": np.nan, "N": 80.0, "NI": 125.0, "TI": 135.0, "S": 125.0, "I": 130.0}
    # angles need not be sorted nor in 0..360
    path = plot_circle_profile(
        angle[::-1] - 360.0,
        thickness[::-1],
        tmp_path / "c.png",
        reference_um=thickness[::-1] + 3.0,
        sectors=sectors,
        title="RNFL",
    )
    _assert_png(path)
    _assert_png(plot_circle_profile(angle, thickness, tmp_path / "plain.png"))


def test_circle_profile_rejects_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="thickness_um"):
        plot_circle_profile(np.arange(5.0), np.arange(4.0), tmp_path / "c.png")
    with pytest.raises(InputError, match="reference_um"):
        plot_circle_profile(np.arange(5.0), np.arange(5.0), tmp_path / "c.png", reference_um=np.arange(3.0))


# --- 3D surfaces -------------------------------------------------------------------------------


def _surfaces() -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(0.0, 6.0, 13)
    y = np.linspace(0.0, 3.0, 7)
    ilm = np.full((7, 13), 0.2)
    ilm[3, 6] = 0.25
    bm = np.full((7, 13), 0.5)
    bm[0, :4] = np.nan  # not scanned
    thickness = (bm - ilm) * 1000
    return {"ILM": ilm, "BM": bm}, x, y, thickness


def test_surface_figure_html_fragment() -> None:
    surfaces, x, y, thickness = _surfaces()
    fragment = surface_figure_html(surfaces, x, y, colour_by_um=thickness, title="surfaces <3D>")
    assert fragment.lstrip().startswith("<div") and "<html" not in fragment
    assert PLOTLY_MARKER not in fragment and len(fragment) < 200_000  # library not included
    assert "Plotly.newPlot" in fragment
    # spans: x 6 mm, y 3 mm, depth 0.2..0.5 = 0.3 mm x 5 = 1.5 -> aspect 1 : 0.5 : 0.25
    aspect = json.loads(re.search(r'"aspectratio":(\{[^}]*\})', fragment).group(1))
    assert aspect == pytest.approx({"x": 1.0, "y": 0.5, "z": 0.25})
    assert '"zaxis":{"title":{"text":"depth (mm)"},"autorange":"reversed"}' in fragment  # depth points down
    assert '"name":"ILM"' in fragment and '"name":"BM"' in fragment
    # title with the stretch, "<" escaped inside the script (JSON \u escapes)
    assert '"text":"surfaces \\u003c3D\\u003e (depth \\u00d75)"' in fragment


def test_surface_figure_rejects_bad_shapes() -> None:
    surfaces, x, y, thickness = _surfaces()
    with pytest.raises(InputError, match="surfaces_mm"):
        surface_figure_html({"ILM": surfaces["ILM"][:, :5]}, x, y)
    with pytest.raises(InputError, match="colour_by_um"):
        surface_figure_html(surfaces, x, y, colour_by_um=thickness.T)
    with pytest.raises(InputError, match="surfaces_mm"):
        surface_figure_html({}, x, y)


def test_surfaces_png(tmp_path: Path) -> None:
    surfaces, x, y, thickness = _surfaces()
    _assert_png(plot_surfaces_png(surfaces, x, y, tmp_path / "s.png", colour_by_um=thickness, title="ILM, BM"))


# --- HTML report -------------------------------------------------------------------------------


def _png(tmp_path: Path, name: str = "img.png") -> Path:
    path = tmp_path / name
    Image.fromarray(np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (np.nan, "–"),
        (float("inf"), "∞"),
        (-np.inf, "-∞"),
        (True, "yes"),
        (False, "no"),
        (12, "12"),
        (np.int64(-5), "-5"),
        (0.0, "0"),
        (275.345, "275.3"),
        (8.6345, "8.63"),
        (0.87345, "0.873"),
        (1234.6, "1235"),
        (2.5e-5, "2.5e-05"),
        (3e7, "3e+07"),
        (np.float32(3.87), "3.87"),
        ("a<b", "a<b"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_table_checks_row_length() -> None:
    with pytest.raises(InputError, match="row 1 has 1 cells for 2 columns"):
        Table(["a", "b"], [[1, 2], [3]], caption="t")


def test_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    png = _png(tmp_path)
    surfaces, x, y, _ = _surfaces()
    sections = [
        ReportSection(
            "B-scans <1>",
            text="first & only\n\nsecond <b>para</b>",
            images=[png, png],
            tables=[
                Table(["sector", "mean (µm)", "n"], [["C0 <centre>", 275.345, 12], ["S1", np.nan, None]], caption="ETDRS <total>")
            ],
        ),
        ReportSection("3D", html_fragments=[surface_figure_html(surfaces, x, y), surface_figure_html(surfaces, x, y)]),
    ]
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    path = render_report(
        tmp_path / "out" / "report.html",
        title="Report <x>",
        metadata={"file": "<script>alert(1)</script>", "B-scans": 11, "missing": np.nan},
        sections=sections,
        generated_at=when,
    )
    assert path == tmp_path / "out" / "report.html"
    page = path.read_text(encoding="utf-8")
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]  # no temp file left

    # nothing loaded from outside: no external scripts, style sheets or images ...
    lowered = page.lower()
    for pattern in (r"<script[^>]*\ssrc=", r"<link[^>]*href=", r"<img[^>]*src=\"(?!data:)"):
        assert not re.search(pattern, lowered), pattern
    # ... and no web address in the markup and CSS (plotly.js's code holds URL strings: skip scripts)
    markup = re.sub(r"<script[^>]*>.*?</script>", "<script></script>", lowered, flags=re.DOTALL)
    assert page.count("<script") == markup.count("<script")
    for pattern in (r"(src|href)=\"?(https?:)?//", r"@import", r"url\("):
        assert not re.search(pattern, markup), pattern
    assert "default-src 'none'" in page  # the page forbids network access itself

    # images embedded byte for byte
    encoded = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(encoded) == 2 and base64.b64decode(encoded[0]) == png.read_bytes()

    # all text escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    for text in (
        "Report &lt;x&gt;",
        "B-scans &lt;1&gt;",
        "first &amp; only",
        "second &lt;b&gt;para&lt;/b&gt;",
        "C0 &lt;centre&gt;",
        "ETDRS &lt;total&gt;",
    ):
        assert text in page, text
    # numbers formatted, NaN and None as a dash
    assert '<td class="num">275.3</td>' in page and '<td class="num">–</td>' in page
    assert "<td>–</td>" in page  # metadata NaN, and the None cell

    # plotly.js inline exactly once for two fragments, compressed, before them
    assert PLOTLY_MARKER not in page and page.count(f'id="{PLOTLY_DATA_ID}"') == 1
    packed = re.search(rf'<script type="application/octet-stream" id="{PLOTLY_DATA_ID}">([^<]*)</script>', page).group(1)
    assert zlib.decompress(base64.b64decode(packed)) == PLOTLY_BUNDLE.read_bytes()
    assert page.count("DecompressionStream(") == 1
    assert page.index("DecompressionStream(") < page.index("Plotly.newPlot(")
    assert page.count("Plotly.newPlot(") == 2
    assert f"Generated by retinaseg {retinaseg.__version__} on 2025-01-02T03:04:05+00:00" in page


def test_the_embedded_plotly_bundle_is_the_plotly_packages_version() -> None:
    """The figures' JSON is written by the pinned plotly package for its plotly.js: the bundle must be that version."""

    def version(script: str) -> str:
        found = re.search(r"\* plotly\.js (?:\([^)]*\) )?v(\S+)", script[:400])
        assert found, script[:400]
        return found.group(1)

    assert version(PLOTLY_BUNDLE.read_text(encoding="utf-8")) == version(plotly.offline.get_plotlyjs())


def test_report_without_fragments_has_no_plotly(tmp_path: Path) -> None:
    path = render_report(tmp_path / "r.html", title="t", metadata={}, sections=[ReportSection("only text", text="hello")])
    page = path.read_text(encoding="utf-8")
    assert PLOTLY_MARKER not in page and "<script" not in page
    assert len(page) < 20_000


def test_report_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("previous report")
    with pytest.raises(InputError, match="cannot read report image"):
        render_report(path, title="t", metadata={}, sections=[ReportSection("s", images=[tmp_path / "missing.png"])])
    with pytest.raises(InputError, match="PNG or JPEG"):
        render_report(path, title="t", metadata={}, sections=[ReportSection("s", images=[tmp_path / "fig.svg"])])
    assert path.read_text() == "previous report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    render_report(path, title="new", metadata={}, sections=[])
    assert "<title>new</title>" in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_embedded_images_and_fragments_without_plotly(tmp_path: Path) -> None:
    picture = EmbeddedImage(b"\xff\xd8 not really a jpeg", "image/jpeg", "map <1>.png")
    fragment = '<div id="v">viewer</div><script>document.getElementById("v").dataset.ok = "1";</script>'
    page = render_report(
        tmp_path / "r.html", title="t", metadata={}, sections=[ReportSection("s", images=[picture], html_fragments=[fragment])]
    ).read_text(encoding="utf-8")
    encoded = base64.b64encode(picture.data).decode("ascii")
    assert f'<img src="data:image/jpeg;base64,{encoded}" alt="map &lt;1&gt;.png">' in page
    assert "<figcaption>map &lt;1&gt;.png</figcaption>" in page
    assert fragment in page and PLOTLY_DATA_ID not in page  # a script that is not a plotly figure needs no plotly.js
    with pytest.raises(InputError, match="PNG or JPEG"):
        EmbeddedImage(b"GIF89a", "image/gif")


def test_one_thickness_map_figure_redraws_any_map(tmp_path: Path) -> None:
    # a figure reused for several maps draws each exactly as a fresh one: nothing of the previous map is left
    slo = (np.arange(60 * 60) % 251).reshape(60, 60).astype(np.uint8)
    options = {"slo": slo, "slo_scale_xy_mm": (0.1, 0.1), "etdrs_centre_xy_mm": (3.0, 3.0), "laterality": "OD"}
    total = 250.0 + np.arange(12.0)[None, :] * np.ones((5, 1))
    empty = np.full((5, 12), np.nan)
    figure = ThicknessMapFigure((1.0, 5.0, 4.0, 2.0), **options)
    first = figure.render(total, title="total")
    figure.render(empty, title="nothing", cmap="RdBu_r", vmin=-30.0, vmax=30.0, colorbar_label="Difference (µm)")
    np.testing.assert_array_equal(figure.render(total, title="total"), first)
    path = plot_thickness_map(total, (1.0, 5.0, 4.0, 2.0), tmp_path / "m.png", title="total", **options)
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), first)

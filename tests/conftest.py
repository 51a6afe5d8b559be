"""Shared fixtures and helpers: real datasets from ../shared/data (or RETINASEG_DATA), files
built to be damaged, volume comparison, headless Chromium.

Test modules share helpers only through this file (``from conftest import ...``), never by
importing each other.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from retinaseg.cli import main
from retinaseg.io.paths import find_dataset
from retinaseg.volume import OctVolume

if TYPE_CHECKING:
    from retinaseg.analyze import AnalysisResult


def _dataset(name: str) -> Path:
    path = find_dataset(name)
    if path is None:
        pytest.skip(f"dataset {name!r} not found: set RETINASEG_DATA or place it in ../shared/data")
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and every command it starts) gets its own empty cache folder, never the user's."""
    folder = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("RETINASEG_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def duke_npy_root() -> Path:
    return _dataset("duke_dme_chiu2015")


@pytest.fixture
def chase_root() -> Path:
    return _dataset("chase_db1")


@pytest.fixture
def spectralis_vol_root() -> Path:
    return _dataset("heidelberg_spectralis_vol")


@pytest.fixture
def duke_volumes_root() -> Path:
    return _dataset("duke_dme_volumes")


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str, str]]:
    """Run the console-script entry point in this process: ``run_cli(*args) -> (exit code, stdout, stderr)``."""

    def run(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["retinaseg", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        captured = capsys.readouterr()
        return exit_info.value.code or 0, captured.out, captured.err

    return run


def measured_phantom(n_bscans: int, *, seed: int = 0) -> AnalysisResult:
    """The analysis of a phantom volume with a random SLO, its true labels standing in for a network, the truth as reference."""
    import dataclasses

    from retinaseg.analyze import LayerModel, measure_volume
    from retinaseg.conventions import DUKE_BOUNDARY_NAMES, DUKE_CLASS_NAMES, DUKE_FLUID_CLASS, DUKE_LAYER_CLASSES
    from retinaseg.data.phantom import make_phantom_oct_volume

    volume, truth = make_phantom_oct_volume(seed=seed, n_bscans=n_bscans, with_fluid=True)
    slo = (np.random.default_rng(seed).random((700, 700)) * 255).astype(np.uint8)
    volume = dataclasses.replace(volume, slo=slo, slo_scale_xy_mm=(0.0114, 0.0114))
    layers = LayerModel(
        class_names=tuple(DUKE_CLASS_NAMES),
        layer_classes=DUKE_LAYER_CLASSES,
        fluid_classes=(DUKE_FLUID_CLASS,),
        boundary_names=tuple(DUKE_BOUNDARY_NAMES),
        layer_names=tuple(DUKE_CLASS_NAMES[c] for c in DUKE_LAYER_CLASSES[:-1]),
    )
    reference = {name: truth.boundary_rows[:, k] for k, name in enumerate(DUKE_BOUNDARY_NAMES)}
    return measure_volume(volume, truth.labels, layers, model_name="truth", reference_px=reference, reference_name="truth")


def file_contents(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes, to show a folder was left untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same_volume(a: OctVolume, b: OctVolume, *, metadata: bool = True) -> None:
    """Field-by-field equality (NaN equal to NaN)."""
    np.testing.assert_array_equal(a.reflectance, b.reflectance)
    assert a.reflectance.dtype == b.reflectance.dtype == np.float32
    assert (a.scale_x_mm, a.scale_z_mm, a.scan_pattern, a.laterality) == (
        b.scale_x_mm,
        b.scale_z_mm,
        b.scan_pattern,
        b.laterality,
    )
    fields = ("start_xy_mm", "end_xy_mm", "quality", "circle_centre_xy_mm", "circle_radius_mm", "shift_ascans")
    for ga, gb in zip(a.bscan_geometry, b.bscan_geometry, strict=True):
        for name in fields:
            va, vb = getattr(ga, name), getattr(gb, name)
            if va is None or vb is None:
                assert va is vb is None, name
            else:
                np.testing.assert_allclose(va, vb, rtol=0, atol=1e-12, err_msg=name)
    if a.slo is None or b.slo is None:
        assert a.slo is b.slo is None and a.slo_scale_xy_mm is b.slo_scale_xy_mm is None
    else:
        np.testing.assert_array_equal(a.slo, b.slo)
        assert a.slo_scale_xy_mm == b.slo_scale_xy_mm
    assert list(a.device_layers) == list(b.device_layers)
    for name in a.device_layers:
        np.testing.assert_array_equal(a.device_layers[name], b.device_layers[name], err_msg=name)
    if metadata:
        assert a.metadata == b.metadata and a.source == b.source


# --- genuine Spectralis exports (values from the data set's SOURCE.md) and damaged copies -------

GENUINE = {
    # name: (path, scan pattern, ScaleX mm, start (x, y) mm, end (x, y) mm, quality,
    #        invalid entries of ILM/BM/RNFL, median rows of ILM/BM/RNFL)
    "Willis_B_716_0": (
        "halirutan_spectralis-raw-data/test-data/Willis_B_716_0.vol",
        1,
        0.011821,
        (0.0, 4.539),
        (9.078, 4.539),
        44.6,
        (9, 135, 768),
        (76.3, 169.4, None),
    ),
    "Willis_B_716_2": (
        "halirutan_spectralis-raw-data/test-data/Willis_B_716_2.vol",
        2,
        0.014722,
        (3.789, 4.03),
        (5.588, 4.03),
        31.3,
        (0, 0, 0),
        (164.5, 260.8, 201.2),
    ),
    "Willis_B_716_4": (
        "halirutan_spectralis-raw-data/test-data/Willis_B_716_4.vol",
        2,
        0.014722,
        (3.789, 4.03),
        (5.588, 4.03),
        30.8,
        (0, 0, 0),
        (164.6, 261.2, 202.0),
    ),
    "valid": (
        "halirutan_spectralis-raw-data/test-data/valid.vol",
        2,
        0.017891,
        (2.75, 4.664),
        (4.934, 4.664),
        24.4,
        (187, 0, 187),
        (179.6, 284.0, 187.9),
    ),
    "onh": (
        "mu-biomed_retimat/data/onh.vol",
        2,
        0.015613,
        (3.359, 4.498),
        (5.268, 4.498),
        27.0,
        (0, 0, 0),
        (221.4, 302.3, 249.5),
    ),
}

SLO_BYTES = 768 * 768
BSCAN0 = 2048 + SLO_BYTES  # first B-scan header in the 768x768-SLO genuine files
HDR_SIZE = 55296  # BScanHdrSize of onh.vol
PIXEL0 = BSCAN0 + HDR_SIZE  # first pixel of B-scan 0


def patch_bytes(fmt: str, offset: int, *values: object) -> Callable[[bytearray], bytearray]:
    """A function that packs ``values`` with ``struct`` format ``fmt`` into a file's bytes at ``offset``."""

    def mutate(data: bytearray) -> bytearray:
        struct.pack_into(fmt, data, offset, *values)
        return data

    return mutate


# case: (damage done to the bytes of the genuine onh.vol, words the error message must contain)
HOSTILE = {
    "short": (lambda d: d[:1000], "shorter than the 2048-byte"),
    "png": (lambda d: bytearray(b"\x89PNG\r\n\x1a\n" + bytes(100)), "not a Heidelberg .vol file"),
    "truncated": (lambda d: d[: len(d) - 5000], "truncated file or corrupt header"),
    "magic": (patch_bytes("<12s", 0, b"NOT-A-VOL"), "not a Heidelberg .vol file"),
    "zero_bscans": (patch_bytes("<i", 16, 0), "no B-scans"),
    "negative_width": (patch_bytes("<i", 12, -768), "SizeX = -768"),
    "hdr_size_beyond_file": (patch_bytes("<i", 100, 10**8), "BScanHdrSize=100000000"),
    "hdr_size_tiny": (patch_bytes("<i", 100, 8), "BScanHdrSize = 8"),
    "bscan_magic": (patch_bytes("<10s", BSCAN0, b"garbage!!!"), "B-scan 0: magic"),
    "bscan_hdr_size_mismatch": (patch_bytes("<i", BSCAN0 + 12, 1234), "differs from the file header"),
    "num_seg_huge": (patch_bytes("<i", BSCAN0 + 48, 1_000_000), "NumSeg"),
    "off_seg_outside": (patch_bytes("<i", BSCAN0 + 52, HDR_SIZE - 100), "do not fit"),
    "nan_pixel": (patch_bytes("<f", PIXEL0 + 4 * 1000, float("nan")), "NaN or infinite"),
    "inf_pixel": (patch_bytes("<f", PIXEL0 + 4 * 5, float("inf")), "NaN or infinite"),
    "pixel_above_one": (patch_bytes("<f", PIXEL0, 7.0), "outside [0, 1]"),
    "nan_line": (patch_bytes("<f", BSCAN0 + 256 + 4 * 10, float("nan")), "segmentation line values are NaN"),
    "zero_scale": (patch_bytes("<d", 40, 0.0), "ScaleZ = 0 mm"),
    "laterality": (patch_bytes("<4s", 84, b"XY"), "neither 'OD' nor 'OS'"),
    "nan_position": (patch_bytes("<d", BSCAN0 + 16, float("nan")), "positions are not finite"),
    "scale_x_absurd": (patch_bytes("<d", 24, 1e300), "ScaleX = 1e+300 mm is not in"),
    "scale_z_micrometres": (patch_bytes("<d", 40, 3.87), "micrometres given as millimetres"),
    "distance_absurd": (patch_bytes("<d", 32, 1e300), "Distance = 1e+300 mm"),
    "slo_scale_zero": (patch_bytes("<d", 56, 0.0), "ScaleXSlo = 0 mm"),
    "scan_pattern_unknown": (patch_bytes("<i", 96, 7), "unknown scan pattern 7"),
    "circle_with_wrong_pitch": (patch_bytes("<d", 24, 0.03), "circumference"),
    "position_10_m_away": (
        lambda d: patch_bytes("<d", BSCAN0 + 16, 1e4)(patch_bytes("<i", 96, 1)(d)),  # as a line scan
        "A-scan positions span",
    ),
    "all_pixels_zero": (lambda d: d[:PIXEL0] + bytes(4 * 496 * 768) + d[PIXEL0 + 4 * 496 * 768 :], "no signal"),
}


# --- PNG files built byte by byte -----------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, kind, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, height: int, width: int) -> Path:
    """A few hundred bytes of 8-bit grey PNG whose header declares ``height`` x ``width`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(bytes(1000))) + png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)
    return path


# --- headless Chromium ----------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(
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


def open_in_chromium(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` after it has run, and the page's console messages."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-unsafe-swiftshader",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
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

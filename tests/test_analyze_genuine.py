"""Every genuine Spectralis ``.vol`` file through ``retinaseg analyze``, and the ``.eye`` export
of the geometry those files have (one B-scan, circles), which eyepy's own localizer fit cannot
place: with scikit-image >= 0.26 the export used to fail for all of them.
"""

from __future__ import annotations

from pathlib import Path

import eyepy
import numpy as np
import pytest

from retinaseg.io.eyepy_bridge import write_eye
from retinaseg.io.heidelberg import read_vol
from retinaseg.io.oct_files import read_oct
from retinaseg.io.paths import find_dataset
from retinaseg.volume import BScanGeometry, OctVolume

from conftest import assert_same_volume

GENUINE_DATASET = "heidelberg_spectralis_vol"


def _genuine_scans() -> list:
    """One parameter per ``*.vol`` of the dataset, or one skipped parameter saying why there is none."""
    root = find_dataset(GENUINE_DATASET)
    if root is None:
        reason = f"dataset {GENUINE_DATASET!r} not found: set RETINASEG_DATA or place it in ../shared/data"
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(path, id=path.stem) for path in sorted(root.rglob("*.vol"))]


@pytest.mark.parametrize("scan", _genuine_scans())
def test_analyze_cli_on_every_genuine_vol(scan: Path, run_cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _, stderr = run_cli("analyze", scan, "--out", out, "--device", "cpu")
    assert code == 0, stderr
    eye = out / f"{scan.stem}.eye"
    for path in (out / "report.html", out / "summary.json", eye):
        assert path.is_file(), path.name

    back, volume = read_oct(eye), read_vol(scan)
    np.testing.assert_array_equal(back.reflectance, volume.reflectance)
    np.testing.assert_allclose(back.ascan_positions_mm(), volume.ascan_positions_mm(), rtol=0, atol=1e-12)
    with np.load(out / "boundaries.npz") as saved:  # the .eye layers are the analysis' boundaries
        assert list(back.device_layers) == saved["boundary_names"].tolist()
        for k, rows in enumerate(back.device_layers.values()):
            np.testing.assert_array_equal(rows, saved["boundaries_px"][:, k])


# --- .eye export of degenerate geometry, without shared data ---------------------------------------

WIDTH = 64
CENTRE = (3.0, 2.5)  # circle centre, mm
RADIUS = 1.75  # mm; start point (1.25, 2.5) lies exactly at this distance


def _volume(geometry: list[BScanGeometry], scan_pattern: int, scale_x_mm: float) -> OctVolume:
    """``len(geometry)`` random B-scans of 32 x :data:`WIDTH` pixels, no SLO (so a blank localizer)."""
    reflectance = np.random.default_rng(0).random((len(geometry), 32, WIDTH), dtype=np.float32)
    return OctVolume(
        reflectance=reflectance,
        scale_x_mm=scale_x_mm,
        scale_z_mm=0.0039,
        bscan_geometry=geometry,
        scan_pattern=scan_pattern,
        laterality="OS",
    )


def _line(start: tuple[float, float], end: tuple[float, float]) -> BScanGeometry:
    return BScanGeometry(start_xy_mm=start, end_xy_mm=end, quality=np.nan)


# name -> (volume, whether every B-scan is placed exactly; B-scans on one line cannot all be by an affine map)
DEGENERATE = {
    "one oblique line": (lambda: _volume([_line((1.0, 4.0), (5.0, 1.0))], 1, 5.0 / WIDTH), True),
    "one circle": (
        lambda: _volume([BScanGeometry((1.25, 2.5), CENTRE, np.nan, CENTRE, RADIUS)], 2, 2 * np.pi * RADIUS / WIDTH),
        True,
    ),
    "B-scans on one line": (
        lambda: _volume([_line((1.0, 2.0), (2.0, 2.0)), _line((2.5, 2.0), (3.5, 2.0))], 3, 1.0 / WIDTH),
        False,
    ),
    "raster (eyepy's fit)": (
        lambda: _volume([_line((1.0, 3.0 - 0.5 * i), (5.0, 3.0 - 0.5 * i)) for i in range(3)], 3, 4.0 / WIDTH),
        True,
    ),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_eye_export_places_every_geometry_on_the_localizer(case: str, tmp_path: Path) -> None:
    make, all_placed = DEGENERATE[case]
    volume = make()
    n = volume.shape[0]
    layers = {"ILM": np.full((n, WIDTH), 5.5, np.float32)}
    path = write_eye(volume, layers, tmp_path / "scan.eye")

    transform = eyepy.EyeVolume.load(path).localizer_transform
    # eyepy's convention: A-scan c of B-scan i at (c, N - 1 - i), spread from start to end over W - 1
    # steps; blank localizer pixels are one A-scan pitch. A circle's end point is its centre.
    for i in range(n) if all_placed else [n - 1]:
        g = volume.bscan_geometry[i]
        np.testing.assert_allclose(
            transform([[0, n - 1 - i], [WIDTH - 1, n - 1 - i]]),
            np.array([g.start_xy_mm, g.end_xy_mm]) / volume.scale_x_mm,
            rtol=0,
            atol=1e-9,
        )
    # invertible: eyepy projects A-scan annotations onto the localizer with the inverse
    points = np.array([[0.0, 0.0], [WIDTH - 1.0, n - 1.0], [10.0, 0.5]])
    np.testing.assert_allclose(transform.inverse(transform(points)), points, rtol=0, atol=1e-9)

    expected = OctVolume(**{**volume.__dict__, "device_layers": layers})
    assert_same_volume(read_oct(path), expected, metadata=False)

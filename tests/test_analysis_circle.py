"""TSNIT profile, sectors and clock hours of circle scans."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from retinaseg.analysis.circle import (
    CIRCLE_SECTORS,
    circle_profile,
    finest_sectors,
    in_sector,
    sector_segments,
)
from retinaseg.analysis.thickness import layer_thickness_um
from retinaseg.errors import InputError
from retinaseg.io.heidelberg import read_vol
from retinaseg.volume import BScanGeometry, OctVolume

WIDTH = 768
CENTRE = (5.0, 4.0)


def _circle_positions(laterality: str, start_tsnit_deg: float) -> np.ndarray:
    """(W, 2) positions of a circle scan starting at a TSNIT angle, placed as OctVolume does."""
    temporal_x = -1.0 if laterality == "OD" else 1.0
    a = math.radians(start_tsnit_deg)
    start = (CENTRE[0] + 1.7 * temporal_x * math.cos(a), CENTRE[1] - 1.7 * math.sin(a))
    geometry = BScanGeometry(start, CENTRE, math.nan, circle_centre_xy_mm=CENTRE, circle_radius_mm=1.7)
    volume = OctVolume(np.zeros((1, 1, WIDTH), np.float32), 0.0139, 0.00387, [geometry], 2, laterality)
    return volume.ascan_positions_mm()[0]


@pytest.mark.parametrize("laterality", ["OD", "OS"])
def test_profile_of_a_circle_whose_thickness_is_its_tsnit_angle(laterality: str) -> None:
    # start half a pitch past temporal: no A-scan on a sector or clock-hour edge
    half_pitch = 180.0 / WIDTH
    true_angle = half_pitch + 360.0 * np.arange(WIDTH) / WIDTH
    profile = circle_profile(true_angle, _circle_positions(laterality, half_pitch), CENTRE, laterality)
    np.testing.assert_allclose(profile.angle_deg, true_angle, atol=1e-9)
    np.testing.assert_allclose(profile.thickness_um, true_angle)
    assert list(profile.sectors) == list(CIRCLE_SECTORS)
    # mean angle of a sector = its middle; T wraps through 0, its samples average to 180
    expected = {"global": 180.0, "T": 180.0, "TS": 67.5, "NS": 112.5, "N": 180.0, "NI": 247.5, "TI": 292.5, "S": 90.0, "I": 270.0}
    assert profile.sectors == pytest.approx(expected)
    # clock hour h points at TSNIT angle 30 h - 270 (OD: 3 o'clock nasal) or 90 - 30 h (OS: 3 o'clock temporal);
    # the hour containing temporal (9 o'clock OD, 3 o'clock OS) wraps through 0 and averages to 180
    hours = np.arange(1, 13)
    expected_hours = np.mod(30 * hours - 270, 360) if laterality == "OD" else np.mod(90 - 30 * hours, 360)
    expected_hours = np.where(expected_hours == 0, 180.0, expected_hours)
    np.testing.assert_allclose(profile.clock_hours, expected_hours)
    assert profile.clock_hours[11] == pytest.approx(90.0)  # 12 o'clock = superior for both eyes


@pytest.mark.parametrize("laterality", ["OD", "OS"])
def test_known_sector_values_with_an_unusual_start_and_gaps(laterality: str) -> None:
    values = {"T": 70.0, "TS": 140.0, "NS": 110.0, "N": 60.0, "NI": 130.0, "TI": 150.0}
    positions = _circle_positions(laterality, 100.0 + 180.0 / WIDTH)  # starts superonasal
    angle = np.mod(100.0 + 180.0 / WIDTH + 360.0 * np.arange(WIDTH) / WIDTH, 360.0)
    thickness = np.select(
        [(angle >= 315) | (angle < 45), angle < 90, angle < 135, angle < 225, angle < 270],
        [values["T"], values["TS"], values["NS"], values["N"], values["NI"]],
        values["TI"],
    )
    thickness[::7] = np.nan  # unknown A-scans are skipped
    profile = circle_profile(thickness, positions, CENTRE, laterality)
    assert np.all(np.diff(profile.angle_deg) > 0) and 0 <= profile.angle_deg[0] < profile.angle_deg[-1] < 360
    assert {k: profile.sectors[k] for k in values} == pytest.approx(values)
    assert profile.sectors["S"] == pytest.approx(125.0, abs=0.5)
    assert profile.sectors["I"] == pytest.approx(140.0, abs=0.5)
    # 12 o'clock (index 11) lies in TS / NS, 6 o'clock in NI / TI; 3 o'clock is nasal only for OD
    assert profile.clock_hours[2] == values["N" if laterality == "OD" else "T"]
    assert profile.clock_hours[8] == values["T" if laterality == "OD" else "N"]
    assert profile.clock_hours[0] == values["NS" if laterality == "OD" else "TS"]


def test_all_unknown_gives_nan_and_bad_input_raises() -> None:
    positions = _circle_positions("OD", 0.0)
    profile = circle_profile(np.full(WIDTH, np.nan), positions, CENTRE, "OD")
    assert all(math.isnan(v) for v in profile.sectors.values()) and np.isnan(profile.clock_hours).all()
    with pytest.raises(InputError, match="laterality"):
        circle_profile(np.zeros(WIDTH), positions, CENTRE, "right")
    with pytest.raises(InputError, match="positions_mm"):
        circle_profile(np.zeros(WIDTH - 1), positions, CENTRE, "OD")
    with pytest.raises(InputError, match="centre"):
        circle_profile(np.zeros(WIDTH), np.vstack([positions[:-1], [CENTRE]]), CENTRE, "OD")


def test_genuine_circle_scans(spectralis_vol_root: Path) -> None:
    volumes = {p.name: read_vol(p) for p in sorted(spectralis_vol_root.rglob("*.vol"))}
    circles = {name: v for name, v in volumes.items() if v.scan_pattern == 2}
    assert len(circles) == 4
    for name, volume in circles.items():
        layers = volume.device_layers
        rnfl_um = layer_thickness_um(np.stack([layers["ILM"], layers["RNFL"]], axis=1), volume.axial_um)[0, 0]
        geometry = volume.bscan_geometry[0]
        profile = circle_profile(rnfl_um, volume.ascan_positions_mm()[0], geometry.circle_centre_xy_mm, volume.laterality)
        assert profile.angle_deg.shape == profile.thickness_um.shape == (volume.shape[2],)
        # the OD scans start temporal and run superior first: file order is already TSNIT order
        assert profile.angle_deg[0] == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_array_equal(profile.thickness_um, rnfl_um)
        assert profile.sectors["global"] == pytest.approx(np.nanmean(rnfl_um))
        s = profile.sectors
        if name == "valid.vol":
            # a -11.8 D eye of poor quality (24 dB): the device left 187 A-scans unsegmented and its RNFL line
            # fails (0 µm over ~40°, up to 355 µm elsewhere), so no anatomy to check; gaps are skipped
            assert np.isnan(rnfl_um).sum() == 187 and all(math.isfinite(v) for v in s.values())
            continue
        # double hump: the superior and inferior arcuate bundles are the thickest
        assert min(s["S"], s["I"]) > max(s["T"], s["N"]) + 30, name
        assert 60 < s["global"] < 150, name


def test_sector_helpers() -> None:
    assert sector_segments(315.0, 45.0) == [(315.0, 360.0), (0.0, 45.0)]
    assert sector_segments(45.0, 90.0) == [(45.0, 90.0)]
    angle = np.array([0.0, 44.9, 45.0, 314.9, 315.0, 359.9])
    np.testing.assert_array_equal(in_sector(angle, *CIRCLE_SECTORS["T"]), [True, True, False, False, True, True])
    assert in_sector(angle, *CIRCLE_SECTORS["global"]).all()
    six = ["global", "T", "TS", "NS", "N", "NI", "TI", "S", "I"]
    # S = TS + NS and I = NI + TI and global hold other sectors: only the six are drawn as levels
    assert finest_sectors(six) == ["T", "TS", "NS", "N", "NI", "TI"]
    assert finest_sectors(["global", "T", "S", "N", "I", "other"]) == ["T", "S", "N", "I"]

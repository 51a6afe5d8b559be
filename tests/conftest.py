"""Shared fixtures: real datasets from ../shared/data (or RETINASEG_DATA)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retinaseg.io.paths import find_dataset


def _dataset(name: str) -> Path:
    path = find_dataset(name)
    if path is None:
        pytest.skip(f"dataset {name!r} not found: set RETINASEG_DATA or place it in ../shared/data")
    return path


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

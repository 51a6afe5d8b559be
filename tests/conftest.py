"""Shared fixtures: real datasets from ../shared/data (or RETINASEG_DATA)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from retinaseg.cli import main

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


def file_contents(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes, to show a folder was left untouched."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

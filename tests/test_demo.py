"""The demo runs end to end and never replaces a folder it did not make."""

from __future__ import annotations

from pathlib import Path

import pytest

from retinaseg.conventions import DUKE_BOUNDARY_NAMES
from retinaseg.demo import run_demo
from retinaseg.errors import InputError


@pytest.mark.slow
def test_demo_runs_end_to_end_and_can_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("retinaseg.demo.find_dataset", lambda name: None)  # the phantom part only
    out = tmp_path / "demo"
    outputs = run_demo(out, minutes=0.05)
    assert 0.0 <= outputs["test_metrics"]["summary"]["mean_dice"] <= 1.0
    assert (out / "phantom_dataset" / "dataset.json").is_file()
    assert (out / "runs" / "demo_unet" / "best.ckpt").is_file()
    assert (out / "runs" / "demo_unet" / "test" / "metrics.json").is_file()
    assert sorted(p.name for p in (out / "predictions").glob("*_classes.png"))
    assert outputs["report"] == out / "volume_analysis" / "report.html" and outputs["report"].is_file()
    assert set(outputs["volume_summary"]["boundary_mad_um"]) == set(DUKE_BOUNDARY_NAMES)
    assert "duke_report" not in outputs
    run_demo(out, minutes=0.02)  # its own earlier output is replaced


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("someone's results")
    with pytest.raises(InputError, match="not written by retinaseg"):
        run_demo(tmp_path, minutes=0.01)
    assert (tmp_path / "results.csv").read_text() == "someone's results"

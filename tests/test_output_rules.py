"""Output folders: never delete or overwrite what retinaseg did not write; refuse unwritable places at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from retinaseg.errors import InputError
from retinaseg.io.images import write_image_atomic
from retinaseg.io.output import (
    ANALYSIS,
    MARKER_NAME,
    TRAINING_RUN,
    check_output_dir,
    check_output_file,
    mark_output_dir,
    remove_stale_staging,
    replaced_on_success,
    staged_output_dir,
)

from conftest import file_contents

RunCli = Callable[..., tuple[int, str, str]]
FOLDER_OPTIONS = ["--scale-x-mm", "0.0115", "--scale-z-mm", "0.0039", "--bscan-spacing-mm", "0.12", "--laterality", "OD"]


def _bscan_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        write_image_atomic(folder / f"b{i}.png", rng.integers(0, 255, (128, 64), dtype=np.uint8))
    return folder


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retinaseg: error: "), stderr
    return lines[0]


# --- the user's data is never replaced ---------------------------------------------------------


def test_out_equal_to_the_input_folder_is_refused_even_with_overwrite(tmp_path: Path, run_cli: RunCli) -> None:
    scans = _bscan_folder(tmp_path / "bscans")
    before = file_contents(scans)
    code, _, stderr = run_cli("analyze", scans, "--out", scans, "--overwrite", *FOLDER_OPTIONS)
    assert code == 2 and "is the input" in _one_error_line(stderr)
    code, _, stderr = run_cli("predict", "--model", "duke_layers_unet", scans, "--out", scans, "--overwrite")
    assert code == 2 and "is the input" in _one_error_line(stderr)
    assert file_contents(scans) == before


def test_out_a_parent_of_the_input_is_refused(tmp_path: Path, run_cli: RunCli) -> None:
    study = tmp_path / "study"
    scans = _bscan_folder(study / "eye1")
    (study / "other.vol").write_bytes(b"another scan of the study")
    before = file_contents(study)
    code, _, stderr = run_cli("analyze", scans, "--out", study, "--overwrite", *FOLDER_OPTIONS)
    assert code == 2 and "contains the input" in _one_error_line(stderr)
    code, _, stderr = run_cli("convert", "folder", scans, "--out", tmp_path, "--overwrite")
    assert code == 2 and "contains the input" in _one_error_line(stderr)
    assert file_contents(study) == before


def test_a_folder_retinaseg_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    theirs = tmp_path / "results"
    theirs.mkdir()
    (theirs / "dataset.json").write_text("{}")  # looks like ours, but has no marker
    before = file_contents(theirs)
    with (
        pytest.raises(InputError, match="not written by retinaseg"),
        staged_output_dir(theirs, ANALYSIS, overwrite=True) as staging,
    ):
        (staging / "new.txt").write_text("new")
    assert file_contents(theirs) == before and sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_a_folder_retinaseg_wrote_is_replaced_with_overwrite_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_output_dir(out, ANALYSIS) as staging:
        (staging / "first.txt").write_text("1")
    assert (out / MARKER_NAME).is_file()
    with pytest.raises(InputError, match="--overwrite"):
        check_output_dir(out, ANALYSIS)
    with staged_output_dir(out, ANALYSIS, overwrite=True) as staging:
        (staging / "second.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME, "second.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left


def test_only_the_same_kind_of_output_is_replaced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    mark_output_dir(run, TRAINING_RUN)
    (run / "best.ckpt").write_bytes(b"weights")
    with pytest.raises(InputError, match="holds a retinaseg training run, not a analysis"):
        check_output_dir(run, ANALYSIS, overwrite=True)
    check_output_dir(run, TRAINING_RUN, overwrite=True)


def test_the_model_file_counts_as_an_input(tmp_path: Path, run_cli: RunCli) -> None:
    scans = _bscan_folder(tmp_path / "bscans")
    run = tmp_path / "run"
    run.mkdir()
    mark_output_dir(run, ANALYSIS)  # even a folder of the right kind
    (run / "model.pt").write_bytes(b"the weights the user trained")
    before = file_contents(run)
    code, _, stderr = run_cli("analyze", scans, "--model", run / "model.pt", "--out", run, "--overwrite", *FOLDER_OPTIONS)
    assert code == 2 and "contains the input" in _one_error_line(stderr)
    assert file_contents(run) == before


def test_a_symbolic_link_is_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "theirs"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(InputError, match="symbolic link"):
        check_output_dir(link, ANALYSIS, overwrite=True)
    assert list(target.iterdir()) == []


def test_a_replaced_folder_comes_back_when_the_new_one_fails(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.ckpt").write_bytes(b"old weights")
    before = file_contents(run)
    with pytest.raises(RuntimeError), replaced_on_success(run, TRAINING_RUN):
        run.mkdir()
        (run / "partial.ckpt").write_bytes(b"half")
        raise RuntimeError("training crashed")
    assert file_contents(run) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with replaced_on_success(run, TRAINING_RUN):
        run.mkdir()
        (run / "best.ckpt").write_bytes(b"new weights")
    assert (run / "best.ckpt").read_bytes() == b"new weights" and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("relative", [".", "..", "/", "~"])
def test_root_home_current_folder_and_its_parents_are_refused(
    relative: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(InputError, match="root, home or current folder"):
        check_output_dir(Path(relative).expanduser(), ANALYSIS, overwrite=True)


def test_an_existing_file_is_never_replaced(tmp_path: Path, run_cli: RunCli) -> None:
    existing = tmp_path / "model.pt"
    existing.write_bytes(b"mine")
    with pytest.raises(InputError, match="never replaces a file"):
        check_output_file(existing)
    code, _, stderr = run_cli("export-model", tmp_path / "missing.ckpt", existing)
    assert code == 2 and "never replaces a file" in _one_error_line(stderr)
    assert existing.read_bytes() == b"mine"


# --- places that cannot be written are refused before any work --------------------------------


def test_out_under_a_regular_file_is_one_line(tmp_path: Path, run_cli: RunCli) -> None:
    scans = _bscan_folder(tmp_path / "bscans")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    code, _, stderr = run_cli("analyze", scans, "--out", blocker / "analysis", *FOLDER_OPTIONS)
    assert code == 2 and "is a file, not a folder" in _one_error_line(stderr)
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_file(blocker / "sub" / "model.pt")
    assert blocker.read_text() == "a file"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_out_inside_proc_is_one_line(tmp_path: Path, run_cli: RunCli) -> None:
    scans = _bscan_folder(tmp_path / "bscans")
    code, _, stderr = run_cli("analyze", scans, "--out", "/proc/retinaseg-analysis", *FOLDER_OPTIONS)
    assert code == 2 and "cannot write here" in _one_error_line(stderr)
    with pytest.raises(InputError, match="cannot write here"):
        check_output_dir("/proc/self/retinaseg", ANALYSIS)


def _refusal_without_torch(*args: str) -> tuple[int, str, bool]:
    """Run the CLI in a fresh interpreter: (exit code, stderr, whether PyTorch was imported)."""
    code = (
        "import sys\n"
        "from retinaseg.cli import main\n"
        f"sys.argv = ['retinaseg', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    code = stop.code\n"
        "print('torch' in sys.modules, code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    torch_loaded, exit_code = done.stdout.split()[-2:]
    return int(exit_code), done.stderr, torch_loaded == "True"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda scans, tmp: ["--out", str(tmp / "blocker" / "x")],
        lambda scans, tmp: ["--out", str(tmp / "out"), "--batch-size", "0"],
        lambda scans, tmp: ["--out", str(tmp / "out"), "--device", "tpu"],
        lambda scans, tmp: ["--out", str(tmp / "out"), "--model", "no_such_model"],
        lambda scans, tmp: ["--out", str(tmp / "out"), "--fovea", "nan", "0"],
    ],
    ids=["out-under-a-file", "batch-size-0", "unknown-device", "unknown-model", "fovea-nan"],
)
def test_a_rejected_analyze_refuses_before_loading_pytorch(spoil: Callable, tmp_path: Path) -> None:
    scans = _bscan_folder(tmp_path / "bscans")
    (tmp_path / "blocker").write_text("a file")
    code, stderr, torch_loaded = _refusal_without_torch("analyze", str(scans), *spoil(scans, tmp_path), *FOLDER_OPTIONS)
    assert code == 2 and not torch_loaded
    _one_error_line(stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "bscans"]


def test_a_given_fovea_outside_the_scan_is_refused(tmp_path: Path, run_cli: RunCli) -> None:
    scans = _bscan_folder(tmp_path / "bscans")
    code, _, stderr = run_cli("analyze", scans, "--out", tmp_path / "out", "--fovea", "40", "40", *FOLDER_OPTIONS)
    assert code == 2 and "outside the scanned area" in _one_error_line(stderr)
    assert not (tmp_path / "out").exists()


# --- what a killed run left behind is cleaned up -----------------------------------------------


def _staging_of_process(folder: Path, pid: int) -> Path:
    folder.mkdir()
    (folder / MARKER_NAME).write_text(json.dumps({"written_by": "retinaseg", "host": socket.gethostname(), "pid": pid}))
    return folder


def test_staging_folders_of_killed_runs_are_removed_on_the_next_run(tmp_path: Path) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    dead_writing = _staging_of_process(tmp_path / ".out.writing-abc123", ended.pid)
    dead_old = _staging_of_process(tmp_path / ".out.old-def456", ended.pid)
    running = _staging_of_process(tmp_path / ".out.writing-live01", os.getpid())  # a run still going
    unmarked = tmp_path / ".out.writing-user"  # not ours
    unmarked.mkdir()
    with staged_output_dir(tmp_path / "out", ANALYSIS) as staging:
        (staging / "result.txt").write_text("done")
    assert not dead_writing.exists() and not dead_old.exists()
    assert running.is_dir() and unmarked.is_dir()
    assert remove_stale_staging(tmp_path / "out") == []

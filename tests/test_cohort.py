"""Cohorts: ``retinaseg analyze`` over many scans into one folder per scan and ``cohort.csv``.

Real files from ../shared/data (Duke volumes, the genuine Spectralis files) plus a corrupt and a
missing one: one row each, the bad ones ``failed`` with their error, a non-zero exit, a re-run
that skips the finished scans, and the same table from a Dask ``LocalCluster``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from retinaseg.cohort_inputs import ScanEntry
from retinaseg.cohort_table import DONE, FAILED, IDENTITY_COLUMNS
from retinaseg.conventions import DEFAULT_MODEL
from retinaseg.io.output import COHORT, MARKER_NAME, mark_output_dir

from conftest import file_contents


def _rows(table: Path) -> list[dict[str, str]]:
    with table.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _measured(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows without what depends on the run (time taken)."""
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def cohort_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scan list of real files (two Duke volumes, every genuine Spectralis .vol), a corrupt and a missing file."""
    from retinaseg.io.paths import find_dataset

    duke, genuine = find_dataset("duke_dme_volumes"), find_dataset("heidelberg_spectralis_vol")
    if duke is None or genuine is None:
        pytest.skip(
            "datasets 'duke_dme_volumes' and 'heidelberg_spectralis_vol' needed: set RETINASEG_DATA or use ../shared/data"
        )
    folder = tmp_path_factory.mktemp("cohort_input")
    corrupt = folder / "corrupt.vol"
    corrupt.write_bytes((duke / "Subject_06.vol").read_bytes()[:5000])  # a header promising far more data
    scans = [duke / "Subject_06.vol", duke / "Subject_07.vol", *sorted(genuine.rglob("*.vol")), corrupt, folder / "gone.vol"]
    list_file = folder / "scans.csv"
    list_file.write_text("path\n" + "".join(f"{scan}\n" for scan in scans), encoding="utf-8")
    return list_file


@pytest.fixture(scope="module")
def local_cohort(cohort_list: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """The cohort run through the CLI with one worker process: (output folder, exit code, stderr)."""
    import sys

    from retinaseg.cli import main

    out = tmp_path_factory.mktemp("cohort") / "out"
    args = ["retinaseg", "analyze", "--list", str(cohort_list), "--out", str(out), "--no-report", "--workers", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", args)
        with pytest.raises(SystemExit) as exit_info:
            main()
    return out, int(exit_info.value.code or 0), ""


def test_cohort_gives_one_row_per_scan_and_fails_only_the_bad_ones(local_cohort: tuple[Path, int, str], cohort_list: Path):
    out, code, _ = local_cohort
    assert code == 1  # finished, with failures
    rows = _rows(out / "cohort.csv")
    listed = cohort_list.read_text().split()[1:]
    assert [row["file"] for row in rows] == listed
    status = {Path(row["file"]).name: row["status"] for row in rows}
    assert status.pop("corrupt.vol") == status.pop("gone.vol") == FAILED
    assert set(status.values()) == {DONE}
    errors = {Path(row["file"]).name: row["error"] for row in rows if row["status"] == FAILED}
    assert "corrupt.vol" in errors["corrupt.vol"] and "truncated" in errors["corrupt.vol"]
    assert "gone.vol" in errors["gone.vol"] and "not found" in errors["gone.vol"]
    assert all("\n" not in error for error in errors.values())
    assert list(rows[0])[: len(IDENTITY_COLUMNS)] == list(IDENTITY_COLUMNS)

    duke = next(row for row in rows if row["id"] == "Subject_06")
    assert duke["scan_pattern"] == "volume" and duke["n_bscans"] == "11"
    assert 200 < float(duke["etdrs_total_c0_um"]) < 600  # central subfield, a DME eye
    assert float(duke["stored_boundary_mad_mean_um"]) < 20  # agreement with the stored (manual) lines
    circles = [row for row in rows if row["scan_pattern"] == "circle" and row["status"] == DONE]
    assert circles and all(float(row["rnfl_global_um"]) > 0 for row in circles)


def test_cohort_folder_holds_a_folder_per_finished_scan_and_provenance(local_cohort: tuple[Path, int, str]):
    out, _, _ = local_cohort
    rows = _rows(out / "cohort.csv")
    done = {row["id"] for row in rows if row["status"] == DONE}
    assert {path.name for path in (out / "scans").iterdir()} == done
    for scan_id in done:  # tables and maps, no report, no .eye unless asked for
        names = {path.name for path in (out / "scans" / scan_id).iterdir()}
        assert {"summary.json", "boundaries.npz", "cohort_record.json"} <= names
        assert "report.html" not in names and not any(name.endswith(".eye") for name in names)
    provenance = json.loads((out / "cohort.json").read_text())
    assert provenance["scans"] == {"total": len(rows), "done": len(done), "skipped": 0, "failed": len(rows) - len(done)}
    assert provenance["model"]["sha256"] and provenance["versions"]["retinaseg"]


def test_rerun_skips_finished_scans_and_retries_failed_ones(local_cohort: tuple[Path, int, str], cohort_list: Path, run_cli):
    out, _, _ = local_cohort
    before = _rows(out / "cohort.csv")
    finished = {path.name: (path / "summary.json").stat().st_mtime_ns for path in (out / "scans").iterdir()}
    code, _, stderr = run_cli("analyze", "--list", cohort_list, "--out", out, "--no-report", "--workers", "0")
    assert code == 1 and "scans failed" in stderr
    assert {path.name: (path / "summary.json").stat().st_mtime_ns for path in (out / "scans").iterdir()} == finished
    assert _measured(_rows(out / "cohort.csv")) == _measured(before)
    provenance = json.loads((out / "cohort.json").read_text())
    assert provenance["scans"]["skipped"] == len(finished) and provenance["scans"]["failed"] == 2


def test_dask_local_cluster_gives_the_local_table(local_cohort: tuple[Path, int, str], cohort_list: Path, tmp_path: Path):
    distributed = pytest.importorskip("dask.distributed", reason="Dask is an optional extra: pip install 'retinaseg[dask]'")
    from retinaseg.analysis_outputs import AnalysisOutputs
    from retinaseg.cohort import CohortOptions, run_cohort
    from retinaseg.cohort_inputs import read_scan_list

    out, _, _ = local_cohort
    options = CohortOptions(model=DEFAULT_MODEL, outputs=AnalysisOutputs(report=False, eye=False), device="cpu")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        summary = run_cohort(
            read_scan_list(cohort_list),
            tmp_path / "dask",
            CohortOptions(**{**options.__dict__, "scheduler": cluster.scheduler_address}),
        )
    assert summary.failed == 2 and summary.done == len(_rows(out / "cohort.csv")) - 2
    assert _measured(_rows(tmp_path / "dask" / "cohort.csv")) == _measured(_rows(out / "cohort.csv"))


# --- the rules, without shared data ----------------------------------------------------------------


def test_cohort_refuses_a_folder_it_did_not_write_and_another_kind(tmp_path: Path, run_cli):
    scan = tmp_path / "a.vol"
    scan.write_bytes(b"not a vol")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    code, _, stderr = run_cli("analyze", scan, tmp_path / "b.vol", "--out", mine)
    assert code == 2 and "not written by retinaseg" in stderr
    assert file_contents(mine) == {"notes.txt": b"keep"}

    other = tmp_path / "other"
    other.mkdir()
    mark_output_dir(other, "training run")
    code, _, stderr = run_cli("analyze", scan, tmp_path / "b.vol", "--out", other)
    assert code == 2 and "training run" in stderr


def test_cohort_refuses_fovea_and_list_with_scans(tmp_path: Path, run_cli):
    scans = [tmp_path / "a.vol", tmp_path / "b.vol"]
    code, _, stderr = run_cli("analyze", *scans, "--out", tmp_path / "c", "--fovea", "1", "1")
    assert code == 2 and "--fovea" in stderr
    listing = tmp_path / "scans.csv"
    listing.write_text("path\na.vol\n")
    code, _, stderr = run_cli("analyze", scans[0], "--list", listing, "--out", tmp_path / "c")
    assert code == 2 and "--list" in stderr
    code, _, stderr = run_cli("analyze", *scans, "--out", tmp_path / "c", "--inference", "fp23")
    assert code == 2 and "did you mean" in stderr
    assert not (tmp_path / "c").exists()


def test_corrupt_scans_only_give_failed_rows_and_an_exit_code(tmp_path: Path, run_cli):
    """No scan readable: every row failed, exit 1, the table and provenance written all the same."""
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "x.vol").write_bytes(b"\0" * 100)
    (folder / "y.e2e").write_bytes(b"junk")
    code, _, stderr = run_cli("analyze", folder, "--out", tmp_path / "out", "--workers", "0")
    assert code == 1 and "2 of 2 scans failed" in stderr
    rows = _rows(tmp_path / "out" / "cohort.csv")
    assert [row["id"] for row in rows] == ["x", "y"] and {row["status"] for row in rows} == {FAILED}
    assert json.loads((tmp_path / "out" / MARKER_NAME).read_text())["kind"] == COHORT


def test_scan_entries_are_picklable_for_worker_processes(tmp_path: Path):
    import pickle

    entry = ScanEntry(id="a", path=tmp_path / "a.vol", fovea_xy_mm=(1.0, 2.0), read_options={"laterality": "OD"})
    assert pickle.loads(pickle.dumps(entry)) == entry


def _touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_folders_stand_for_their_scans(tmp_path: Path):
    from retinaseg.cohort_inputs import expand_scans

    devices = tmp_path / "devices"
    files = [_touch(devices / "p1" / "a.vol"), _touch(devices / "p2" / "a.E2E"), _touch(devices / "b.eye")]
    _touch(devices / "notes.txt")
    out = devices / "cohort"
    _touch(out / "scans" / "old" / "old.eye")  # an earlier run's output inside the input folder is never a scan
    entries = expand_scans([devices], exclude=out)
    assert sorted(entry.path for entry in entries) == sorted(files)
    ids = [entry.id for entry in entries]
    assert len(set(ids)) == 3 and "b" in ids and all(name.startswith("a-") for name in ids if name != "b")

    bscans = tmp_path / "bscans"
    _touch(bscans / "000.png")
    assert [entry.path for entry in expand_scans([bscans])] == [bscans]  # a folder of B-scan images is one scan
    nested = tmp_path / "nested"
    _touch(nested / "eye1" / "000.png")
    _touch(nested / "eye2" / "000.tif")
    assert [entry.id for entry in expand_scans([nested])] == ["eye1", "eye2"]


def test_a_folder_without_scans_is_refused(tmp_path: Path):
    from retinaseg.cohort_inputs import expand_scans
    from retinaseg.errors import InputError

    _touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(InputError, match="no scans"):
        expand_scans([tmp_path / "empty"])


def test_ids_of_repeated_names_do_not_depend_on_the_other_scans(tmp_path: Path):
    from retinaseg.cohort_inputs import unique_ids

    first, second, third = tmp_path / "x" / "s.vol", tmp_path / "y" / "s.vol", tmp_path / "z" / "s.vol"
    assert unique_ids([first, second])[1] == unique_ids([third, second])[1] != unique_ids([first, second])[0]
    assert unique_ids([tmp_path / "my scan (1).vol"]) == ["my_scan__1_"]


def test_scan_list_reads_per_scan_options_relative_to_the_list(tmp_path: Path):
    from retinaseg.cohort_inputs import read_scan_list

    listing = tmp_path / "lists" / "scans.csv"
    _touch(listing, b"path,id,fovea_x_mm,fovea_y_mm,laterality,scale_x_mm\nsub/a.vol,first,4.4,4.3,,\n/abs/b,,,,os,0.0115\n")
    first, second = read_scan_list(listing)
    assert (first.id, first.path, first.fovea_xy_mm, first.read_options) == (
        "first",
        tmp_path / "lists" / "sub" / "a.vol",
        (4.4, 4.3),
        {},
    )
    assert (second.id, second.path, second.fovea_xy_mm) == ("b", Path("/abs/b"), None)
    assert second.read_options == {"scale_x_mm": 0.0115, "laterality": "OS"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"file\na.vol\n", "no 'path' column"),
        (b"path,eye\na.vol,OD\n", "unknown column 'eye'"),
        (b"path\n", "lists no scans"),
        (b"path,fovea_x_mm\na.vol,1\n", "line 2: give both"),
        (b"path,fovea_x_mm,fovea_y_mm\na.vol,1,nan\n", "line 2: fovea_y_mm must be a finite number"),
        (b"path,scale_x_mm\na.vol,wide\n", "scale_x_mm must be a finite number"),
        (b"path,laterality\na.vol,left\n", "laterality must be OD or OS"),
        (b"path,id\na.vol,../up\n", "must be a plain name"),
        (b"path,id\na.vol,x\nb.vol,x\n", "'x' is used for more than one scan"),
        (b"path\na.vol\n\n,\n", "line 4: empty path"),
        (b"\xff\xfe\x00bad", "cannot be read"),
    ],
)
def test_bad_scan_lists_are_refused_naming_the_line(tmp_path: Path, content: bytes, message: str):
    from retinaseg.cohort_inputs import read_scan_list
    from retinaseg.errors import InputError

    listing = _touch(tmp_path / "scans.csv", content)
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as info:
        read_scan_list(listing)
    assert str(listing) in str(info.value)


def test_checksums_cover_a_folders_images_and_refuse_pipes(tmp_path: Path):
    import hashlib
    import os

    from retinaseg.cohort_inputs import scan_checksum
    from retinaseg.errors import InputError

    scan = _touch(tmp_path / "a.vol", b"abc")
    assert scan_checksum(scan) == hashlib.sha256(b"abc").hexdigest()
    folder = tmp_path / "bscans"
    _touch(folder / "0.png", b"one")
    before = scan_checksum(folder)
    _touch(folder / "notes.txt", b"ignored")
    assert scan_checksum(folder) == before
    _touch(folder / "1.png", b"two")
    assert scan_checksum(folder) != before
    os.mkfifo(tmp_path / "pipe.vol")
    with pytest.raises(InputError, match="not a regular"):
        scan_checksum(tmp_path / "pipe.vol")


def test_cohort_table_shares_one_header_across_failed_and_measured_rows(tmp_path: Path):
    from retinaseg.cohort_table import failed_row, write_cohort_csv

    failed = failed_row(ScanEntry(id="a", path=tmp_path / "a.vol"), None, "a.vol: broken\nsecond line", 0.5)
    measured = {
        **failed_row(ScanEntry(id="b", path=tmp_path / "b.vol"), "f00", "", 1.0),
        "status": DONE,
        "etdrs_total_c0_um": 270.5,
    }
    write_cohort_csv(tmp_path / "cohort.csv", [failed, measured])
    rows = _rows(tmp_path / "cohort.csv")
    assert list(rows[0]) == [*IDENTITY_COLUMNS, "etdrs_total_c0_um"]
    assert rows[0]["error"] == "a.vol: broken" and rows[0]["etdrs_total_c0_um"] == ""
    assert rows[1]["etdrs_total_c0_um"] == "270.5" and rows[1]["checksum_sha256"] == "f00"

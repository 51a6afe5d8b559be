"""``retinaseg analyze`` over many scans: one folder per scan, one table for all.

:func:`run_cohort` analyses every scan of a cohort into ``<out>/scans/<id>/``
(the outputs of a single analysis; the report and ``.eye`` file on request)
and collects one row per scan into ``<out>/cohort.csv``
(:mod:`retinaseg.cohort_table`), with the run's provenance in
``<out>/cohort.json``.

- A scan that cannot be read or measured gets a row with status ``failed`` and
  its one-line error; the others go on.
- Running the same command again skips every scan whose folder records the
  same scan checksum, model and options, and so finishes an interrupted
  cohort; ``overwrite`` recomputes all.
- Locally, the network runs in this process, one scan after the other, while
  worker processes read the next scans and measure and write the previous
  ones; at most ``2 * workers + 3`` scans are in memory at a time, whatever the
  cohort's size. With ``scheduler``, every scan is a task on an existing Dask
  distributed cluster (:mod:`retinaseg.cohort_tasks` is the same code).
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from retinaseg import __version__
from retinaseg.allocator import reuse_freed_memory
from retinaseg.analysis_outputs import AnalysisOutputs
from retinaseg.analyze import check_analysis_options, check_runtime_options, layer_model, model_device
from retinaseg.cohort_inputs import ScanEntry, scan_checksum
from retinaseg.cohort_table import DONE, FAILED, write_cohort_csv
from retinaseg.cohort_tasks import RECORD_FILE, Outcome, ScanJob, analyze_scan, finish_scan, read_scan, segment_scan
from retinaseg.errors import InputError
from retinaseg.io.model_files import resolve_model_file
from retinaseg.io.output import COHORT, check_incremental_dir, prepare_incremental_dir
from retinaseg.io.records import read_json, write_json

#: Rewrite cohort.csv at least this often while a cohort runs (seconds), so an interrupted run leaves a table.
_TABLE_EVERY_S = 30.0

SCANS_FOLDER = "scans"


@dataclass(frozen=True)
class CohortOptions:
    """How every scan of a cohort is analysed.

    Attributes
    ----------
    model
        A shipped model's name or a model file.
    outputs
        Optional outputs per scan (report, ``.eye``, NIfTI).
    device
        ``cpu``, ``cuda`` ...; default: the best available.
    batch_size, inference, retina_rows
        B-scans per forward pass (default: per device), how the network
        runs, and whether it sees only the rows around the retina after a
        scan's first B-scan (:func:`retinaseg.inference.volume.segment_volume`).
    workers
        Worker processes for reading, measuring and writing (local runs);
        0 does everything in this process.
    scheduler
        Address of a Dask distributed scheduler; ``None`` runs locally.
    overwrite
        Recompute scans that are already done.
    """

    model: str
    outputs: AnalysisOutputs
    device: str | None = None
    batch_size: int | None = None
    inference: str = "auto"
    retina_rows: bool = False
    workers: int = 1
    scheduler: str | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class CohortSummary:
    """What a cohort run did: scans analysed now, skipped as already done, failed; where the table is."""

    done: int
    skipped: int
    failed: int
    table: Path
    seconds: float


def _job_key(entry: ScanEntry, options: CohortOptions, model_sha256: str) -> dict[str, Any]:
    """What a scan's result depends on besides its bytes; JSON-normalised so it compares with a stored one."""
    key = {
        "retinaseg": __version__,
        "model": options.model,
        "model_sha256": model_sha256,
        "fovea_xy_mm": list(entry.fovea_xy_mm) if entry.fovea_xy_mm else None,
        "read_options": entry.read_options,
        "inference": options.inference,  # reduced precision changes class maps
        "retina_rows": options.retina_rows,  # so does the crop (BENCHMARKS.md)
        "outputs": {"report": options.outputs.report, "eye": options.outputs.eye, "nifti": options.outputs.nifti},
    }
    return json.loads(json.dumps(key))


def _finished_row(job: ScanJob) -> dict[str, Any] | None:
    """The stored row of a scan already done with the same key and an unchanged file, else ``None``."""
    record_path = job.out_dir / RECORD_FILE
    if not record_path.is_file():
        return None
    try:
        record = read_json(record_path)
        stored_key = dict(record["key"])
        row = dict(record["row"])
    except (InputError, KeyError, TypeError, ValueError):
        return None  # unreadable record: recompute
    checksum = stored_key.pop("checksum_sha256", None)
    if stored_key != job.key:
        return None
    try:
        return row if scan_checksum(job.entry.path) == checksum else None
    except InputError:
        return None  # the scan is gone or unreadable now: analyse it again, which records why


def _split_finished(jobs: list[ScanJob], overwrite: bool) -> tuple[dict[str, dict[str, Any]], list[ScanJob]]:
    """``({id: stored row} of the scans already done, the jobs still to do)``; with ``overwrite`` all are to do."""
    rows: dict[str, dict[str, Any]] = {}
    todo = []
    for job in jobs:
        row = None if overwrite else _finished_row(job)
        if row is None:
            todo.append(job)
        else:
            rows[job.entry.id] = row
    return rows, todo


def run_cohort(
    entries: Sequence[ScanEntry],
    out_dir: str | os.PathLike[str],
    options: CohortOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
    command: Sequence[str] = (),
) -> CohortSummary:
    """Analyse every scan of ``entries`` into ``out_dir`` (module rules).

    Parameters
    ----------
    entries
        The scans (:func:`retinaseg.cohort_inputs.expand_scans`,
        :func:`retinaseg.cohort_inputs.read_scan_list`).
    out_dir
        The cohort's folder: new, or one an earlier cohort run wrote.
    options
        How to analyse them.
    progress
        Called with (scans finished, scans in all) after each scan.
    command
        The command line, recorded in ``cohort.json``.

    Raises
    ------
    InputError
        Bad options, an unknown model, or an output folder that may not be
        written (see :func:`retinaseg.io.output.prepare_incremental_dir`);
        all before any scan is read. Problems of single scans never raise:
        they are failed rows.
    """
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    check_analysis_options(options.batch_size, options.device, None, options.inference)
    if options.workers < 0:
        raise InputError("--workers", f"must be 0 or more, got {options.workers}")
    if not entries:
        raise InputError("scans", "no scans to analyse")
    model_file = resolve_model_file(options.model)
    inputs = [*(entry.path for entry in entries), model_file]
    check_incremental_dir(out_dir, COHORT, inputs=inputs)
    # Everything that can refuse the run does so before the folder exists.
    check_runtime_options(model_file, options.device, options.inference)
    client = _dask_client(options.scheduler) if options.scheduler is not None else None
    device = (
        model_device(model_file, options.device, options.inference)
        if client is None
        else (options.device or "each worker's default")
    )
    out_dir = prepare_incremental_dir(out_dir, COHORT, inputs=inputs)
    model_sha256 = scan_checksum(model_file)  # a file's SHA-256, read in chunks
    jobs = [
        ScanJob(
            entry=entry,
            out_dir=out_dir / SCANS_FOLDER / entry.id,
            key=_job_key(entry, options, model_sha256),
            model_name=str(options.model),
            outputs=options.outputs,
            inputs=(Path(entry.path), model_file),
        )
        for entry in entries
    ]

    rows, todo = _split_finished(jobs, options.overwrite)
    skipped = len(rows)
    stage_seconds: dict[str, float] = {}
    table = out_dir / "cohort.csv"

    def table_rows() -> list[dict[str, Any]]:
        return [rows[job.entry.id] for job in jobs if job.entry.id in rows]

    last_table = time.perf_counter()
    if progress is not None:
        progress(skipped, len(jobs))
    try:
        if client is not None:
            outcomes = _run_dask(todo, client, str(model_file), options)
        else:
            outcomes = _run_local(todo, str(model_file), device, options)
        for job, outcome in outcomes:
            rows[job.entry.id] = outcome.failed if outcome.failed is not None else outcome.value
            for stage, seconds in outcome.seconds.items():
                stage_seconds[stage] = stage_seconds.get(stage, 0.0) + seconds
            if progress is not None:
                progress(len(rows), len(jobs))
            if time.perf_counter() - last_table > _TABLE_EVERY_S:
                write_cohort_csv(table, table_rows())
                last_table = time.perf_counter()
    finally:  # also when interrupted: the table and provenance of what is done
        if client is not None:
            client.close()
        elapsed = time.perf_counter() - started
        if rows:
            write_cohort_csv(table, table_rows())
        statuses = [row["status"] for row in rows.values()]
        summary = CohortSummary(
            done=statuses.count(DONE) - skipped, skipped=skipped, failed=statuses.count(FAILED), table=table, seconds=elapsed
        )
        write_json(
            out_dir / "cohort.json",
            _provenance(summary, options, model_file, model_sha256, device, len(jobs), stage_seconds, started_at, command),
        )
    return summary


def _provenance(
    summary: CohortSummary,
    options: CohortOptions,
    model_file: Path,
    model_sha256: str,
    device: str,
    n_scans: int,
    stage_seconds: dict[str, float],
    started_at: str,
    command: Sequence[str],
) -> dict[str, Any]:
    """``cohort.json``: versions, model, options, counts and timings of this run."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"retinaseg": __version__, "python": platform.python_version()}
    for package in ("torch", "numpy", "scipy", "eyepy", "monai", "dask", "distributed"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    analysed = summary.done + summary.failed
    return {
        "command": list(command),
        "started": started_at,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions,
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "model": {"name": str(options.model), "file": str(model_file), "sha256": model_sha256},
        "options": {
            "device": device,
            "batch_size": options.batch_size,
            "inference": options.inference,
            "retina_rows": options.retina_rows,
            "outputs": {"report": options.outputs.report, "eye": options.outputs.eye, "nifti": options.outputs.nifti},
            "workers": options.workers,
            "scheduler": options.scheduler,
            "overwrite": options.overwrite,
        },
        "scans": {"total": n_scans, "done": summary.done, "skipped": summary.skipped, "failed": summary.failed},
        "timings_s": {
            "wall": round(summary.seconds, 3),
            "per_stage_sum": {stage: round(seconds, 3) for stage, seconds in stage_seconds.items()},
            "scans_per_minute": round(60.0 * analysed / summary.seconds, 3) if analysed and summary.seconds > 0 else None,
        },
    }


def _run_local(jobs: list[ScanJob], model_file: str, device: str, options: CohortOptions) -> Iterator[tuple[ScanJob, Outcome]]:
    """Outcomes of ``jobs``: the network here, reading and measuring in ``options.workers`` processes."""
    if not jobs:
        return
    from retinaseg.inference.checkpoint import load_model

    model = load_model(model_file, device)
    layers = layer_model(model)
    workers = options.workers
    network = (options.batch_size, options.inference, options.retina_rows)  # segment_scan's settings
    if workers == 0:
        for job in jobs:
            outcome = read_scan(job)
            if outcome.failed is None:
                outcome = segment_scan(job, outcome, model, *network)
            if outcome.failed is None:
                volume, labels = outcome.value
                outcome = finish_scan(job, outcome, volume, labels, layers)
            yield job, outcome
        return
    window = workers + 1  # scans read ahead, and scans being measured: bounds the memory
    # spawn: PyTorch's thread pools do not survive fork
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=reuse_freed_memory) as pool:
        queue = iter(jobs)
        reading: deque[tuple[ScanJob, Future[Outcome]]] = deque()
        finishing: dict[Future[Outcome], ScanJob] = {}

        def read_ahead() -> None:
            while len(reading) < window:
                job = next(queue, None)
                if job is None:
                    return
                reading.append((job, pool.submit(read_scan, job)))

        def finished(block: bool) -> Iterator[tuple[ScanJob, Outcome]]:
            while finishing and (block or len(finishing) > window):
                done, _ = wait(finishing, return_when=FIRST_COMPLETED)
                for future in done:
                    job = finishing.pop(future)
                    yield job, _result(job, future)
            for future in [future for future in finishing if future.done()]:
                job = finishing.pop(future)
                yield job, _result(job, future)

        read_ahead()
        while reading:
            job, future = reading.popleft()
            outcome = _result(job, future)
            read_ahead()
            if outcome.failed is None:
                outcome = segment_scan(job, outcome, model, *network)
            if outcome.failed is not None:
                yield job, outcome
            else:
                volume, labels = outcome.value
                outcome.value = None  # the worker gets its own copy; keep none here
                finishing[pool.submit(finish_scan, job, outcome, volume, labels, layers)] = job
                del volume, labels
            yield from finished(block=False)
        yield from finished(block=True)


def _result(job: ScanJob, future: Future[Outcome]) -> Outcome:
    """The outcome of a worker's step; a worker that died (out of memory, killed) fails the scan, not the cohort."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - whatever killed the step, it is this scan's failed row
        return Outcome().fail(job, err)


def _dask_client(address: str) -> Any:
    """A client of the Dask scheduler at ``address``; refused with one line when Dask or the scheduler is missing."""
    try:
        from dask.distributed import Client
    except ImportError:
        raise InputError("--scheduler", "needs Dask: pip install 'retinaseg[dask]'") from None
    try:
        return Client(address, timeout="30s")
    except (OSError, TimeoutError, ValueError) as err:
        raise InputError("--scheduler", f"cannot connect to the Dask scheduler at {address} ({err})") from None


def _run_dask(jobs: list[ScanJob], client: Any, model_file: str, options: CohortOptions) -> Iterator[tuple[ScanJob, Outcome]]:
    """Outcomes of ``jobs``, each analysed whole by a worker of the Dask cluster of ``client``.

    The workers must see the scans, the model file and the output folder at
    the same paths (a shared file system); without ``options.device`` each
    worker takes its best one.
    """
    from dask.distributed import as_completed

    run = uuid.uuid4().hex[:8]  # task names unique to this run, readable on the cluster's dashboard
    futures = {
        client.submit(
            analyze_scan,
            job,
            model_file,
            options.device,
            options.batch_size,
            options.inference,
            options.retina_rows,
            key=f"retinaseg-analyze-{job.entry.id}-{run}",
            pure=False,
        ): job
        for job in jobs
    }
    for future in as_completed(futures):
        job = futures[future]
        try:
            outcome = future.result()
        except Exception as err:  # noqa: BLE001 - a lost worker, a model file the worker cannot see ...
            outcome = Outcome().fail(job, err)
        yield job, outcome
        future.release()

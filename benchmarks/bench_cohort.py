"""``retinaseg analyze`` on the benchmark raster: stages, scaling with B-scans, cohort throughput.

(a) Stages of one analysis of the N-B-scan benchmark volume (default 61,
``benchmarks/make_bench_volume.py``): imports (fresh interpreters), then in this
process read, model load, ``auto``'s timing of the inference options, segment
(network), post-process (``layer_surfaces``), quantify (thickness, maps,
fovea, ETDRS, agreement: ``measure_volume`` minus post-process), write (tables),
``.eye`` file, report; the network once more with ``--retina-rows`` (only
the rows around the retina after the first B-scan), for comparison; and the
real CLI end to end with and without the report, without the ``.eye`` file,
with ``--retina-rows``, and once as a machine's first run (``auto``'s timing
not yet in the cache, which starts empty in the temporary folder), with the
report's size.

(b) Scaling: wall time and peak RSS of ``retinaseg analyze VOL --out DIR --no-report``
(one scan also writes its ``.eye`` file, the CLI default) for volumes of
1, 11, 31, 61, 97 B-scans, each in a fresh process (peak RSS from
``os.wait4`` of that process), with a least-squares line through them.

(c) Cohort throughput: ``--copies`` hard links (distinct names) of the volume analysed
as one cohort by ``retinaseg analyze FOLDER --out OUT --no-report`` (default workers)
and by :func:`retinaseg.cohort.run_cohort` on a Dask ``LocalCluster`` (2 worker
processes, 1 thread each); scans per minute, the summed stage times from each
``cohort.json``, and whether both ``cohort.csv`` agree apart from ``seconds``.

    python benchmarks/bench_cohort.py [--parts a,b,c] [--bscans 61] [--bscans-list 1,11,31,61,97] [--copies 20]
                                      [--repeats 1] [--inference auto] [--volume SCAN.vol] [--quick]

``--quick``: a smoke check (11 B-scans, scaling over 1 and 11, 2 copies). Temporary
files live in one temporary folder (``$TMPDIR``), removed at the end; commands are
printed with it as ``$TMP``. Machines are noisy: compare within a run. Prints markdown.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from machine import cpu_description

from retinaseg.allocator import reuse_freed_memory
from retinaseg.conventions import DEFAULT_MODEL
from retinaseg.io.paths import CACHE_ENV_VAR

HERE = Path(__file__).resolve().parent
T = TypeVar("T")

# Linux counts a process's resident set before its exec into its peak (ru_maxrss), and a child
# starts with its parent's: a command started by this process once it holds PyTorch and the
# model would report their memory as its own. So commands start from this small launcher,
# started before anything large is loaded: one JSON line in (command, log file), one out.
_LAUNCHER = """
import json, os, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    env = {**os.environ, **job["env"]}
    with open(job["log"], "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(job["cmd"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    print(json.dumps([seconds, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]), flush=True)
"""


@dataclass(frozen=True)
class Run:
    """One subprocess: wall seconds, its peak RSS (largest single process among it and its waited children), exit code."""

    seconds: float
    peak_rss_mib: float
    rc: int
    log: Path


class Bench:
    """The temporary folder, the CLI, the options every run gets."""

    def __init__(self, tmp: Path, inference: str, model: str) -> None:
        self.tmp, self.inference, self.model = tmp, inference, model
        script = Path(sys.executable).parent / "retinaseg"
        self.cli = [str(script)] if script.exists() else [sys.executable, "-m", "retinaseg.cli"]
        self.runs = 0
        self.launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def show(self, cmd: list[str]) -> str:
        """The command as printed: ``retinaseg`` for the CLI, ``$TMP`` for the temporary folder."""
        if cmd[: len(self.cli)] == self.cli:
            cmd = ["retinaseg", *cmd[len(self.cli) :]]
        return " ".join(shlex.quote(a) for a in cmd).replace(str(self.tmp), "$TMP")

    def analyze(self, *args: str | Path) -> list[str]:
        extra = [] if self.inference == "auto" else ["--inference", self.inference]
        return [*self.cli, "analyze", *map(str, args), "--model", self.model, *extra]

    def run(self, cmd: list[str], check: bool = True, env: dict[str, str] | None = None) -> Run:
        """Run ``cmd`` (with ``env`` added to the environment) from the launcher with its output in a log file.

        ``os.wait4`` gives the command's own resource usage.
        """
        self.runs += 1
        log = self.tmp / f"run{self.runs:03d}.log"
        print(f"[bench] {self.show(cmd)}", file=sys.stderr, flush=True)
        assert self.launcher.stdin is not None and self.launcher.stdout is not None
        self.launcher.stdin.write(json.dumps({"cmd": cmd, "log": str(log), "env": env or {}}) + "\n")
        self.launcher.stdin.flush()
        seconds, maxrss, returncode = json.loads(self.launcher.stdout.readline())
        rss = maxrss / (2**20 if sys.platform == "darwin" else 2**10)  # bytes on macOS, KiB on Linux
        if check and returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"failed (exit {returncode}): {self.show(cmd)}\n{tail}")
        return Run(seconds, rss, returncode, log)

    def close(self) -> None:
        """End the launcher."""
        if self.launcher.stdin is not None:
            self.launcher.stdin.close()
        self.launcher.wait()

    def volume(self, n_bscans: int, subject: str, seed: int) -> Path:
        """The benchmark volume of ``n_bscans`` B-scans in the temporary folder (made once)."""
        path = self.tmp / f"bench_{n_bscans}.vol"
        if not path.exists():
            self.run(
                [sys.executable, str(HERE / "make_bench_volume.py"), str(path), "--bscans", str(n_bscans)]
                + ["--subject", subject, "--seed", str(seed)]
            )
        return path


def _timed(function: Callable[[], T], repeats: int = 1) -> tuple[float, T]:
    """Best wall seconds of ``repeats`` calls, and the last value."""
    best, value = math.inf, None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value  # type: ignore[return-value]  # set by at least one call


def _size_mib(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def _machine() -> str:
    """CPU, cores, memory, load, PyTorch: the line every result needs."""
    import torch

    cpu = cpu_description()
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem = next((int(line.split()[1]) / 2**20 for line in meminfo.splitlines() if line.startswith("MemTotal")), math.nan)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"CPU: {cpu}, {os.cpu_count()} logical cores ({usable} usable); {mem:.0f} GiB RAM; GPU: {gpu}; "
        f"load average {load}; Python {platform.python_version()}, PyTorch {torch.__version__} "
        f"({torch.get_num_threads()} threads by default); {platform.platform()}"
    )


def part_a(bench: Bench, vol: Path, repeats: int) -> None:
    """Stage breakdown of one analysis, in process, and the CLI end to end."""
    imports = {
        "import retinaseg.analyze": "import retinaseg.analyze",
        "+ PyTorch and the network code": "import retinaseg.analyze, retinaseg.inference.volume",
    }
    import_s = {
        name: min(bench.run([sys.executable, "-c", code]).seconds for _ in range(max(1, repeats)))
        for name, code in imports.items()
    }

    from retinaseg.analysis.boundaries import layer_surfaces
    from retinaseg.analysis_outputs import AnalysisOutputs, write_analysis
    from retinaseg.analyze import MIN_RETINA_UM, check_coverage, layer_model, measure_volume, model_device
    from retinaseg.inference.checkpoint import load_model
    from retinaseg.inference.choose import choose_inference_option
    from retinaseg.inference.volume import segment_volume
    from retinaseg.io.eyepy_bridge import write_eye
    from retinaseg.io.model_files import resolve_model_file
    from retinaseg.io.oct_files import read_oct
    from retinaseg.report.volume_report import write_volume_report

    folders = iter(range(10**6))

    def fresh() -> Path:
        return bench.tmp / f"a_out{next(folders)}"

    s: dict[str, float] = {}
    s["read"], volume = _timed(lambda: read_oct(vol), repeats)
    model_file = resolve_model_file(bench.model)
    s["load model"], model = _timed(lambda: load_model(model_file, model_device(model_file, None, bench.inference)))
    layers = layer_model(model)
    chosen = bench.inference
    if bench.inference == "auto":  # what the first segmentation of a process pays; cached afterwards
        s["choose inference (auto)"], choice = _timed(lambda: choose_inference_option(model, volume.shape[1:]))
        chosen = f"auto -> {choice.option.name}"
    s["segment (network)"], labels = _timed(
        lambda: segment_volume(volume, model, progress=False, inference=bench.inference), repeats
    )
    # the alternative, side by side: only the rows around the retina (--retina-rows); not part of the sum
    rows_s, _ = _timed(
        lambda: segment_volume(volume, model, progress=False, inference=bench.inference, retina_rows=True), repeats
    )
    invalid = np.isnan(volume.reflectance)
    s["post-process (layer_surfaces)"], _ = _timed(
        lambda: layer_surfaces(
            labels,
            list(layers.layer_classes),
            list(layers.fluid_classes),
            invalid=invalid,
            min_retina_px=MIN_RETINA_UM / volume.axial_um,
        ),
        repeats,
    )
    measure_s, result = _timed(
        lambda: check_coverage(measure_volume(volume, labels, layers, model_name=bench.model), volume.source), repeats
    )
    s["quantify (thickness, maps, fovea, ETDRS, agreement)"] = max(0.0, measure_s - s["post-process (layer_surfaces)"])
    tables = AnalysisOutputs(report=False, eye=False, nifti=False)
    s["write (tables: write_analysis)"], _ = _timed(lambda: write_analysis(result, fresh(), outputs=tables), repeats)
    bounds = result.segmentation.boundaries_by_name()
    s[".eye file (CLI default for one scan)"], _ = _timed(lambda: write_eye(volume, bounds, fresh().with_suffix(".eye")), repeats)
    s["report (report.html + figures)"], _ = _timed(lambda: write_volume_report(result, fresh()), repeats)

    # The CLI runs find auto's choice of the in-process stage above in the cache (as any run after a
    # machine's first does); the first run on a machine times the options: the same command with an empty cache.
    with_report, no_report = bench.tmp / "a_cli_report", bench.tmp / "a_cli_no_report"
    cmd_r, cmd_n = bench.analyze(vol, "--out", with_report), bench.analyze(vol, "--out", no_report, "--no-report")
    cmd_first = bench.analyze(vol, "--out", bench.tmp / "a_cli_first", "--no-report")
    cmd_eye = bench.analyze(vol, "--out", bench.tmp / "a_cli_no_eye", "--no-report", "--no-eye")
    cmd_rows = bench.analyze(vol, "--out", bench.tmp / "a_cli_retina_rows", "--no-report", "--retina-rows")
    run_r, run_n, run_eye, run_rows = bench.run(cmd_r), bench.run(cmd_n), bench.run(cmd_eye), bench.run(cmd_rows)
    empty_cache = bench.tmp / f"empty_cache{bench.runs}"
    run_first = bench.run(cmd_first, env={CACHE_ENV_VAR: str(empty_cache)})

    n, height, width = volume.shape
    total = sum(s.values())
    print(f"## (a) Stages of one analysis: {vol.name}, {n} B-scans of {height}x{width}, inference {chosen}\n")
    print(f"Stages in this process, best of {repeats} where repeated (model load and the auto timing once).\n")
    print("| stage | seconds | share of stages |\n|---|---|---|")
    for name, seconds in import_s.items():
        print(f'| imports: `python -c "{imports[name]}"` (fresh process) | {seconds:.2f} | |')
    for name, seconds in s.items():
        print(f"| {name} | {seconds:.2f} | {100 * seconds / total:.0f} % |")
    print(f"| **sum of stages** (without imports) | **{total:.2f}** | 100 % |")
    print(f"| segment per B-scan | {s['segment (network)'] / n:.3f} | |")
    print(
        f"| segment (network) with `--retina-rows`, for comparison (not in the sum) | {rows_s:.2f} | "
        f"{s['segment (network)'] / rows_s:.2f}x faster |"
    )
    print("\n| end to end (real CLI, fresh process) | seconds | peak RSS MiB | outputs MiB |\n|---|---|---|---|")
    for cmd, run, out, note in (
        (cmd_r, run_r, with_report, ""),
        (cmd_n, run_n, no_report, ""),
        (cmd_first, run_first, bench.tmp / "a_cli_first", f" (first run on the machine: `{CACHE_ENV_VAR}` empty)"),
        (cmd_eye, run_eye, bench.tmp / "a_cli_no_eye", ""),
        (cmd_rows, run_rows, bench.tmp / "a_cli_retina_rows", ""),
    ):
        print(f"| `{bench.show(cmd)}`{note} | {run.seconds:.1f} | {run.peak_rss_mib:.0f} | {_size_mib(out):.1f} |")
    report, figures = with_report / "report.html", with_report / "figures"
    n_figures = len(list(figures.glob("*"))) if figures.is_dir() else 0
    print(
        f"\nreport.html {_size_mib(report):.2f} MiB, figures/ {_size_mib(figures) if figures.is_dir() else 0:.2f} MiB "
        f"({n_figures} files); the report costs {run_r.seconds - run_n.seconds:.1f} s end to end "
        f"({100 * (run_r.seconds / run_n.seconds - 1):.0f} % more); CLI without report minus (imports + stages without report): "
        f"{run_n.seconds - import_s['+ PyTorch and the network code'] - total + s['report (report.html + figures)']:.1f} s "
        "(checks, checksums, progress bar, process exit).\n"
    )


def part_b(bench: Bench, bscans_list: list[int], subject: str, seed: int) -> None:
    """Time and peak RSS of the CLI per volume size, each in a fresh process."""
    rows = []
    for n in bscans_list:
        vol = bench.volume(n, subject, seed)
        cmd = bench.analyze(vol, "--out", bench.tmp / f"b_out{n}", "--no-report")
        rows.append((n, _size_mib(vol), bench.run(cmd, check=False), cmd))
    print("## (b) Scaling with the number of B-scans (496x768 each), one fresh process per run\n")
    print(
        f"`{bench.show(rows[0][3]).replace(f'bench_{rows[0][0]}.vol', 'bench_N.vol').replace(f'b_out{rows[0][0]}', 'b_outN')}`\n"
    )
    print("| B-scans | file MiB | seconds | s per B-scan | peak RSS MiB | peak RSS / file size |\n|---|---|---|---|---|---|")
    ok = [(n, mib, run) for n, mib, run, _ in rows if run.rc == 0]
    for n, mib, run, _ in rows:
        if run.rc != 0:
            print(f"| {n} | {mib:.1f} | failed (exit {run.rc}, {run.log.read_text(errors='replace')[-200:]!r}) | | | |")
            continue
        print(
            f"| {n} | {mib:.1f} | {run.seconds:.1f} | {run.seconds / n:.2f} | {run.peak_rss_mib:.0f} | {run.peak_rss_mib / mib:.1f} |"
        )
    if len({n for n, _, _ in ok}) >= 2:
        x = np.array([n for n, _, _ in ok], dtype=float)
        slope_s, fixed_s = np.polyfit(x, [run.seconds for _, _, run in ok], 1)
        slope_m, fixed_m = np.polyfit(x, [run.peak_rss_mib for _, _, run in ok], 1)
        print(
            f"\nLeast squares: seconds ~ {fixed_s:.1f} + {slope_s:.2f} x B-scans; peak RSS ~ {fixed_m:.0f} + {slope_m:.1f} MiB x "
            f"B-scans (a 193-B-scan volume: ~{fixed_s + 193 * slope_s:.0f} s, ~{fixed_m + 193 * slope_m:.0f} MiB, extrapolated)."
        )
    print("Peak RSS: `ru_maxrss` of the CLI process from `os.wait4` (Linux: its largest resident set).\n")


def _read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return sorted(csv.DictReader(f), key=lambda row: row["id"])


def _compare_tables(a: Path, b: Path) -> str:
    """Whether two cohort.csv agree apart from the seconds column, and if not where."""
    rows_a, rows_b = _read_table(a), _read_table(b)
    if [r["id"] for r in rows_a] != [r["id"] for r in rows_b]:
        return "NO: different scans"
    differing: dict[str, float] = {}
    for ra, rb in zip(rows_a, rows_b):
        for column in (ra.keys() | rb.keys()) - {"seconds"}:
            x, y = ra.get(column, ""), rb.get(column, "")
            if x != y:
                try:
                    gap = abs(float(x) - float(y))
                except ValueError:
                    gap = math.inf
                differing[column] = max(differing.get(column, 0.0), gap)
    if not differing:
        return f"yes ({len(rows_a)} rows, {len(rows_a[0]) - 1 if rows_a else 0} columns compared)"
    worst = ", ".join(f"{c} (max |diff| {g:.3g})" for c, g in sorted(differing.items(), key=lambda kv: -kv[1])[:6])
    return f"NO: {len(differing)} columns differ: {worst}"


def _stage_sums(out: Path) -> dict[str, Any]:
    from retinaseg.io.records import read_json

    record = read_json(out / "cohort.json")
    return dict(record["timings_s"]["per_stage_sum"])


def _peak_rss_mib() -> float:
    """This process's peak RSS in MiB (run on each Dask worker)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def part_c(bench: Bench, vol: Path, copies: int, dask_workers: int) -> None:
    """The same cohort locally (the CLI) and on a Dask LocalCluster (run_cohort)."""
    from retinaseg.analysis_outputs import AnalysisOutputs
    from retinaseg.cohort import CohortOptions, run_cohort
    from retinaseg.cohort_inputs import expand_scans

    scans = bench.tmp / "c_scans"
    scans.mkdir()
    for k in range(copies):
        try:
            os.link(vol, scans / f"scan_{k:03d}.vol")
        except OSError:
            shutil.copyfile(vol, scans / f"scan_{k:03d}.vol")
    local_out, dask_out = bench.tmp / "c_local", bench.tmp / "c_dask"
    cmd = bench.analyze(scans, "--out", local_out, "--no-report")
    local = bench.run(cmd, check=False)
    local_workers = max(1, (os.cpu_count() or 2) - 1)

    from dask.distributed import Client, LocalCluster

    start = time.perf_counter()
    with LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        cluster_s = time.perf_counter() - start
        with Client(cluster) as client:
            threads = sorted(set(client.run(_torch_threads).values()))
        options = CohortOptions(
            model=bench.model,
            outputs=AnalysisOutputs(report=False, eye=False),
            inference=bench.inference,
            scheduler=cluster.scheduler_address,
        )
        print(f"[bench] run_cohort(<{copies} scans>, $TMP/c_dask, scheduler=LocalCluster)", file=sys.stderr, flush=True)
        start = time.perf_counter()
        summary = run_cohort(expand_scans([scans]), dask_out, options, command=["bench_cohort.py", "dask"])
        dask_s = time.perf_counter() - start
        with Client(cluster) as client:
            dask_rss = max(client.run(_peak_rss_mib).values())

    print(f"## (c) Cohort throughput: {copies} copies of {vol.name} (hard links, distinct names), no report\n")
    print(
        "| run | processes | seconds | scans/min | s per scan | peak RSS MiB (largest process) | failed |\n|---|---|---|---|---|---|---|"
    )
    failed_local = "?" if local.rc == 0 else f"exit {local.rc}"
    if local.rc == 0:
        failed_local = str(sum(r["status"] != "done" for r in _read_table(local_out / "cohort.csv")))
    print(
        f"| local: `{bench.show(cmd)}` | network in the main process + {local_workers} worker(s) | {local.seconds:.1f} | "
        f"{60 * copies / local.seconds:.2f} | {local.seconds / copies:.1f} | {local.peak_rss_mib:.0f} | {failed_local} |"
    )
    print(
        f"| Dask: `run_cohort(..., CohortOptions(scheduler=LocalCluster(n_workers={dask_workers}, threads_per_worker=1)))` | "
        f"{dask_workers} workers (torch threads {threads}) | {dask_s:.1f} | {60 * copies / dask_s:.2f} | {dask_s / copies:.1f} | "
        f"{dask_rss:.0f} (a worker) | {summary.failed} |"
    )
    print(
        f"\nDask / local scans per minute: {local.seconds / dask_s:.2f}x. The local time includes the CLI's start, imports, "
        f"model load and `auto` timing (see (a)); Dask's excludes the cluster start ({cluster_s:.1f} s) and includes each "
        "worker's model load and `auto` timing.\n"
    )
    if local.rc == 0 and summary.done + summary.skipped == copies:
        print(f"cohort.csv equal apart from `seconds`: {_compare_tables(local_out / 'cohort.csv', dask_out / 'cohort.csv')}\n")
        sums = {"local": _stage_sums(local_out), "Dask": _stage_sums(dask_out)}
        stages = sorted({stage for values in sums.values() for stage in values})
        print("Summed stage seconds over the scans (cohort.json `per_stage_sum`; they overlap in time):\n")
        print("| run | " + " | ".join(stages) + " |\n|---|" + "---|" * len(stages))
        for name, values in sums.items():
            print(f"| {name} | " + " | ".join(f"{values.get(stage, math.nan):.1f}" for stage in stages) + " |")
        print()
    else:
        print(f"tables not compared: local exit {local.rc}, Dask {summary.done} done / {summary.failed} failed\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="a,b,c", help="which parts, e.g. a,c (default a,b,c)")
    parser.add_argument("--bscans", type=int, default=61, help="B-scans of the volume of (a) and (c) (default 61)")
    parser.add_argument("--bscans-list", default="1,11,31,61,97", help="volume sizes of (b) (default 1,11,31,61,97)")
    parser.add_argument("--copies", type=int, default=20, help="scans in the cohort of (c) (default 20)")
    parser.add_argument("--dask-workers", type=int, default=2, help="Dask worker processes of (c), 1 thread each (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="repeats of the in-process stages of (a), best counts")
    parser.add_argument("--inference", default="auto", help="--inference of every run (default auto)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"--model of every run, e.g. an .onnx file (default {DEFAULT_MODEL})"
    )
    parser.add_argument("--volume", type=Path, help="use this scan in (a) and (c) instead of the benchmark volume")
    parser.add_argument("--subject", default="06", help="Duke subject of the benchmark volumes (default 06)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the benchmark volumes (default 0)")
    parser.add_argument("--quick", action="store_true", help="smoke check: 11 B-scans, scaling over 1 and 11, 2 copies")
    args = parser.parse_args()
    if args.quick:
        args.bscans, args.bscans_list, args.copies, args.repeats = 11, "1,11", 2, 1
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"a", "b", "c"}:
        parser.error(f"--parts takes a, b, c; got {args.parts!r}")
    bscans_list = [int(n) for n in args.bscans_list.split(",")]

    print("```\npython " + " ".join(shlex.quote(a) for a in sys.argv) + "\n```\n")
    print(_machine() + "\n")
    reuse_freed_memory()  # as the CLI does, so that the stages measured in this process match its
    with tempfile.TemporaryDirectory(prefix="bench_cohort_") as tmp:
        # auto's timing is remembered on disk: start from an empty cache in the temporary folder, not the user's
        os.environ[CACHE_ENV_VAR] = str(Path(tmp, "cache"))
        bench = Bench(Path(tmp).resolve(), args.inference, args.model)
        vol = args.volume.resolve() if args.volume else None
        if "a" in parts or "c" in parts:
            vol = vol or bench.volume(args.bscans, f"{int(args.subject):02d}", args.seed)
        if "a" in parts and vol is not None:
            part_a(bench, vol, args.repeats)
        if "b" in parts:
            part_b(bench, bscans_list, f"{int(args.subject):02d}", args.seed)
        if "c" in parts and vol is not None:
            part_c(bench, vol, args.copies, args.dask_workers)
        bench.close()
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

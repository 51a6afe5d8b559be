"""Wall time of one ``retinaseg`` command under two versions of the package, the runs alternating.

    git worktree add /tmp/before HEAD~3
    python benchmarks/compare_versions.py /tmp/before/src --runs 5 -- \\
        analyze ../bench/bench_61.vol --out {out} --no-report --model duke_layers_unet_small

Each run is a fresh ``python -m retinaseg.cli`` process with ``PYTHONPATH`` set
to one version's ``src`` folder (the first argument; the second defaults to this
checkout's), every ``{out}`` in the command replaced by a new folder in a
temporary directory. Versions take turns, so load from other processes hits
both alike; the first run of each is a warm-up (file cache, ``auto``'s timing,
which a version with a cache remembers from then on in its own temporary cache
folder) and is reported apart. Prints a markdown table: median and best of the
timed runs per version, and their ratio. Exits non-zero if any run fails.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(src: Path, command: list[str], tmp: Path, tag: str, index: int) -> float:
    out = tmp / f"{tag}_out{index}"
    args = [arg.replace("{out}", str(out)) for arg in command]
    env = {**os.environ, "PYTHONPATH": str(src), "RETINASEG_CACHE_DIR": str(tmp / f"{tag}_cache")}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "retinaseg.cli", *args], check=False, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{tag} failed (exit {result.returncode}): {shlex.join(args)}\n{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="src folder of the version to compare against")
    parser.add_argument("after", type=Path, nargs="?", default=HERE.parent / "src", help="src folder (default: this checkout's)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per version after the warm-up (default 5)")
    parser.epilog = "After the options: -- and the retinaseg command, {out} standing for a fresh folder."
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not command:
        parser.error("give the command after --")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    versions = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tag, src in versions.items():
        if not (src / "retinaseg" / "cli.py").is_file():
            parser.error(f"{tag}: {src} holds no retinaseg package")
    with tempfile.TemporaryDirectory(prefix="compare_versions_") as name:
        tmp = Path(name)
        first = {tag: _run(src, command, tmp, tag, 0) for tag, src in versions.items()}
        times: dict[str, list[float]] = {tag: [] for tag in versions}
        for index in range(1, args.runs + 1):
            for tag, src in versions.items():
                times[tag].append(_run(src, command, tmp, tag, index))
    print(f"`retinaseg {shlex.join(command)}`, {args.runs} timed runs per version, alternating\n")
    print("| version | src | warm-up run, s | median, s | best, s |\n|---|---|---|---|---|")
    for tag, src in versions.items():
        print(f"| {tag} | `{src}` | {first[tag]:.2f} | {statistics.median(times[tag]):.2f} | {min(times[tag]):.2f} |")
    ratio = statistics.median(times["before"]) / statistics.median(times["after"])
    print(f"\nmedian before / after: {ratio:.2f}x")


if __name__ == "__main__":
    main()

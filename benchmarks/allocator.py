"""Segmenting a volume with glibc's default allocator settings and with ``reuse_freed_memory``, side by side.

    python benchmarks/allocator.py [--volume SCAN.vol] [--model NAME] [--runs 3]

Each run is a fresh process that reads the volume (default: the 61-B-scan
benchmark raster, ``make_bench_volume.py``, made in a temporary folder),
loads the model, then times ``segment_volume`` over all B-scans with the
inference option ``auto`` picks; with ``reuse_freed_memory()`` called first
or not. The two settings take turns; prints a markdown table of the median
and best seconds and their ratio. Linux with glibc only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

_RUN = """
import json, sys, time
from pathlib import Path
from retinaseg.allocator import reuse_freed_memory
tuned = sys.argv[1] == "reuse" and reuse_freed_memory()
from retinaseg.inference.checkpoint import load_model
from retinaseg.inference.choose import choose_inference_option
from retinaseg.inference.volume import segment_volume
from retinaseg.io.oct_files import read_oct
volume = read_oct(Path(sys.argv[2]))
model = load_model(sys.argv[3], "cpu")
option = choose_inference_option(model, volume.shape[1:]).option.name
start = time.perf_counter()
segment_volume(volume, model, progress=False, inference=option)
print(json.dumps({"seconds": time.perf_counter() - start, "option": option, "tuned": tuned}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", type=Path, help="an OCT volume (default: the benchmark raster, built here)")
    parser.add_argument("--model", default="duke_layers_unet_small", help="model name or file")
    parser.add_argument("--runs", type=int, default=3, help="runs per setting (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="allocator_") as tmp:
        volume = args.volume
        if volume is None:
            volume = Path(tmp) / "bench_61.vol"
            subprocess.run([sys.executable, str(HERE / "make_bench_volume.py"), str(volume)], check=True)
        results: dict[str, list[dict]] = {"default": [], "reuse": []}
        for _ in range(args.runs):
            for setting, runs in results.items():
                out = subprocess.run(
                    [sys.executable, "-c", _RUN, setting, str(volume), args.model], capture_output=True, text=True, check=True
                )
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"`segment_volume` of {volume.name}, model {args.model}, {args.runs} fresh processes per setting, alternating\n")
    print("| allocator | option | median, s | best, s |\n|---|---|---|---|")
    for setting, runs in results.items():
        seconds = [run["seconds"] for run in runs]
        label = "glibc defaults" if setting == "default" else f"reuse_freed_memory() (applied: {runs[0]['tuned']})"
        print(f"| {label} | {runs[0]['option']} | {statistics.median(seconds):.2f} | {min(seconds):.2f} |")
    ratio = statistics.median(r["seconds"] for r in results["default"]) / statistics.median(
        r["seconds"] for r in results["reuse"]
    )
    print(f"\nmedian default / reuse: {ratio:.2f}x")


if __name__ == "__main__":
    main()

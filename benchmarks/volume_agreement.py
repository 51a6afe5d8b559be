"""Agreement of ``retinaseg analyze`` with the segmentation stored in real scans.

For the Duke DME volumes (``duke_dme_volumes``, test subjects 06-10 by default:
the shipped model never saw them) the stored lines are grader 1's manual
layers; for the genuine Spectralis files (``heidelberg_spectralis_vol``) they
are the device's own segmentation. Prints, per scan and pooled, the mean
absolute difference per boundary (µm) and, for rasters, the mean absolute
ETDRS total-thickness difference over the sectors.

    python benchmarks/volume_agreement.py [--model NAME_OR_FILE] [--subjects 06 07 ...] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.analyze import AnalysisResult, analyze_volume
from retinaseg.conventions import DEFAULT_MODEL
from retinaseg.inference.checkpoint import load_model
from retinaseg.io.oct_files import read_oct
from retinaseg.io.paths import find_dataset


def _report(name: str, result: AnalysisResult, seconds: float, pooled: dict[str, list[float]]) -> None:
    rows = result.reference.boundary_agreement if result.reference is not None else []
    mads = {row.boundary: row.mad_um for row in rows}
    for boundary, mad in mads.items():
        pooled.setdefault(boundary, []).append(mad)
    line = f"{name:<24} {seconds:6.1f} s  " + "  ".join(f"{b} {m:5.1f}" for b, m in mads.items())
    sectors = result.raster.sector_agreement if result.raster is not None else []
    total = [abs(r.difference_um) for r in sectors if r.layer == TOTAL_RETINA and np.isfinite(r.difference_um)]
    if total:
        pooled.setdefault("ETDRS total", []).append(float(np.mean(total)))
        line += f"  | ETDRS total-thickness |diff| mean {np.mean(total):.1f} max {np.max(total):.1f}"
    if result.circle is not None and result.circle.reference is not None:
        ours, stored = result.circle.profile.sectors["global"], result.circle.reference.sectors["global"]
        line += f"  | RNFL global {ours:.0f} vs {stored:.0f} µm"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--subjects", nargs="*", default=["06", "07", "08", "09", "10"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)

    duke = find_dataset("duke_dme_volumes")
    if duke is not None:
        print(f"Duke DME volumes vs grader 1's manual layers (model {args.model}); MAD per boundary in µm")
        pooled: dict[str, list[float]] = {}
        for subject in args.subjects:
            volume = read_oct(duke / f"Subject_{subject}.vol")
            start = time.perf_counter()
            result = analyze_volume(volume, model, model_name=args.model, progress=False)
            _report(f"Subject_{subject}", result, time.perf_counter() - start, pooled)
        print("mean over subjects:      " + "  ".join(f"{k} {np.mean(v):.1f}" for k, v in pooled.items()))

    genuine = find_dataset("heidelberg_spectralis_vol")
    if genuine is not None:
        print(f"\nGenuine Spectralis files vs the device's segmentation (model {args.model}); MAD per boundary in µm")
        for path in sorted(genuine.rglob("*.vol")):
            volume = read_oct(path)
            start = time.perf_counter()
            result = analyze_volume(volume, model, model_name=args.model, progress=False)
            _report(f"{path.name} ({volume.scan_pattern_name})", result, time.perf_counter() - start, {})


if __name__ == "__main__":
    main()

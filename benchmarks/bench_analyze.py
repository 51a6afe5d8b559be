"""Time ``retinaseg analyze`` on a real volume, stage by stage.

Also times thickness maps + ETDRS grid two ways in the same run: the package's
vectorised code and a straightforward per-grid-point Python loop computing the
same numbers, and prints their ratio (machines are noisy: compare within a run).

    python benchmarks/bench_analyze.py [SCAN.vol] [--threads N] [--repeats R]

Default scan: ``duke_dme_volumes/Subject_06.vol`` from ``$RETINASEG_DATA`` or
``../shared/data``.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retinaseg.analysis.boundaries import layer_surfaces
from retinaseg.analysis.enface import enface_grid, enface_maps
from retinaseg.analysis.etdrs import ETDRS_SECTORS, etdrs_table, find_fovea
from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.analysis_outputs import write_analysis
from retinaseg.analyze import analyze_volume, layer_model
from retinaseg.inference.checkpoint import load_model
from retinaseg.inference.volume import segment_volume
from retinaseg.io.oct_files import read_oct
from retinaseg.io.paths import find_dataset


def _timed(function, repeats: int = 1):
    best, value = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def _maps_and_etdrs_vectorised(thickness: np.ndarray, positions: np.ndarray, laterality: str, centre: tuple[float, float]):
    grid = enface_grid(positions, 0.02)
    maps = enface_maps(thickness, positions, grid)
    return etdrs_table({TOTAL_RETINA: maps}, grid, centre, laterality)


def _maps_and_etdrs_loop(thickness: np.ndarray, positions: np.ndarray, laterality: str, centre: tuple[float, float]):
    """The same numbers, one grid point at a time (horizontal rasters only)."""
    grid = enface_grid(positions, 0.02)
    rows = positions[:, 0, 1]
    order = np.argsort(rows)
    sums = {s: 0.0 for s in ETDRS_SECTORS}
    counts = {s: 0 for s in ETDRS_SECTORS}
    nasal = 1.0 if laterality == "OD" else -1.0
    for y in grid.y_mm:
        for x in grid.x_mm:
            k = np.searchsorted(rows[order], y)
            if k == 0 or k == len(rows):
                if not (k < len(rows) and rows[order][k] == y):
                    continue
                k = max(k, 1)
            a, b = order[k - 1], order[k]
            values = []
            for i in (a, b):
                xs = positions[i, :, 0]
                values.append(np.interp(x, xs, thickness[i]) if xs[0] <= x <= xs[-1] else math.nan)
            t = (y - rows[a]) / (rows[b] - rows[a])
            value = (1 - t) * values[0] + t * values[1]
            if not math.isfinite(value):
                continue
            dx, dy = (x - centre[0]) * nasal, centre[1] - y
            radius = math.hypot(dx, dy)
            if radius > 3.0:
                continue
            angle = math.degrees(math.atan2(dy, dx)) % 360
            quadrant = "NSTI"[int(((angle + 45) % 360) // 90)]
            sector = "C0" if radius <= 0.5 else f"{quadrant}{1 if radius <= 1.5 else 2}"
            sums[sector] += value
            counts[sector] += 1
    return {s: sums[s] / counts[s] if counts[s] else math.nan for s in ETDRS_SECTORS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scan", nargs="?", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scan = args.scan
    if scan is None:
        root = find_dataset("duke_dme_volumes")
        if root is None:
            raise SystemExit("duke_dme_volumes not found: pass a scan or set RETINASEG_DATA")
        scan = root / "Subject_06.vol"

    results = {}
    results["read the .vol"], volume = _timed(lambda: read_oct(scan), args.repeats)
    results["load the shipped model"], model = _timed(lambda: load_model("duke_layers_unet"), args.repeats)
    results["segment all B-scans"], labels = _timed(lambda: segment_volume(volume, model, progress=False))
    layers = layer_model(model)
    invalid = np.isnan(volume.reflectance)
    results["layer surfaces (ordering, fluid, invalid columns)"], surfaces = _timed(
        lambda: layer_surfaces(labels, list(layers.layer_classes), list(layers.fluid_classes), invalid=invalid), args.repeats
    )
    total = (surfaces[:, -1] - surfaces[:, 0]) * volume.axial_um
    positions = volume.ascan_positions_mm()
    grid = enface_grid(positions, 0.02)
    fovea = find_fovea(enface_maps(total, positions, grid), grid, tuple(positions.reshape(-1, 2).mean(axis=0)))
    # off the grid nodes, so that no cell centre lies exactly on a sector edge (ties resolve by rounding)
    centre = (fovea[0] + 0.0013, fovea[1] + 0.0007)
    vectorised, table = _timed(lambda: _maps_and_etdrs_vectorised(total, positions, volume.laterality, centre), args.repeats)
    loop, looped = _timed(lambda: _maps_and_etdrs_loop(total, positions, volume.laterality, centre))
    worst = max(abs(row.mean_um - looped[row.sector]) for row in table if math.isfinite(row.mean_um))
    results["thickness map + ETDRS (vectorised)"] = vectorised
    results["thickness map + ETDRS (per-point Python loop)"] = loop
    results["whole analysis in memory (analyze_volume)"], result = _timed(lambda: analyze_volume(volume, model, progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        results["outputs + report (write_analysis)"], _ = _timed(lambda: write_analysis(result, Path(tmp) / "out"))

    n, height, width = volume.shape
    print(
        f"scan {scan.name}: {n} B-scans of {height}x{width}; torch threads {args.threads}; best of {args.repeats} where repeated"
    )
    for name, seconds in results.items():
        print(f"  {name:<52} {seconds:8.3f} s")
    print(f"  ratio loop / vectorised (maps + ETDRS): {loop / vectorised:.0f}x; largest sector difference {worst:.2e} µm")
    print(
        f"  analyze end to end (analysis + outputs): {results['whole analysis in memory (analyze_volume)'] + results['outputs + report (write_analysis)']:.1f} s"
    )


if __name__ == "__main__":
    main()

"""Speed and agreement with fp32 of every inference option, side by side in one run.

(a) Speed: each option (:data:`retinaseg.inference.options.INFERENCE_OPTIONS`;
preparation time: folding, conversion, onnxruntime's export in memory)
segments the same synthetic 496x768 batches (the size of a Spectralis
B-scan) at each batch size; s per B-scan is the best of ``--repeats`` runs,
the options taking turns so that other load hits all alike, and the ratio is
against ``fp32`` at batch 4 (the path before the options). Also times what
``auto`` costs and what it picks.

(b) Agreement: every option analyses the Duke DME volumes
(``analyze_volume``, automatic fovea, as ``retinaseg analyze``), compared
with ``fp32``: the fraction of identical class pixels, the mean absolute
difference of each layer boundary in pixels (A-scans where both found it),
the A-scans where only one found a boundary, the fovea shift in µm and the
largest ETDRS sector difference over every layer and sector in µm, once as
``retinaseg analyze`` reports it (each run's own fovea) and once with the
grid at fp32's fovea (the segmentation's share). An option passes when
every boundary's mean is within 0.5 px and every sector (own fovea) within
1 µm; only options that passed may go into
:data:`retinaseg.inference.options.VALIDATED_REDUCED_PRECISION`. Every option
sees the B-scans at full height; the rows ``+ retina rows`` are fp32 and
``auto``'s choice with the network given only the rows around the retina
after each volume's first B-scan (:mod:`retinaseg.inference.rows`,
``retinaseg analyze --retina-rows``), judged by the same rule.

    python benchmarks/inference_options.py [--subjects 01 02 ...] [--threads N] [--repeats R] [--batch-sizes 1 4]
        [--device cuda] [--options fp32 fp32_channels_last ...]

Default: all ten subjects from ``$RETINASEG_DATA`` or ``../shared/data``; ``--subjects``
with no value times the options only (part (a));
machines are noisy, compare within a run. Prints markdown.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from machine import cpu_description

from retinaseg.analysis.etdrs import etdrs_table
from retinaseg.conventions import DEFAULT_MODEL
from retinaseg.inference.checkpoint import load_model
from retinaseg.inference.choose import choose_inference_option, default_batch_size
from retinaseg.inference.options import INFERENCE_OPTIONS, prepare_model
from retinaseg.io.paths import find_dataset
from retinaseg.models.trained import TrainedModel

if TYPE_CHECKING:
    from retinaseg.analyze import AnalysisResult

BSCAN_SHAPE = (496, 768)
"""Synthetic B-scan ``(H, W)`` in pixels: a Spectralis 30° B-scan."""

MAX_MEAN_BOUNDARY_PX = 0.5
"""Largest mean absolute boundary difference from fp32 an option may have, per boundary, px."""

MAX_ETDRS_UM = 1.0
"""Largest ETDRS sector thickness difference from fp32 an option may have, any layer or sector, µm."""


def _prepare(model: TrainedModel, names: list[str]) -> tuple[dict[str, TrainedModel], dict[str, float]]:
    """``model`` prepared as each option named, and the seconds each preparation took (onnxruntime: the export)."""
    runners, seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        runners[name] = prepare_model(model, name)
        seconds[name] = time.perf_counter() - start
    return runners, seconds


def _speed(runners: dict[str, TrainedModel], batch_sizes: list[int], repeats: int) -> dict[tuple[str, int], float]:
    """Best s per B-scan of each option at each batch size on synthetic B-scans."""
    seconds: dict[tuple[str, int], float] = {}
    for batch_size in batch_sizes:
        images = torch.rand((batch_size, 1, *BSCAN_SHAPE), generator=torch.Generator().manual_seed(0))
        for runner in runners.values():  # warm-up: kernel selection, weight reordering
            runner.predict(images)
        for _ in range(repeats):
            for name, runner in runners.items():
                start = time.perf_counter()
                runner.predict(images).argmax(dim=1).cpu()
                elapsed = (time.perf_counter() - start) / batch_size
                seconds[name, batch_size] = min(seconds.get((name, batch_size), math.inf), elapsed)
    return seconds


def _speed_table(seconds: dict[tuple[str, int], float], prepare_s: dict[str, float], batch_sizes: list[int]) -> str:
    reference = seconds.get(("fp32", 4))
    lines = [
        "| option | reduced precision | preparation s | "
        + " | ".join(f"s/B-scan, batch {b}" for b in batch_sizes)
        + " | fp32 batch 4 / option |",
        "|---|---|---|" + "---|" * len(batch_sizes) + "---|",
    ]
    for name, prepared_s in prepare_s.items():
        option = INFERENCE_OPTIONS[name]
        best = min(seconds[name, b] for b in batch_sizes)
        ratio = f"{reference / best:.2f}x (best batch)" if reference else "n/a (no batch 4)"
        cells = " | ".join(f"{seconds[name, b]:.3f}" for b in batch_sizes)
        reduced = "yes" if option.reduced_precision else "no"
        lines.append(f"| {name} | {reduced} | {prepared_s:.1f} | {cells} | {ratio} |")
    return "\n".join(lines)


def _etdrs(result: AnalysisResult, fovea_xy_mm: tuple[float, float] | None = None) -> dict[tuple[str, str], float]:
    """``{(layer, sector): mean thickness in µm}`` of a raster analysis; empty for others or without a fovea.

    ``fovea_xy_mm`` centres the grid there instead of on the analysis's own fovea.
    """
    raster = result.raster
    if raster is None:
        return {}
    rows = raster.etdrs
    if fovea_xy_mm is not None:
        rows = etdrs_table(raster.maps_um, raster.grid, fovea_xy_mm, result.volume.laterality)
    return {(row.layer, row.sector): row.mean_um for row in rows}


def _largest_gap(ours: dict[tuple[str, str], float], theirs: dict[tuple[str, str], float]) -> float:
    """Largest :func:`_gap` over the sectors of either table, in µm."""
    return max((_gap(ours.get(key, math.nan), theirs.get(key, math.nan)) for key in ours.keys() | theirs.keys()), default=0.0)


def _gap(a: float, b: float) -> float:
    """``|a - b|``; 0 when neither was measured, infinite when only one was (as bad as it gets)."""
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) if math.isfinite(a - b) else math.inf


class _Agreement:
    """Differences from fp32 of one option, pooled over volumes."""

    def __init__(self) -> None:
        self.identical = 0
        self.pixels = 0
        self.boundary_sums: dict[str, float] = {}
        self.boundary_counts: dict[str, int] = {}
        self.one_sided = 0
        self.etdrs_um = 0.0
        self.etdrs_same_fovea_um = 0.0
        self.fovea_um = 0.0
        self.seconds = 0.0
        self.bscans = 0

    def add(self, ours: AnalysisResult, fp32: AnalysisResult, seconds: float) -> None:
        self.identical += int((ours.segmentation.labels == fp32.segmentation.labels).sum())
        self.pixels += ours.segmentation.labels.size
        self.seconds += seconds
        self.bscans += len(ours.segmentation.labels)
        theirs = fp32.segmentation.boundaries_by_name()
        for name, rows in ours.segmentation.boundaries_by_name().items():
            difference = np.abs(rows - theirs[name])
            seen = np.isfinite(difference)
            self.boundary_sums[name] = self.boundary_sums.get(name, 0.0) + float(difference[seen].sum())
            self.boundary_counts[name] = self.boundary_counts.get(name, 0) + int(seen.sum())
            self.one_sided += int((np.isfinite(rows) != np.isfinite(theirs[name])).sum())
        self.etdrs_um = max(self.etdrs_um, _largest_gap(_etdrs(ours), _etdrs(fp32)))
        ours_fovea, fp32_fovea = (r.raster.fovea_xy_mm if r.raster is not None else None for r in (ours, fp32))
        if fp32_fovea is not None:
            self.etdrs_same_fovea_um = max(self.etdrs_same_fovea_um, _largest_gap(_etdrs(ours, fp32_fovea), _etdrs(fp32)))
        if ours_fovea is not None and fp32_fovea is not None:
            self.fovea_um = max(self.fovea_um, math.dist(ours_fovea, fp32_fovea) * 1000)
        elif ours_fovea is not fp32_fovea:  # found by one run only
            self.fovea_um = math.inf

    def boundary_means(self) -> dict[str, float]:
        return {name: total / max(1, self.boundary_counts[name]) for name, total in self.boundary_sums.items()}

    def passes(self) -> bool:
        return max(self.boundary_means().values()) <= MAX_MEAN_BOUNDARY_PX and self.etdrs_um <= MAX_ETDRS_UM


RETINA_ROWS = " + retina rows"
"""Suffix of the agreement rows whose network sees only the rows around the retina."""


def _agreement(runners: dict[str, TrainedModel], root: Path, subjects: list[str], batch_size: int) -> dict[str, _Agreement]:
    """Every option's :class:`_Agreement` with fp32 at full height on the given Duke subjects.

    A name ending in :data:`RETINA_ROWS` runs its option with ``retina_rows``; the others at full height.
    """
    # Imported here: the speed part alone runs without the analysis stack (eyepy), e.g. on a GPU host.
    from retinaseg.analyze import analyze_volume
    from retinaseg.io.oct_files import read_oct

    rows = {name: _Agreement() for name in runners}
    for subject in subjects:
        volume = read_oct(root / f"Subject_{subject}.vol")
        results = {}
        for name, runner in runners.items():
            start = time.perf_counter()
            rows_only = name.endswith(RETINA_ROWS)
            results[name] = analyze_volume(volume, runner, batch_size=batch_size, progress=False, retina_rows=rows_only)
            rows[name].add(results[name], results["fp32"], time.perf_counter() - start)
        print(f"Subject_{subject}: analysed with {len(runners)} options", file=sys.stderr, flush=True)
    return rows


def _agreement_table(rows: dict[str, _Agreement]) -> str:
    boundaries = list(rows["fp32"].boundary_means())
    lines = [
        "| option | s/B-scan (analysis) | identical class pixels | "
        + " | ".join(f"{b} px" for b in boundaries)
        + " | boundary A-scans found by one only | max fovea shift µm | max ETDRS µm | same at fp32's fovea | passes |",
        "|---|---|---|" + "---|" * len(boundaries) + "---|---|---|---|---|",
    ]
    for name, row in rows.items():
        means = row.boundary_means()
        lines.append(
            f"| {name} | {row.seconds / row.bscans:.3f} | {row.identical / row.pixels:.5f} | "
            + " | ".join(f"{means[b]:.3f}" for b in boundaries)
            + f" | {row.one_sided} | {row.fovea_um:.0f} | {row.etdrs_um:.2f} | {row.etdrs_same_fovea_um:.2f}"
            + f" | {'yes' if row.passes() else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--subjects", nargs="*", default=[f"{k:02d}" for k in range(1, 11)])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--device", default=None, help="cpu, cuda, ...; default: retinaseg's default device")
    parser.add_argument("--options", nargs="+", choices=list(INFERENCE_OPTIONS), default=list(INFERENCE_OPTIONS))
    args = parser.parse_args()
    if "fp32" not in args.options:
        parser.error("--options: fp32 is the reference and must be one of them")
    torch.set_num_threads(args.threads)
    model = load_model(args.model, device=args.device)

    print("```\npython " + " ".join(shlex.quote(a) for a in sys.argv) + "\n```\n")
    gpu = f"; GPU: {torch.cuda.get_device_name(model.device)}" if model.device.type == "cuda" else ""
    print(f"CPU: {cpu_description()}{gpu}; PyTorch {torch.__version__}, {args.threads} threads; model {args.model}\n")
    print(f"## (a) Speed on synthetic {BSCAN_SHAPE[0]}x{BSCAN_SHAPE[1]} B-scans, best of {args.repeats}\n")
    runners, prepare_s = _prepare(model, args.options)
    print(_speed_table(_speed(runners, args.batch_sizes, args.repeats), prepare_s, args.batch_sizes))
    start = time.perf_counter()
    choice = choose_inference_option(model, BSCAN_SHAPE)
    print(f"\n`auto` chose {choice.describe()} in {time.perf_counter() - start:.1f} s\n")

    if not args.subjects:
        return
    root = find_dataset("duke_dme_volumes")
    if root is None:
        print("(b) skipped: duke_dme_volumes not found in $RETINASEG_DATA or ../shared/data")
        return
    batch_size = default_batch_size(model.device)
    print(f"## (b) Agreement with fp32 on Duke DME volumes {', '.join(args.subjects)} (batch {batch_size})\n")
    cropped = {f"{name}{RETINA_ROWS}": runners[name] for name in dict.fromkeys(["fp32", choice.option.name]) if name in runners}
    rows = _agreement({**runners, **cropped}, root, args.subjects, batch_size)
    print(
        f"\nBoundary columns: mean |difference| from fp32 in px. ETDRS: largest sector difference over every layer, each"
        f" run with its own automatic fovea (as `retinaseg analyze`), and with the grid at fp32's fovea (the segmentation"
        f" alone). Passes: every boundary <= {MAX_MEAN_BOUNDARY_PX} px and every sector <= {MAX_ETDRS_UM} µm, own fovea.\n"
    )
    print(_agreement_table(rows))


if __name__ == "__main__":
    main()

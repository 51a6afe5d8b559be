"""``retinaseg demo``: the whole pipeline on synthetic OCT B-scans, no data needed.

Generates phantom B-scans with known layers (:mod:`retinaseg.data.phantom`),
stores them as a standard retinaseg dataset, trains a small U-Net for a minute
or two on the CPU, evaluates it on held-out phantom subjects and segments
their images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from retinaseg.data.phantom import make_phantom_set
from retinaseg.errors import InputError
from retinaseg.inference.predict import predict_files
from retinaseg.io.dataset_format import write_dataset
from retinaseg.training.config import load_config
from retinaseg.training.train import train

_MARKER = ".retinaseg-demo"
_SUBJECTS = [f"phantom_{i:02d}" for i in range(1, 9)]


def demo_config(dataset_dir: Path, runs_dir: Path, minutes: float) -> dict:
    """Training config of the demo: a small U-Net on whole 144x128 phantom B-scans."""
    overrides = {
        "name": "demo_unet",
        "data.source": "retinaseg",
        "data.root": str(dataset_dir),
        "data.split.train": _SUBJECTS[:5],
        "data.split.val": _SUBJECTS[5:6],
        "data.split.test": _SUBJECTS[6:],
        "data.channels": "grey",
        "data.batch_size": 4,
        "data.augment": {"hflip": True, "brightness": 0.1, "contrast": 0.1},
        "model.options": {"depth": 4, "base_channels": 8},
        "optimizer.lr": 0.01,
        "trainer.max_epochs": 80,
        "trainer.max_time_minutes": minutes,
        "trainer.patience": 80,
        "evaluation.metric_classes": list(range(1, 8)),
        "evaluation.boundary_classes": list(range(1, 9)),
        "evaluation.fluid_classes": [9],
        "output.runs_dir": str(runs_dir),
    }
    return load_config(None, [f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}" for key, value in overrides.items()])


def run_demo(out: str | Path, minutes: float = 2.0, console: Console | None = None) -> dict:
    """Run the demo into ``out``; returns the test metrics.

    ``out`` is replaced only if an earlier demo made it; any other existing,
    non-empty folder is an error, so user results are never overwritten.
    """
    console = console or Console()
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / _MARKER).exists():
            raise InputError(out, "folder exists and was not made by the demo; choose another --out")
        console.print(f"replacing the previous demo output in {out}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).touch()

    console.rule("1/3 synthetic OCT B-scans")
    # B-scans binned 2x2 (7.74 µm axial, 46 µm lateral, 5.9 mm wide) so a CPU trains in minutes.
    phantoms = make_phantom_set(
        n_subjects=len(_SUBJECTS), bscans_per_subject=4, height=144, width=128, axial_um=7.74, lateral_um=46.0, seed=0
    )
    dataset_dir = out / "phantom_dataset"
    write_dataset(phantoms, dataset_dir)
    console.print(f"{len(phantoms)} B-scans of {len(_SUBJECTS)} phantom subjects (144x128 pixels, 7.74 µm axial) in {dataset_dir}")

    console.rule(f"2/3 training a small U-Net (at most {minutes:g} min)")
    result = train(demo_config(dataset_dir, out / "runs", minutes))

    console.rule("3/3 segmenting held-out B-scans")
    test_images = sorted((dataset_dir / "images").glob(f"{_SUBJECTS[-1]}_*.png"))
    predictions = out / "predictions"
    predict_files(result.best_checkpoint, test_images, predictions, probabilities=False)

    summary = result.test_metrics["summary"]
    console.print(f"\n[bold]Mean Dice over the 7 layers on held-out phantom subjects: {summary['mean_dice']:.3f}[/bold]")
    if summary.get("mean_boundary_mad_um") is not None:
        console.print(f"mean absolute boundary error: {summary['mean_boundary_mad_um']:.1f} µm")
    console.print(f"training run (checkpoints, metrics.csv, curves.png): {result.run_dir}")
    console.print(f"test metrics and confusion matrix: {result.run_dir / 'test'}")
    console.print(f"predictions (class maps, colour masks, overlays, legend): {predictions}")
    return result.test_metrics

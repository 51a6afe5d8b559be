"""``retinaseg demo``: the whole pipeline on synthetic OCT data, no data needed.

Generates phantom B-scans with known layers (:mod:`retinaseg.data.phantom`),
stores them as a standard retinaseg dataset, trains a small U-Net for a minute
or two on the CPU, evaluates it on held-out phantom subjects and segments
their images. Then it analyses a phantom macular volume with that model
(thickness maps, ETDRS grid, 3D surfaces, report) and compares the result
with the phantom's known layers; when the Duke DME volumes are found (see
:func:`retinaseg.io.paths.find_dataset`), it also analyses one with the
shipped model.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
from lightning.fabric.utilities.warnings import PossibleUserWarning
from rich.console import Console

from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.analysis_outputs import summary, write_analysis
from retinaseg.analyze import analyze_file, analyze_volume
from retinaseg.conventions import DUKE_BOUNDARY_NAMES, DUKE_FLUID_CLASS, DUKE_LAYER_CLASSES
from retinaseg.data.phantom import make_phantom_oct_volume, make_phantom_set
from retinaseg.experiment import run_experiment
from retinaseg.inference.checkpoint import load_model
from retinaseg.io.dataset_format import write_dataset
from retinaseg.io.output import DEMO, check_output_dir, mark_output_dir
from retinaseg.io.paths import find_dataset
from retinaseg.predict import predict_files
from retinaseg.training.config import load_config

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
        "evaluation.boundary_classes": list(DUKE_LAYER_CLASSES),
        "evaluation.fluid_classes": [DUKE_FLUID_CLASS],
        "output.runs_dir": str(runs_dir),
    }
    return load_config(
        None, [f"{key}={value!r}" if isinstance(value, str) else f"{key}={value}" for key, value in overrides.items()]
    )


def run_demo(out: str | Path, minutes: float = 2.0, console: Console | None = None) -> dict:
    """Run the demo into ``out``; returns the test metrics, volume summary and report paths.

    ``out`` is replaced only if an earlier demo made it; any other existing,
    non-empty folder is an error, so user results are never overwritten.
    """
    console = console or Console()
    out = Path(out)
    check_output_dir(out, DEMO, overwrite=True)  # only an earlier demo's folder is replaced
    if out.exists() and any(out.iterdir()):
        console.print(f"replacing the previous demo output in {out}")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    mark_output_dir(out, DEMO)

    console.rule("1/4 synthetic OCT B-scans")
    # B-scans binned 2x2 (7.74 µm axial, 46 µm lateral, 5.9 mm wide) so a CPU trains in minutes.
    phantoms = make_phantom_set(
        n_subjects=len(_SUBJECTS), bscans_per_subject=4, height=144, width=128, axial_um=7.74, lateral_um=46.0, seed=0
    )
    dataset_dir = out / "phantom_dataset"
    write_dataset(phantoms, dataset_dir)
    console.print(
        f"{len(phantoms)} B-scans of {len(_SUBJECTS)} phantom subjects (144x128 pixels, 7.74 µm axial) in {dataset_dir}"
    )

    console.rule(f"2/4 training a small U-Net (at most {minutes:g} min)")
    with warnings.catch_warnings():
        # The demo's 20 small B-scans are held in memory: worker processes would
        # only slow it down, whatever Lightning advises on a machine with many cores.
        warnings.filterwarnings(
            "ignore", message="The '(train|val)_dataloader' does not have many workers", category=PossibleUserWarning
        )
        result = run_experiment(demo_config(dataset_dir, out / "runs", minutes))

    console.rule("3/4 segmenting held-out B-scans")
    test_images = sorted((dataset_dir / "images").glob(f"{_SUBJECTS[-1]}_*.png"))
    predictions = out / "predictions"
    predict_files(result.training.best_checkpoint, test_images, predictions, probabilities=False)

    if result.test_metrics is None:  # the demo has a test split and runs in one process, so it is always tested
        raise RuntimeError("the demo run was not tested")
    scores = result.test_metrics["summary"]
    console.print(f"\n[bold]Mean Dice over the 7 layers on held-out phantom subjects: {scores['mean_dice']:.3f}[/bold]")
    if scores.get("mean_boundary_mad_um") is not None:
        console.print(f"mean absolute boundary error: {scores['mean_boundary_mad_um']:.1f} µm")
    console.print(f"training run (checkpoints, metrics.csv, curves.png): {result.training.run_dir}")
    console.print(f"test metrics and confusion matrix: {result.training.run_dir / 'test'}")
    console.print(f"predictions (class maps, colour masks, overlays, legend): {predictions}")

    console.rule("4/4 analysing a phantom macular volume")
    volume, truth = make_phantom_oct_volume(seed=1)
    reference = {name: truth.boundary_rows[:, k] for k, name in enumerate(DUKE_BOUNDARY_NAMES)}
    analysis = analyze_volume(
        volume,
        load_model(result.training.best_checkpoint),
        model_name="demo_unet",
        reference_px=reference,
        reference_name="phantom truth",
    )
    report = write_analysis(analysis, out / "volume_analysis")
    facts = summary(analysis)
    console.print(f"{volume.shape[0]} B-scans, {volume.shape[2]} A-scans each, {volume.bscan_spacing_mm()[0]:.2f} mm apart")
    console.print(
        "boundary error against the phantom's true layers (µm): "
        + ", ".join(f"{name} {'n/a' if mad is None else f'{mad:.1f}'}" for name, mad in facts["boundary_mad_um"].items())
    )
    fovea_xy_mm = None if analysis.raster is None else analysis.raster.fovea_xy_mm
    if fovea_xy_mm is not None and facts.get("total_thickness_sector_mad_um") is not None:
        error_mm = float(np.hypot(*(np.subtract(fovea_xy_mm, truth.fovea_xy_mm))))
        console.print(
            f"[bold]ETDRS {TOTAL_RETINA} thickness, mean |difference| to the truth over the 9 sectors: "
            f"{facts['total_thickness_sector_mad_um']:.1f} µm[/bold]; fovea found {error_mm * 1000:.0f} µm from the true centre"
        )
    for note in analysis.notes:
        console.print(f"note: {note}")
    console.print(f"[bold]report: {report}[/bold]")
    outputs = {"test_metrics": result.test_metrics, "volume_summary": facts, "report": report}

    duke_volumes = find_dataset("duke_dme_volumes")
    if duke_volumes is not None and (duke_volumes / "Subject_06.vol").is_file():
        console.rule("Duke DME volume found: analysing Subject_06.vol with the shipped model")
        duke_report, duke_facts = analyze_file(duke_volumes / "Subject_06.vol", out / "duke_subject_06")
        console.print(
            f"ETDRS {TOTAL_RETINA} thickness vs the manual layers, mean |difference|: {duke_facts['total_thickness_sector_mad_um']:.1f} µm"
        )
        console.print(f"[bold]report: {duke_report}[/bold]")
        outputs["duke_report"] = duke_report
    return outputs

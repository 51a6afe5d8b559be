"""``retinaseg train`` end to end: fit, training curves, test evaluation, results table.

A run lives in ``<runs_dir>/<name>/``: ``config.yaml`` (fully resolved),
``best.ckpt``, ``last.ckpt`` and ``metrics.csv`` (one row per epoch) from
:func:`retinaseg.training.train.train`; then ``curves.png`` and ``test/``
(the evaluation of ``best.ckpt`` on the test split,
:func:`retinaseg.evaluate.evaluate_model`). One row per finished run is
appended to ``<runs_dir>/results.csv``.

Training and evaluation know nothing of each other; this module, above both,
puts them in sequence.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retinaseg.evaluate import evaluate_model
from retinaseg.io.atomic import write_text_atomic
from retinaseg.report.plots import plot_training_curves
from retinaseg.training.train import TrainResult, train


@dataclass
class ExperimentResult:
    """A finished run: how training went, and the test metrics (``None`` without a test split, or in DDP's other processes)."""

    training: TrainResult
    test_metrics: dict[str, Any] | None


def run_experiment(config: dict[str, Any], resume: str | Path | None = None, overwrite: bool = False) -> ExperimentResult:
    """Train as configured, then plot, test and record the run; see the module docstring for the outputs.

    Parameters are those of :func:`retinaseg.training.train.train`; bad input
    raises :class:`~retinaseg.errors.InputError` before the run folder is touched.
    """
    training = train(config, resume=resume, overwrite=overwrite)
    if not training.is_main_process:  # DDP's other processes leave the writing to the first
        return ExperimentResult(training, None)
    run_dir = training.run_dir
    plot_training_curves(run_dir / "metrics.csv", run_dir / "curves.png")
    test_metrics = None
    if training.test_images > 0:
        test_metrics = evaluate_model(training.best_checkpoint, run_dir / "test", config=config, split="test", overwrite=True)
    append_results_row(Path(config["output"]["runs_dir"]) / "results.csv", config, training, test_metrics)
    return ExperimentResult(training, test_metrics)


def append_results_row(path: Path, config: dict[str, Any], training: TrainResult, test_metrics: dict[str, Any] | None) -> None:
    """Append one run's summary to the shared results table (header on first use; columns: the union over runs)."""
    summary = (test_metrics or {}).get("summary", {})
    row = {
        "name": config["name"],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "data": f"{config['data']['source']}:{config['data']['root']}",
        "model": config["model"]["name"],
        "model_options": json.dumps(config["model"]["options"], sort_keys=True),
        "parameters": training.parameters,
        "loss": config["loss"]["name"],
        "optimizer": f"{config['optimizer']['name']} lr={config['optimizer']['lr']}",
        "seed": config["seed"],
        "epochs": training.epochs,
        "train_minutes": round(training.train_seconds / 60, 2),
        f"best_{config['trainer']['monitor']}": round(training.best_score, 4),
        **{f"test_{k}": v for k, v in summary.items()},
    }
    rows = []
    if path.exists():
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    rows.append({k: str(v) for k, v in row.items()})
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, table.getvalue())

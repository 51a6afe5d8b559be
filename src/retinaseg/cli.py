"""The ``retinaseg`` command line.

Bad input (a corrupt file, a missing config key, an unknown model...) ends the
command with one line on stderr naming the file or key, and exit code 2.

Each command imports what it needs when it runs, so ``--help`` does not wait
for PyTorch to load.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from retinaseg.allocator import reuse_freed_memory
from retinaseg.conventions import DEFAULT_MODEL
from retinaseg.errors import InputError

if TYPE_CHECKING:
    from retinaseg.cohort_inputs import ScanEntry

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Segment retinal OCT B-scans and fundus photographs; train, evaluate and compare models.",
)
console = Console()

#: B-scan size the model table is profiled on (rows, A-scans): a Spectralis macular B-scan.
_PROFILE_BSCAN = (496, 512)


@app.command(epilog="Example: retinaseg train configs/duke_unet.yaml --set trainer.max_epochs=5 --set name=quick")
def train(
    config: Annotated[Path, typer.Argument(help="YAML config (see configs/).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: key.sub=value (repeatable).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue from this checkpoint (e.g. runs/NAME/last.ckpt).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing run folder of the same name.")] = False,
    devices: Annotated[int | None, typer.Option(help="Number of devices (processes for DDP).")] = None,
    strategy: Annotated[str | None, typer.Option(help="Lightning strategy, e.g. ddp.")] = None,
    accelerator: Annotated[str | None, typer.Option(help="cpu, gpu or auto.")] = None,
) -> None:
    """Train a model; writes runs/NAME/ and appends a row to runs/results.csv."""
    from retinaseg.experiment import run_experiment
    from retinaseg.training.config import load_config

    overrides = list(set_ or [])
    for key, value in (("devices", devices), ("strategy", strategy), ("accelerator", accelerator)):
        if value is not None:
            overrides.append(f"trainer.{key}={value}")
    result = run_experiment(load_config(config, overrides), resume=resume, overwrite=overwrite)
    training = result.training
    if not training.is_main_process:  # other DDP processes stay quiet
        return
    if result.test_metrics is not None:
        _print_summary(f"test metrics ({training.run_dir / 'test' / 'metrics.json'})", result.test_metrics["summary"])
    if result.train_metrics is not None:
        _print_summary(
            f"no validation ran: the model on its training images, where a class it never learnt shows "
            f"({training.run_dir / 'train' / 'metrics.json'})",
            result.train_metrics["summary"],
        )
    if training.precision_note is not None:
        console.print(training.precision_note)
    console.print(
        f"run folder: {training.run_dir}  {'best' if training.validated else 'last epoch (no validation)'} checkpoint: "
        f"{training.best_checkpoint}  "
        f"({training.train_seconds / 60:.1f} min, {training.precision})"
    )


_MODEL_HELP = (
    "Shipped model name, a .pt weight file (retinaseg export-model), a .ckpt checkpoint (retinaseg train)"
    " or an .onnx file (retinaseg export-onnx)."
)


@app.command(
    epilog="Example: retinaseg evaluate --model runs/duke_unet/best.ckpt --config configs/duke_unet.yaml --split test --out eval/duke"
)
def evaluate(
    model: Annotated[str, typer.Option("--model", "--checkpoint", help=_MODEL_HELP)],
    out: Annotated[Path, typer.Option(help="Output folder for metrics.json and figures.")],
    config: Annotated[Path | None, typer.Option(help="Config naming the data; default: the checkpoint's own.")] = None,
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: key.sub=value.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    panels: Annotated[
        bool, typer.Option("--panels/--no-panels", help="Write panels/<sample id>.png per image (skip for huge splits).")
    ] = True,
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Binary tasks: foreground probability threshold, a number in (0, 1) or 'val' (the best F1 on the "
            "validation images, chosen before the split is scored); default: evaluation.threshold of the config "
            "(the model's own without --config/--set)."
        ),
    ] = None,
) -> None:
    """Score a model: per-class Dice/IoU/precision/recall/HD95, binary F1/AUC, boundary errors."""
    from retinaseg.evaluate import evaluate_model, parse_threshold
    from retinaseg.training.config import load_config

    chosen = parse_threshold(threshold)
    resolved = load_config(config, set_) if config is not None or set_ else None
    metrics = evaluate_model(model, out, config=resolved, split=split, overwrite=overwrite, panels=panels, threshold=chosen)
    _print_summary(f"{split} metrics ({out / 'metrics.json'})", metrics["summary"])


@app.command(epilog="Example: retinaseg predict --model runs/chase_unet/best.ckpt photos/ --out predictions --probabilities")
def predict(
    model: Annotated[str, typer.Option("--model", "--checkpoint", help=_MODEL_HELP)],
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders of images.")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    probabilities: Annotated[bool, typer.Option(help="Also write class probabilities.")] = False,
    roi_size: Annotated[tuple[int, int] | None, typer.Option(help="Sliding-window size H W for large images.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Segment images: class-index PNGs, coloured masks, overlays, optional probabilities."""
    from retinaseg.predict import predict_files

    written = predict_files(model, list(inputs), out, probabilities=probabilities, roi_size=roi_size, overwrite=overwrite)
    console.print(f"segmented {len(written)} image(s) into {out}")


@app.command(epilog="Example: retinaseg convert chase_db1 ../shared/data/chase_db1 --out data/chase")
def convert(
    source: Annotated[
        str, typer.Argument(help="Source format: duke_npy, duke_mat, chase_db1, drive, folder, vgg_json, retinaseg.")
    ],
    root: Annotated[Path, typer.Argument(help="File or folder to read.")],
    out: Annotated[Path, typer.Option(help="Folder for the standard dataset (images/, labels/, dataset.json).")],
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", help="Source option key=value, the value in YAML, e.g. class_names=[background, vessel] (repeatable)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Convert a dataset into retinaseg's standard on-disk layout."""
    from retinaseg.io.dataset_format import write_dataset
    from retinaseg.io.output import DATASET, check_output_dir
    from retinaseg.io.sources import load_source, parse_options

    options = parse_options(option or [])
    check_output_dir(out, DATASET, overwrite=overwrite, inputs=[root])
    sample_set = load_source(source, root, **options)
    write_dataset(sample_set, out, overwrite=overwrite, inputs=[root])
    console.print(
        f"wrote {len(sample_set)} samples of {len(sample_set.subjects())} subjects, classes {sample_set.class_names}, to {out}"
    )


@app.command(
    "export-model",
    epilog="Example: retinaseg export-model runs/chase/best.ckpt chase.pt --set evaluation.threshold=0.88 "
    "--set 'evaluation.flips=[horizontal]'",
)
def export_model(
    checkpoint: Annotated[
        str, typer.Argument(help="Checkpoint written by retinaseg train, or a .pt weight file or shipped model name.")
    ],
    out: Annotated[Path, typer.Argument(help="New .pt weight file (usable as --model).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="How the model is applied, stored with it: evaluation.KEY=VALUE for threshold, flips "
            "(test-time: horizontal, vertical), roi_size, overlap, sw_batch_size.",
        ),
    ] = None,
) -> None:
    """Keep only what inference needs from a checkpoint: config, classes, half-precision weights."""
    from retinaseg.inference.checkpoint import export_weights
    from retinaseg.training.config import operating_settings

    written = export_weights(checkpoint, out, operating_settings(set_ or []))
    console.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")


@app.command(
    epilog="Example: retinaseg ensemble duke_layers_unet duke_layers_unet_small --out duke_pair.pt",
)
def ensemble(
    models: Annotated[list[str], typer.Argument(help="2-8 checkpoints, .pt weight files or shipped model names.")],
    out: Annotated[Path, typer.Option(help="New .pt weight file (usable as --model).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="How the ensemble is applied, as for export-model; default: as the first model is, at threshold 0.5.",
        ),
    ] = None,
) -> None:
    """Join models of the same classes and input into one that averages their logits (half-precision weights)."""
    from retinaseg.inference.checkpoint import export_ensemble
    from retinaseg.training.config import operating_settings

    written = export_ensemble(models, out, operating_settings(set_ or []))
    console.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB, {len(models)} networks)")


@app.command("export-onnx", epilog="Example: retinaseg export-onnx duke_layers_unet duke_layers_unet.onnx")
def export_onnx(
    model: Annotated[str, typer.Argument(help=_MODEL_HELP)],
    out: Annotated[Path, typer.Argument(help="New .onnx file (usable as --model; ONNX Runtime on the CPU).")],
) -> None:
    """Write a model as ONNX (dynamic batch and size, class names and preprocessing in its metadata), checked against PyTorch."""
    from retinaseg.inference.onnx_runtime import export_onnx as write_onnx

    written, difference = write_onnx(model, out)
    console.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB; logits within {difference:.1e} of PyTorch's)")


@app.command(epilog="Example: retinaseg models --measure ; shipped models: retinaseg models --pretrained")
def models(
    measure: Annotated[bool, typer.Option(help="Also measure CPU latency per B-scan (builds and runs every model).")] = False,
    pretrained: Annotated[
        bool, typer.Option(help="List the shipped, trained models instead: task, classes, input, test metrics.")
    ] = False,
) -> None:
    """List the registered networks: family, parameters, multiply-accumulates per B-scan, input-size constraint."""
    if pretrained:
        _list_pretrained()
        return
    import torch

    from retinaseg.models import build_model, count_parameters, list_models
    from retinaseg.models.profile import cpu_latency_s, multiply_accumulates

    height, width = _PROFILE_BSCAN
    table = Table(title=f"retinaseg models (1 input channel, 10 classes, default options; a {height}x{width} B-scan)")
    columns = ["name", "family", "parameters", "GMACs", "H, W multiple of", "description"]
    for column in [*columns[:5], *(["CPU s"] if measure else [])]:
        table.add_column(column, no_wrap=True)  # names and numbers are never cut; the description wraps
    table.add_column(columns[5])
    for spec in list_models():
        with torch.device("meta"):  # counts need no memory
            parameters = count_parameters(build_model(spec.name, 1, 10))
        macs = multiply_accumulates(spec.name, 1, 10, height, width)
        latency = [f"{cpu_latency_s(spec.name, 1, 10, height, width):.2f}"] if measure else []
        multiple = str(spec.size_multiple(spec.defaults))
        table.add_row(spec.name, spec.family, f"{parameters:,}", f"{macs / 1e9:.1f}", multiple, *latency, spec.description)
    console.print(table)


def _list_pretrained() -> None:
    from retinaseg.io.model_files import model_card_facts, pretrained_models
    from retinaseg.models.trained import TrainedModel

    table = Table(title="shipped models (load offline by name: --model NAME; model card: NAME.md beside the weights)")
    table.add_column("name", no_wrap=True)
    for column in ("task", "classes", "input", "test metrics"):
        table.add_column(column)
    for name, path in pretrained_models().items():
        facts, model = model_card_facts(name), TrainedModel.from_pretrained(path)
        metrics = ", ".join(f"{key} {value}" for key, value in facts["test"]["metrics"].items())
        size = f"{model.preprocessing.in_channels}-channel, {path.stat().st_size / 1e6:.1f} MB"
        table.add_row(
            name, facts["task"], ", ".join(model.class_names), f"{facts['input']} ({size})", f"{facts['test']['data']}: {metrics}"
        )
    console.print(table)


@app.command(epilog="Example: retinaseg analyze scans/Subject_06.vol --out analysis/Subject_06")
def analyze(
    out: Annotated[
        Path, typer.Option(help="Output folder: one scan's outputs, or for many scans cohort.csv, cohort.json and scans/<id>/.")
    ],
    scans: Annotated[
        list[Path] | None,
        typer.Argument(
            help="OCT scans: Heidelberg .vol/.e2e/HEYEX .xml, eyepy .eye, folders of B-scan images, "
            "or folders holding any of these (each is a scan)."
        ),
    ] = None,
    list_file: Annotated[
        Path | None,
        typer.Option(
            "--list", help="CSV list of scans: a path column; optional id, fovea_x_mm, fovea_y_mm, laterality, scale columns."
        ),
    ] = None,
    model: Annotated[str, typer.Option(help=_MODEL_HELP)] = DEFAULT_MODEL,
    fovea: Annotated[
        tuple[float, float] | None,
        typer.Option(help="One scan: ETDRS centre X Y in mm on the SLO image (default: found automatically)."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="B-scans per forward pass (default: 1 on a CPU, 4 on a GPU).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    inference: Annotated[
        str,
        typer.Option(
            help="How the network runs: auto (the fastest validated option, timed once on this machine), fp32, "
            "fp32_channels_last, fp32_folded_channels_last, bf16_channels_last, bf16_autocast, onnxruntime "
            "(an .onnx --model always runs so)."
        ),
    ] = "auto",
    retina_rows: Annotated[
        bool,
        typer.Option(
            "--retina-rows",
            help="After a scan's first B-scan, give the network only the rows around the retina plus 64 rows: "
            "1.3-1.6x faster on a CPU, but results change (ETDRS sectors up to 19 µm on the Duke volumes; "
            "BENCHMARKS.md).",
        ),
    ] = False,
    scale_x_mm: Annotated[float | None, typer.Option(help="Image folders: A-scan spacing in mm.")] = None,
    scale_z_mm: Annotated[float | None, typer.Option(help="Image folders: axial pixel size in mm.")] = None,
    bscan_spacing_mm: Annotated[float | None, typer.Option(help="Image folders: distance between B-scans in mm.")] = None,
    laterality: Annotated[str | None, typer.Option(help="Image folders: OD or OS.")] = None,
    report: Annotated[bool, typer.Option(help="Write report.html and figures/ per scan.")] = True,
    eye: Annotated[
        bool | None, typer.Option(help="Write the eyepy .eye volume per scan (default: for one scan, not for a cohort).")
    ] = None,
    nifti: Annotated[bool, typer.Option(help="Write bscans.nii.gz and labels.nii.gz (voxel spacing in the affine).")] = False,
    workers: Annotated[int | None, typer.Option(help="Cohorts: worker processes for reading and measuring.")] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Cohorts: address of a Dask distributed scheduler to run the scans on.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing output folder; for a cohort, recompute scans already done.")
    ] = False,
) -> None:
    """Segment OCT scans and measure them: layer thickness maps, ETDRS grid, RNFL circle profile, device agreement.

    Many scans (several paths, a folder of scans, or --list) make a cohort: one
    folder per scan and one row per scan in cohort.csv. A scan that fails gets
    a row with its error and the others go on (exit code 1 at the end); running
    the same command again skips the scans already done. Examples:
    retinaseg analyze scans/ --out cohort --no-report;
    retinaseg analyze --list scans.csv --out cohort.
    """
    from retinaseg.analysis_outputs import AnalysisOutputs
    from retinaseg.cohort_inputs import expand_scans, read_scan_list

    read_options = {
        key: value
        for key, value in (
            ("scale_x_mm", scale_x_mm),
            ("scale_z_mm", scale_z_mm),
            ("bscan_spacing_mm", bscan_spacing_mm),
            ("laterality", laterality),
        )
        if value is not None
    }
    given = list(scans or [])
    if list_file is not None:
        if given:
            raise InputError("--list", "give scans either as arguments or in a list, not both")
        entries = [
            dataclasses.replace(entry, read_options={**read_options, **entry.read_options}) for entry in read_scan_list(list_file)
        ]
    elif given:
        entries = expand_scans(given, exclude=out, read_options=read_options)
    else:
        raise InputError("scans", "name the scans to analyse (files or folders), or give --list scans.csv")
    single = list_file is None and scheduler is None and workers is None and len(entries) == 1 and entries[0].path == given[0]
    settings: dict[str, Any] = {
        "model": model,
        "device": device,
        "batch_size": batch_size,
        "inference": inference,
        "retina_rows": retina_rows,
        "overwrite": overwrite,
        "outputs": AnalysisOutputs(report=report, eye=single if eye is None else eye, nifti=nifti),
    }
    if single:
        _analyze_one(given[0], out, fovea, read_options, settings)
    elif fovea is not None:
        raise InputError("--fovea", "applies to one scan; for a cohort give fovea_x_mm, fovea_y_mm columns in --list")
    else:
        _analyze_cohort(entries, out, workers, scheduler, settings)


def _analyze_cohort(
    entries: list[ScanEntry], out: Path, workers: int | None, scheduler: str | None, settings: dict[str, Any]
) -> None:
    import os
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from retinaseg.cohort import CohortOptions, run_cohort

    # the network takes this process's cores; one worker per further core reads and measures
    workers = max(1, (os.cpu_count() or 2) - 1) if workers is None else workers
    options = CohortOptions(**settings, workers=workers, scheduler=scheduler)
    columns = (TextColumn("analysing scans"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"))
    with Progress(*columns, TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("scans", total=len(entries), rate="")
        start: list[float] = []  # time and count of the first report: scans skipped as done do not count to the rate

        def progress(finished: int, total: int) -> None:
            start[:] = start or [time.perf_counter(), finished]
            elapsed = time.perf_counter() - start[0]
            rate = (finished - start[1]) / elapsed if elapsed > 0 else 0.0
            bar.update(task, completed=finished, rate=f"{rate:.2f} scans/s" if rate else "")

        summary = run_cohort(entries, out, options, progress=progress, command=sys.argv)
    console.print(
        f"{summary.done} scans analysed, {summary.skipped} already done, {summary.failed} failed "
        f"in {summary.seconds:.1f} s: {summary.table}"
    )
    if summary.failed:
        print(
            f"retinaseg: {summary.failed} of {len(entries)} scans failed: see the error column of {summary.table}",
            file=sys.stderr,
        )
        raise typer.Exit(1)


def _analyze_one(
    scan: Path, out: Path, fovea: tuple[float, float] | None, read_options: dict[str, Any], settings: dict[str, Any]
) -> None:
    from retinaseg.analyze import analyze_file

    report, facts = analyze_file(scan, out, fovea_xy_mm=fovea, read_options=read_options, **settings)
    shown = {key: value for key, value in facts.items() if isinstance(value, (int, float, str)) and key != "source"}
    for key, value in (facts.get("boundary_mad_um") or {}).items():
        shown[f"MAD vs {facts['reference']}: {key} (µm)"] = value
    _print_summary(f"analysis of {scan}", shown)
    console.print(f"report: {report}" if settings["outputs"].report else f"outputs: {out}")


@app.command(epilog="Example: retinaseg demo --out demo_output")
def demo(
    out: Annotated[Path, typer.Option(help="Folder for everything the demo makes.")] = Path("demo_output"),
    minutes: Annotated[float, typer.Option(help="Training time budget in minutes.")] = 2.0,
) -> None:
    """Run the whole pipeline on synthetic OCT B-scans: data, training, evaluation, prediction."""
    if not 0 < minutes < float("inf"):  # before the demo makes its folder
        raise InputError("--minutes", f"must be a finite number > 0, got {minutes}")
    from retinaseg.demo import run_demo

    run_demo(out, minutes=minutes, console=console)


def _print_summary(title: str, summary: dict) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


def _printable(text: str) -> str:
    """One line, with the bytes of file names that are not valid UTF-8 shown as ``\\xff`` escapes."""
    return " ".join(text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").split())


def main() -> None:
    """Run the command line: bad input -> one line on stderr, exit code 2 (the program itself is :func:`run`)."""
    # File names that are not valid UTF-8 reach us as surrogate escapes; printing
    # one must never crash a command that has done its work.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        app()
    except InputError as err:
        print(f"retinaseg: error: {_printable(str(err))}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """The ``retinaseg`` program: :func:`main` in a process of its own, set up for large arrays.

    Not for calling from another program (tests call :func:`main`): it
    changes how the whole process allocates and frees memory.
    """
    reuse_freed_memory()  # before the first large array
    try:
        main()
    finally:
        # Interpreter shutdown would garbage-collect every object still alive (PyTorch's and
        # the model's: 0.3-0.4 s on 2 cores); the memory goes back with the process anyway.
        gc.freeze()


if __name__ == "__main__":
    run()

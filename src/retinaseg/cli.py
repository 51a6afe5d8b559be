"""The ``retinaseg`` command line.

Bad input (a corrupt file, a missing config key, an unknown model...) ends the
command with one line on stderr naming the file or key, and exit code 2.

Each command imports what it needs when it runs, so ``--help`` does not wait
for PyTorch to load.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from retinaseg.conventions import DEFAULT_MODEL
from retinaseg.errors import InputError

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
    console.print(
        f"run folder: {training.run_dir}  best checkpoint: {training.best_checkpoint}  ({training.train_seconds / 60:.1f} min)"
    )


_MODEL_HELP = "Shipped model name, a .pt weight file (retinaseg export-model) or a .ckpt checkpoint (retinaseg train)."


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
) -> None:
    """Score a model: per-class Dice/IoU/precision/recall/HD95, binary F1/AUC, boundary errors."""
    from retinaseg.evaluate import evaluate_model
    from retinaseg.training.config import load_config

    resolved = load_config(config, set_) if config is not None or set_ else None
    metrics = evaluate_model(model, out, config=resolved, split=split, overwrite=overwrite, panels=panels)
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


@app.command("export-model", epilog="Example: retinaseg export-model runs/duke_unet/best.ckpt duke_layers_unet.pt")
def export_model(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint written by retinaseg train.")],
    out: Annotated[Path, typer.Argument(help="New .pt weight file (usable as --model).")],
) -> None:
    """Keep only what inference needs from a checkpoint: config, classes, half-precision weights."""
    from retinaseg.inference.checkpoint import export_weights

    written = export_weights(checkpoint, out)
    console.print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB)")


@app.command(epilog="Example: retinaseg models --measure")
def models(
    measure: Annotated[bool, typer.Option(help="Also measure CPU latency per B-scan (builds and runs every model).")] = False,
) -> None:
    """List the registered networks: family, parameters, multiply-accumulates per B-scan, input-size constraint."""
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


@app.command(epilog="Example: retinaseg analyze scans/Subject_06.vol --out analysis/Subject_06")
def analyze(
    scan: Annotated[
        Path, typer.Argument(help="OCT scan: Heidelberg .vol/.e2e/HEYEX .xml, eyepy .eye, or a folder of B-scan images.")
    ],
    out: Annotated[Path, typer.Option(help="Output folder (report.html, etdrs.csv, thickness_maps.npz, boundaries.npz, .eye).")],
    model: Annotated[str, typer.Option(help=_MODEL_HELP)] = DEFAULT_MODEL,
    fovea: Annotated[
        tuple[float, float] | None, typer.Option(help="ETDRS centre X Y in mm on the SLO image (default: found automatically).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="B-scans per forward pass.")] = 4,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available).")] = None,
    scale_x_mm: Annotated[float | None, typer.Option(help="Image folders: A-scan spacing in mm.")] = None,
    scale_z_mm: Annotated[float | None, typer.Option(help="Image folders: axial pixel size in mm.")] = None,
    bscan_spacing_mm: Annotated[float | None, typer.Option(help="Image folders: distance between B-scans in mm.")] = None,
    laterality: Annotated[str | None, typer.Option(help="Image folders: OD or OS.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
) -> None:
    """Segment an OCT scan and measure it: layer thickness maps, ETDRS grid, RNFL circle profile, device agreement."""
    from retinaseg.analyze import analyze_file

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
    report, facts = analyze_file(
        scan,
        out,
        model=model,
        fovea_xy_mm=fovea,
        device=device,
        batch_size=batch_size,
        overwrite=overwrite,
        read_options=read_options,
    )
    shown = {key: value for key, value in facts.items() if isinstance(value, (int, float, str)) and key != "source"}
    for key, value in (facts.get("boundary_mad_um") or {}).items():
        shown[f"MAD vs {facts['reference']}: {key} (µm)"] = value
    _print_summary(f"analysis of {scan}", shown)
    console.print(f"report: {report}")


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
    """Console-script entry point: bad input -> one line on stderr, exit code 2."""
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


if __name__ == "__main__":
    main()

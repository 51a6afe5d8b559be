"""Imports follow the data flow: io -> data -> models -> training | inference -> analysis -> report -> top level.

A module may import modules of its own package and of lower layers, never of
a higher layer or of a sibling package on its own layer (``training`` and
``inference`` know nothing of each other, nor do ``data`` and ``metrics``).
The shared vocabulary (errors, conventions, data types) sits with ``io`` at
the bottom, so every module may import it. Imports under ``if TYPE_CHECKING:``
are exempt: they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "retinaseg"

PACKAGE_LAYERS = {
    "io": 0,
    "data": 1,
    "metrics": 1,
    "models": 2,
    "training": 3,
    "inference": 3,
    "analysis": 4,
    "report": 5,
}
"""Layer of each subpackage; the top-level modules (cli, analyze, demo, evaluate, ...) form the top layer."""

SHARED_MODULES = (
    "retinaseg",
    "retinaseg.conventions",
    "retinaseg.errors",
    "retinaseg.numeric",
    "retinaseg.types",
    "retinaseg.volume",
)
"""Top-level modules of the bottom layer: the vocabulary every layer speaks."""

TOP_LAYER = max(PACKAGE_LAYERS.values()) + 1


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def group_of(module: str) -> tuple[int, str]:
    """``(layer, group)``: modules may import their own group and any lower layer."""
    if module in SHARED_MODULES:
        return 0, "io"
    parts = module.split(".")
    if len(parts) == 2 and not (SRC / parts[1]).is_dir():
        return TOP_LAYER, "top level"
    if parts[1] not in PACKAGE_LAYERS:
        raise AssertionError(f"package retinaseg.{parts[1]} has no layer in PACKAGE_LAYERS; give it one")
    return PACKAGE_LAYERS[parts[1]], parts[1]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every retinaseg module that ``path`` imports at run time, lazily or not."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "retinaseg")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "retinaseg":
            for alias in node.names:
                # ``from retinaseg.io import records`` imports the module retinaseg.io.records.
                candidate = f"{node.module}.{alias.name}"
                is_module = (SRC.parent / Path(*candidate.split("."))).with_suffix(".py").is_file()
                found.append((node.lineno, candidate if is_module else node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return found


def layering_violations() -> list[str]:
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        importer = module_name(path)
        layer, group = group_of(importer)
        for line, imported in imported_modules(path):
            imported_layer, imported_group = group_of(imported)
            if imported_group != group and imported_layer >= layer:
                violations.append(
                    f"{path.relative_to(SRC.parent)}:{line}: {importer} ({group}) imports {imported} ({imported_group})"
                )
    return violations


def test_no_module_imports_upwards_or_sideways() -> None:
    violations = layering_violations()
    assert not violations, "imports against the data flow:\n" + "\n".join(violations)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from retinaseg.training.module import SegmentationModule\n", ["retinaseg.training.module"]),
        ("import retinaseg.report.plots as plots\n", ["retinaseg.report.plots"]),
        ("from retinaseg.io import records\n", ["retinaseg.io.records"]),
        ("def f():\n    from retinaseg.analysis.boundaries import boundary_mad\n", ["retinaseg.analysis.boundaries"]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from retinaseg.analyze import AnalysisResult\n", []),
    ],
    ids=["from", "import", "submodule", "lazy", "type-checking"],
)
def test_the_checker_sees_every_kind_of_import(source: str, expected: list[str], tmp_path: Path) -> None:
    path = tmp_path / "example.py"
    path.write_text(source)
    assert [module for _, module in imported_modules(path)] == expected


def test_a_training_module_importing_inference_is_a_violation() -> None:
    training, inference = group_of("retinaseg.training.module"), group_of("retinaseg.inference.checkpoint")
    assert training[0] == inference[0] and training[1] != inference[1]
    assert group_of("retinaseg.experiment")[0] > group_of("retinaseg.report.plots")[0]


def _loaded_after(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """Names of the modules starting with one of ``prefixes`` once ``code`` has run in a fresh interpreter."""
    probe = f"{code}import sys\nprint(sorted(name for name in sys.modules if name.startswith({prefixes!r})))\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def test_loading_and_applying_a_model_needs_no_lightning() -> None:
    """Inference, evaluation, prediction and analysis load no Lightning: they never build the training module."""
    code = (
        "import torch\n"
        "import retinaseg.analyze, retinaseg.evaluate, retinaseg.predict\n"
        "from retinaseg.inference.checkpoint import load_model\n"
        "from retinaseg.inference.volume import segment_volume\n"
        "load_model('duke_layers_unet', 'cpu').predict(torch.zeros(1, 1, 40, 30))\n"
    )
    lightning = ("lightning", "pytorch_lightning", "retinaseg.training.module", "retinaseg.training.train")
    assert _loaded_after(code, lightning) == []


def test_analysing_with_a_unet_imports_no_monai() -> None:
    """Importing MONAI imports all of it (seconds); the U-Nets ``analyze`` runs are built without it."""
    code = (
        "import torch\n"
        "import retinaseg.analyze, retinaseg.analysis_outputs, retinaseg.cohort, retinaseg.cohort_inputs\n"
        "from retinaseg.inference.checkpoint import load_model\n"
        "from retinaseg.inference.volume import segment_volume\n"
        "for name in ('duke_layers_unet', 'duke_layers_unet_small', 'duke_layers_unet_boundary', 'chase_vessels_unet'):\n"
        "    load_model(name, 'cpu').predict(torch.zeros(1, 1, 40, 30))\n"
    )
    assert _loaded_after(code, ("monai",)) == []

"""Loading a model never executes code from the file: crafted pickles are refused with one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from retinaseg.errors import InputError
from retinaseg.inference.checkpoint import load_model
from retinaseg.io.images import write_image_atomic
from retinaseg.io.torch_files import read_torch_file
from retinaseg.models.trained import WEIGHTS_FORMAT

RunCli = Callable[..., tuple[int, str, str]]


class _CreatesAFile:
    """Unpickling this object opens (creates) ``marker``: a stand-in for any code a file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def _crafted(path: Path, marker: Path) -> Path:
    """A file shaped like our weight files (``.pt``) or checkpoints (``.ckpt``), with the payload in place of the config."""
    if path.suffix == ".pt":
        payload = {"format": WEIGHTS_FORMAT, "metadata": _CreatesAFile(marker), "state_dict": {"w": torch.zeros(1)}}
    else:
        payload = {
            "hyper_parameters": {"config": _CreatesAFile(marker), "class_names": ["a", "b"]},
            "state_dict": {"w": torch.zeros(1)},
        }
    torch.save(payload, path)
    return path


def test_the_payload_is_real(tmp_path: Path) -> None:
    """Unrestricted unpickling of the crafted file does run its code, so the tests below mean something."""
    marker = tmp_path / "ran.txt"
    torch.load(_crafted(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("suffix", [".ckpt", ".pt"])
def test_loading_a_crafted_file_runs_nothing(suffix: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    evil = _crafted(tmp_path / f"evil{suffix}", marker)
    with pytest.raises(InputError, match="could run code") as error:
        load_model(evil)
    assert error.value.where == str(evil) and not marker.exists()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "bscan.png"
    write_image_atomic(path, np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    return path


@pytest.mark.parametrize(
    "command",
    [
        lambda evil, image, out: ["predict", "--model", evil, image, "--out", out],
        lambda evil, image, out: ["evaluate", "--checkpoint", evil, "--out", out],
        lambda evil, image, out: [
            "analyze",
            image.parent,
            "--model",
            evil,
            "--out",
            out,
            "--scale-x-mm",
            "0.01",
            "--scale-z-mm",
            "0.004",
            "--bscan-spacing-mm",
            "0.1",
            "--laterality",
            "OD",
        ],
        lambda evil, image, out: ["export-model", evil, out / "exported.pt"],
        lambda evil, image, out: ["ensemble", "duke_layers_unet_small", evil, "--out", out / "pair.pt"],
    ],
    ids=["predict", "evaluate", "analyze", "export-model", "ensemble"],
)
@pytest.mark.parametrize("suffix", [".ckpt", ".pt"])
def test_every_command_refuses_a_crafted_model(
    command: Callable, suffix: str, image: Path, tmp_path: Path, run_cli: RunCli
) -> None:
    marker = tmp_path / "ran.txt"
    (tmp_path / "models").mkdir()
    evil = _crafted(tmp_path / "models" / f"evil{suffix}", marker)
    out = tmp_path / "out"
    code, _, stderr = run_cli(*command(evil, image, out))
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(evil) in lines[0], stderr
    assert not marker.exists() and not out.exists()


def test_foreign_and_damaged_files_are_named_not_trusted(tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.pt"
    zeros.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="not a PyTorch zip archive"):
        read_torch_file(zeros)
    tensor_only = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(InputError, match="holds a Tensor, not a dict"):
        read_torch_file(tensor_only)


def test_a_file_describing_a_huge_network_is_refused_before_allocating(tmp_path: Path) -> None:
    """Its config asks for billions of parameters while it holds a few bytes of weights."""
    small = load_model("duke_layers_unet")
    path = small.save_pretrained(tmp_path / "small.pt")
    payload = torch.load(path, weights_only=True)
    metadata = json.loads(payload["metadata"])
    metadata["config"]["model"]["options"]["base_channels"] = 1_000_000
    payload["metadata"] = json.dumps(metadata)
    torch.save(payload, tmp_path / "huge.pt")
    # Built for real, this network would need terabytes; the refusal comes from its shapes alone.
    with pytest.raises(InputError, match="weights do not fit the network the file describes"):
        load_model(tmp_path / "huge.pt", "cpu")

"""Which registered networks export to ONNX and compute the same logits under ONNX Runtime.

Every network of the registry, default options, 1 input channel, 10 classes,
random weights (seed 0), goes through what ``retinaseg export-onnx`` does:
the PyTorch exporter with dynamic batch, height and width
(:func:`retinaseg.inference.onnx_runtime.onnx_graph`), then ONNX Runtime on
an input of another size than the traced one, compared with PyTorch
(:func:`~retinaseg.inference.onnx_runtime.check_agreement`: at most 1e-3).

    python benchmarks/onnx_export.py [--threads 1]

Prints a markdown table: exported or not (with the first line of the
exporter's or the check's error), the largest logit difference, seconds.
"""

from __future__ import annotations

import argparse
import time

import torch

from retinaseg.conventions import DUKE_CLASS_NAMES
from retinaseg.data.preprocess import Preprocessing
from retinaseg.inference.onnx_runtime import OnnxNetwork, check_agreement, onnx_graph
from retinaseg.models import list_models
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| network | exports and agrees | largest logit difference, or the error | seconds |\n|---|---|---|---|")
    for spec in list_models():
        config = load_config(None, ["name=onnx", "data.source=retinaseg", "data.root=unused", f"model.name={spec.name}"])
        torch.manual_seed(0)
        model = TrainedModel.from_config(config, DUKE_CLASS_NAMES, "multiclass", Preprocessing(channels="grey")).eval()
        start = time.perf_counter()
        try:
            cell, ok = f"{check_agreement(model, OnnxNetwork(onnx_graph(model))):.1e}", "yes"
        except Exception as err:  # noqa: BLE001 - the table reports each network's failure and goes on
            cell, ok = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}", "no"
        print(f"| {spec.name} | {ok} | {cell} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()

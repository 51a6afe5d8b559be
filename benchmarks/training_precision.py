"""Training step time in float32 and in bf16 mixed precision, side by side (what ``trainer.precision`` chooses between).

One optimizer step = forward, the config's loss, backward and the
optimizer's update, on random batches of the config's patch size and batch
size (the real step of ``retinaseg train`` without data loading), for the
config's network. Each variant runs ``--warmup`` steps, then the variants
take turns ``--steps`` times and the best time per step counts (machines
are noisy: compare within a run).

- ``32-true``: float32;
- ``bf16-mixed``: the forward pass and loss under ``torch.autocast(..., bfloat16)``,
  as Lightning's ``bf16-mixed`` does; weights and updates stay float32;
- each also with weights and batches in channels-last memory layout (the
  layout that made inference faster, BENCHMARKS "Inference options").

    python benchmarks/training_precision.py configs/duke_unet.yaml [--steps 5] [--threads 2]

Prints the CPU (AVX-512 BF16 / AMX flags) and a markdown table.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from machine import cpu_description

from retinaseg.data.preprocess import Preprocessing
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config
from retinaseg.training.losses import build_loss
from retinaseg.training.precision import step_seconds

#: name: (bf16 autocast, channels-last memory layout)
VARIANTS: dict[str, tuple[bool, bool]] = {
    "32-true": (False, False),
    "bf16-mixed": (True, False),
    "32-true, channels-last": (False, True),
    "bf16-mixed, channels-last": (True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--classes", type=int, default=10, help="classes of the random targets (default 10, Duke's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    data = config["data"]
    height, width = data["patch_size"]
    preprocessing = Preprocessing(channels=data["channels"])
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(data["batch_size"], preprocessing.in_channels, height, width, generator=generator)
    targets = torch.randint(0, args.classes, (data["batch_size"], height, width), generator=generator)
    loss_fn = build_loss(config["loss"]["name"], config["loss"]["class_weights"])
    runs = {}
    for name in VARIANTS:
        torch.manual_seed(0)
        model = TrainedModel.from_config(config, [str(k) for k in range(args.classes)], "multiclass", preprocessing)
        network = model.network.train()
        if VARIANTS[name][1]:
            network = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        runs[name] = (network, torch.optim.AdamW(network.parameters(), lr=1e-4))

    def step(name: str) -> float:
        bf16, channels_last = VARIANTS[name]
        return step_seconds(*runs[name], loss_fn, images, targets, bf16=bf16, channels_last=channels_last)

    for name in VARIANTS:
        for _ in range(args.warmup):
            step(name)
    best = dict.fromkeys(VARIANTS, math.inf)
    for _ in range(args.steps):
        for name in VARIANTS:
            best[name] = min(best[name], step(name))

    print(f"```\npython benchmarks/training_precision.py {args.config} --steps {args.steps} --threads {args.threads}\n```\n")
    print(
        f"CPU: {cpu_description()}; PyTorch {torch.__version__}, {args.threads} threads; {config['model']['name']} "
        f"{config['model']['options']}, batch {data['batch_size']} x {height}x{width}, loss {config['loss']['name']}\n"
    )
    print("| precision | s per optimizer step (best) | images/s | 32-true / this |\n|---|---|---|---|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds:.3f} | {data['batch_size'] / seconds:.2f} | {best['32-true'] / seconds:.2f}x |")


if __name__ == "__main__":
    main()

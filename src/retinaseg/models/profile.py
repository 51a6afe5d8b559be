"""What a registered network costs: parameters, multiply-accumulates, CPU latency."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from retinaseg.models.registry import build_model, get_model_spec


def _padded(side: int, multiple: int) -> int:
    return math.ceil(side / multiple) * multiple


def multiply_accumulates(
    name: str, in_channels: int, num_classes: int, height: int, width: int, options: dict[str, Any] | None = None
) -> int:
    """Multiply-accumulates of one forward pass on a ``height x width`` image (padded to the size multiple).

    Counted on PyTorch's ``meta`` device: no memory and no arithmetic, so any
    model is profiled in milliseconds. Convolutions and matrix products are
    counted (``FlopCounterMode``; one MAC = two FLOPs); element-wise work is not.
    """
    spec = get_model_spec(name)
    multiple = spec.size_multiple(spec.resolve(options))
    with torch.device("meta"):
        model = build_model(name, in_channels, num_classes, options).eval()
    # A few builders cannot work on the meta device and build on the CPU anyway (SwinUNETR).
    device = next(model.parameters()).device
    image = torch.zeros(1, in_channels, _padded(height, multiple), _padded(width, multiple), device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(image)
    return counter.get_total_flops() // 2


def cpu_latency_s(
    name: str,
    in_channels: int,
    num_classes: int,
    height: int,
    width: int,
    options: dict[str, Any] | None = None,
    repeats: int = 3,
) -> float:
    """Best-of-``repeats`` wall time in seconds of one forward pass on the CPU (after one warm-up pass)."""
    spec = get_model_spec(name)
    multiple = spec.size_multiple(spec.resolve(options))
    model = build_model(name, in_channels, num_classes, options).eval()
    image = torch.rand(1, in_channels, _padded(height, multiple), _padded(width, multiple))
    timings = []
    with torch.no_grad():
        model(image)
        for _ in range(repeats):
            started = time.perf_counter()
            model(image)
            timings.append(time.perf_counter() - started)
    return min(timings)

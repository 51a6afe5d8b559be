"""Training precision on a CPU: float32 or bf16 mixed precision, whichever steps faster here.

Whether bf16 autocast speeds up a CPU's training step is not told by its
flags: with AVX-512 BF16 and no AMX, one 2-core Intel machine stepped the
Duke U-Net 0.75x as fast in bf16-mixed as in float32, a 2-core AMD EPYC with
the same flags 1.80x as fast (BENCHMARKS.md, "Training step: precision and
memory layout"). So ``trainer.precision: auto`` on a CPU times a few optimizer
steps of the run's own network, loss and batch shape in both, and trains in
bf16-mixed only when it is clearly faster (:data:`MIN_SPEEDUP`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

CpuPrecision = Literal["32-true", "bf16-mixed"]

MIN_SPEEDUP = 1.2
"""bf16-mixed is chosen when a float32 step takes at least this many times as long (it rounds activations)."""

MIN_STEP_SECONDS = 0.05
"""Float32 steps shorter than this are not timed against bf16: too noisy to compare, too short to matter."""


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``auto`` chose on this CPU: the best measured seconds per optimizer step, or why it did not compare."""

    precision: CpuPrecision
    seconds_32: float = math.nan
    seconds_bf16: float = math.nan
    reason: str | None = None

    def describe(self) -> str:
        """One line for the training log."""
        if self.reason is not None:
            return f"trainer.precision auto: {self.precision} ({self.reason})"
        ratio = self.seconds_32 / self.seconds_bf16
        return (
            f"trainer.precision auto: {self.precision} (a bf16-mixed step takes {self.seconds_bf16:.3f} s, "
            f"float32 {self.seconds_32:.3f} s: {ratio:.2f}x)"
        )


def cpu_has_bf16() -> bool:
    """Whether PyTorch's oneDNN runs bfloat16 on this CPU (x86: AVX-512 or newer; fast only on some of them)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def step_seconds(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    bf16: bool,
    channels_last: bool = False,
) -> float:
    """Seconds of one optimizer step on a CPU: forward, ``loss``, backward, ``optimizer``'s update.

    ``bf16``: forward and loss under ``torch.autocast("cpu", torch.bfloat16)``,
    as Lightning's ``bf16-mixed`` runs them; weights and updates stay float32.
    ``channels_last``: the batch in that layout (the network's own layout is
    the caller's). The network is changed (it is trained); time a copy.
    """
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
        value = loss(network(images), targets)
    value.float().backward()
    optimizer.step()
    return time.perf_counter() - start


def choose_cpu_precision(
    network: torch.nn.Module,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batch_shape: tuple[int, int, int, int],
    num_classes: int,
    *,
    channels_last: bool = False,
    steps: int = 3,
) -> PrecisionChoice:
    """``32-true`` or ``bf16-mixed`` for training ``network`` on this CPU, by timing both.

    Parameters
    ----------
    network
        The network to train; timed as a copy, so its weights and batch-norm
        statistics are left as they are.
    loss
        The training loss, ``loss(logits, targets)``.
    batch_shape
        ``(B, C, H, W)`` of a training batch (random values are timed).
    num_classes
        Classes of the random targets.
    channels_last
        Time the steps in channels-last layout, as ``trainer.channels_last`` trains.
    steps
        Steps timed per precision, taking turns, after two warm-up steps in
        float32 and one in bf16-mixed; the best of each counts.

    Returns
    -------
    PrecisionChoice
        ``32-true`` without timing where PyTorch has no bfloat16 for the CPU
        (:func:`cpu_has_bf16`), and without comparing when a float32 warm-up
        step is shorter than :data:`MIN_STEP_SECONDS` or a bf16-mixed step fails; else
        ``bf16-mixed`` if its best step is :data:`MIN_SPEEDUP` times as fast.
    """
    if not cpu_has_bf16():
        return PrecisionChoice("32-true", reason="no bfloat16 support for this CPU in PyTorch")
    # The global random state is restored, so a seeded run trains the same whether or not it was timed.
    with torch.random.fork_rng(devices=[]):
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(batch_shape, generator=generator)
        targets = torch.randint(0, num_classes, (batch_shape[0], *batch_shape[2:]), generator=generator)
        copies = {bf16: copy.deepcopy(network).train() for bf16 in (False, True)}
        if channels_last:
            for net in copies.values():
                net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        optimizers = {bf16: torch.optim.AdamW(net.parameters(), lr=1e-4) for bf16, net in copies.items()}

        def timed(bf16: bool) -> float:
            return step_seconds(copies[bf16], optimizers[bf16], loss, images, targets, bf16=bf16, channels_last=channels_last)

        timed(False)  # warm-ups: the first steps also allocate
        warm_32 = timed(False)
        if warm_32 < MIN_STEP_SECONDS:
            return PrecisionChoice("32-true", seconds_32=warm_32, reason=f"float32 steps of {warm_32:.3f} s: not worth timing")
        try:
            timed(True)
        except (RuntimeError, NotImplementedError) as err:  # an operation without a bfloat16 kernel on this CPU
            return PrecisionChoice(
                "32-true", reason=f"a bf16-mixed step failed: {(str(err).splitlines() or [type(err).__name__])[0]}"
            )
        best = {False: math.inf, True: math.inf}
        for _ in range(steps):
            for bf16 in (False, True):
                best[bf16] = min(best[bf16], timed(bf16))
    precision: CpuPrecision = "bf16-mixed" if best[False] >= MIN_SPEEDUP * best[True] else "32-true"
    return PrecisionChoice(precision, seconds_32=best[False], seconds_bf16=best[True])

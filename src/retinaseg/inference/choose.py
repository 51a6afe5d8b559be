"""Choose the fastest allowed inference option on the machine at hand, and the batch size.

Which option is fastest depends on the CPU or GPU (AMX, AVX-512 BF16, tensor
cores), the thread count and the image size, so it is measured, not guessed:
:func:`choose_inference_option` runs each candidate on synthetic images of
the real size and keeps the fastest. The choice is cached per process, so a
cohort pays for it once, and on disk (:mod:`~retinaseg.inference.choice_cache`),
so later runs on the same machine skip the timing.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from retinaseg.inference.choice_cache import choice_key, recall_choice, remember_choice
from retinaseg.inference.onnx_runtime import OnnxNetwork
from retinaseg.inference.options import (
    AUTO,
    INFERENCE_OPTIONS,
    ONNXRUNTIME,
    TORCH,
    VALIDATED_REDUCED_PRECISION,
    InferenceOption,
    OptimizedNetwork,
    inference_option,
    prepare_model,
)
from retinaseg.models.trained import TrainedModel

CPU_BATCH_SIZE = 1
"""B-scans per forward pass on a CPU: one at a time ran about 1.4x faster per B-scan than 4 on 2 cores.

Convolutions parallelise within an image already, and one 496x768 B-scan's
activations fit the caches better than four. ``benchmarks/inference_options.py``
times both (BENCHMARKS.md).
"""

GPU_BATCH_SIZE = 4
"""B-scans per forward pass on a GPU (as before the options existed; not measured)."""


@dataclass(frozen=True)
class InferenceChoice:
    """The option :func:`choose_inference_option` picked, and what it measured.

    Attributes
    ----------
    option
        The fastest candidate.
    seconds_per_image
        Best time per image of each candidate, in s, by option name.
    batch_size
        Images per forward pass in the timing.
    remembered
        The times are an earlier process's on this machine, read from the cache.
    """

    option: InferenceOption
    seconds_per_image: dict[str, float]
    batch_size: int
    remembered: bool = False

    def describe(self) -> str:
        """One line for logs, e.g. ``"fp32_channels_last (s per image at batch 1: fp32 0.412, fp32_channels_last 0.205)"``."""
        times = ", ".join(f"{name} {seconds:.3f}" for name, seconds in self.seconds_per_image.items())
        earlier = ", timed by an earlier run" if self.remembered else ""
        return f"{self.option.name} (s per image at batch {self.batch_size}: {times}{earlier})"


# Keyed weakly by network: a network garbage-collected and another one allocated at its address never share a choice.
_CHOICES: weakref.WeakKeyDictionary[nn.Module, dict[tuple, InferenceChoice]] = weakref.WeakKeyDictionary()


def default_batch_size(device: torch.device) -> int:
    """Images per forward pass on ``device``: :data:`CPU_BATCH_SIZE` or :data:`GPU_BATCH_SIZE`."""
    return CPU_BATCH_SIZE if device.type == "cpu" else GPU_BATCH_SIZE


def allowed_options(device: torch.device) -> tuple[str, ...]:
    """Options ``auto`` may choose for a PyTorch model on ``device``.

    Every float32 PyTorch one, and the validated reduced-precision ones the
    device runs. Not ``onnxruntime``: exporting in memory costs more than it
    saves on one volume (an ``.onnx`` model runs as ``onnxruntime`` anyway).
    """
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    return tuple(
        name
        for name, option in INFERENCE_OPTIONS.items()
        if option.runtime == TORCH and (not option.reduced_precision or (name in VALIDATED_REDUCED_PRECISION and bf16_ok))
    )


TIMING_PIXELS = 1 << 17
"""The options are timed on a strip of the images' height and at most this many pixels.

What decides is their relative speed, which a strip of the real height shows
as well as the whole B-scan; timing whole 496x768 B-scans cost 6-8 s per
process on a busy 2-core machine, a quarter of an 11-B-scan analysis.
"""


def timing_shape(image_shape: tuple[int, int]) -> tuple[int, int]:
    """``(H, w)``: the images' height and a width that keeps the strip within :data:`TIMING_PIXELS` (at least 64)."""
    height, width = image_shape
    return height, min(width, max(64, TIMING_PIXELS // max(1, height)))


def choose_inference_option(
    model: TrainedModel,
    image_shape: tuple[int, int],
    *,
    batch_size: int | None = None,
    candidates: Sequence[str] | None = None,
    repeats: int = 2,
) -> InferenceChoice:
    """The fastest of ``candidates`` for ``model`` on the device it is on, by timing.

    Each candidate (:func:`~retinaseg.inference.options.prepare_model`)
    segments one batch of random strips (:func:`timing_shape`) once to warm
    up (kernel selection, weight reordering), then ``repeats`` times, the
    candidates taking turns so that load from other processes hits all
    alike; the best time counts. The result is cached per network, image
    shape, batch size, device, thread count and candidates, in this process
    and on disk (:mod:`~retinaseg.inference.choice_cache`: a choice timed by
    an earlier process on the same machine for the same architecture is
    reused without timing).

    Parameters
    ----------
    model
        A trained model in evaluation mode (not prepared); runs where its network is.
    image_shape
        ``(H, W)`` of the images to segment, in pixels (before any resize of
        the model's preprocessing).
    batch_size
        Images per forward pass; default: :func:`default_batch_size`.
    candidates
        Option names to time; default: :func:`allowed_options` (reduced
        precision only where validated), or ``onnxruntime`` without timing
        for a model run by ONNX Runtime. Naming others opts into them.
    repeats
        Timed runs per candidate.

    Returns
    -------
    InferenceChoice
        The fastest candidate and every candidate's time per image,
        estimated from the strip's time by the ratio of pixels.

    Raises
    ------
    InputError
        An unknown candidate name.
    """
    device = model.device
    batch_size = default_batch_size(device) if batch_size is None else max(1, int(batch_size))
    if isinstance(model.network, OnnxNetwork) and candidates is None:  # an ONNX model has one way to run
        return InferenceChoice(INFERENCE_OPTIONS[ONNXRUNTIME], {}, batch_size)
    names = tuple(candidates) if candidates is not None else allowed_options(device)
    options = [inference_option(name) for name in names]
    key = (tuple(image_shape), batch_size, str(device), torch.get_num_threads(), names)
    cached = _CHOICES.setdefault(model.network, {})
    if key not in cached and len(options) == 1:  # nothing to choose between
        cached[key] = InferenceChoice(options[0], {}, batch_size)
    if key not in cached:
        stored_as = choice_key(model, image_shape, batch_size, device, names)
        remembered = recall_choice(stored_as)
        if remembered is not None and remembered["option"] in names:
            option = inference_option(remembered["option"])
            cached[key] = InferenceChoice(option, remembered["seconds_per_image"], batch_size, remembered=True)
    if key not in cached:
        timed_shape = timing_shape(image_shape)
        images = torch.rand(
            (batch_size, model.preprocessing.in_channels, *timed_shape), generator=torch.Generator().manual_seed(0)
        )
        prepared = [prepare_model(model, option) for option in options]
        for runner in prepared:
            _segment(runner, images)
        best = [math.inf] * len(prepared)
        for _ in range(repeats):
            for k, runner in enumerate(prepared):
                start = time.perf_counter()
                _segment(runner, images)
                best[k] = min(best[k], time.perf_counter() - start)
        fastest = min(range(len(options)), key=best.__getitem__)
        scale = (image_shape[0] * image_shape[1]) / (timed_shape[0] * timed_shape[1]) / batch_size
        seconds = {option.name: t * scale for option, t in zip(options, best)}
        cached[key] = InferenceChoice(options[fastest], seconds, batch_size)
        remember_choice(stored_as, options[fastest].name, seconds)
    return cached[key]


def model_for_inference(
    model: TrainedModel, inference: str, image_shape: tuple[int, int], batch_size: int
) -> tuple[TrainedModel, InferenceOption]:
    """``model`` prepared as ``inference`` says (:data:`~retinaseg.inference.options.AUTO` or an option name), and the option.

    ``auto`` chooses with :func:`choose_inference_option` for images of
    ``image_shape`` at ``batch_size``; a model prepared already
    (:func:`~retinaseg.inference.options.prepare_model`) runs as prepared, an
    ONNX model as ``onnxruntime``.

    Raises
    ------
    InputError
        An unknown option name.
    """
    if inference == AUTO and isinstance(model.network, OptimizedNetwork):
        return model, model.network.option
    if inference == AUTO:
        option = choose_inference_option(model, image_shape, batch_size=batch_size).option
    else:
        option = inference_option(inference)
    return prepare_model(model, option), option


def _segment(model: TrainedModel, images: torch.Tensor) -> None:
    """What segmenting a batch costs: logits, class map, back on the CPU (which waits for a GPU to finish)."""
    model.predict(images).argmax(dim=1).to(torch.uint8).cpu()

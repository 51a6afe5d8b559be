"""Ways to run a trained network: numeric precision and memory layout (:data:`INFERENCE_OPTIONS`).

``fp32``
    The network as trained: float32, channels-first (NCHW). The reference.
``fp32_channels_last``
    float32 with activations and weights channels-last (NHWC), the layout
    oneDNN's CPU convolutions and cuDNN's tensor cores are fastest in. Same
    arithmetic in another order: logits equal up to float32 rounding.
``bf16_channels_last``
    Batch norm folded into the convolutions (:mod:`retinaseg.inference.fold`),
    then weights and activations bfloat16, channels-last. Fast on CPUs with
    AMX or AVX-512 BF16 and on GPUs; logits carry bfloat16 rounding (8-bit
    mantissa), so class maps differ from ``fp32`` near class edges.
``bf16_autocast``
    float32 weights, PyTorch autocast running convolutions in bfloat16: the
    usual choice on GPUs; rounding as ``bf16_channels_last``.

Reduced-precision options change results; ``auto``
(:func:`~retinaseg.inference.choose.choose_inference_option`) only picks those
named in :data:`VALIDATED_REDUCED_PRECISION`. :func:`prepare_model` gives a
model that runs one option without changing the caller's model.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import nn

from retinaseg.errors import InputError, unknown_name
from retinaseg.inference.fold import fold_batch_norm
from retinaseg.models.trained import TrainedModel

AUTO = "auto"
"""Inference setting that times the allowed options and takes the fastest."""


@dataclass(frozen=True)
class InferenceOption:
    """One way to run a network (the module docstring describes each).

    Attributes
    ----------
    name
        Key in :data:`INFERENCE_OPTIONS`.
    channels_last
        Weights and input in channels-last memory layout.
    weights_dtype
        dtype of weights and input; anything but float32 folds batch norm first.
    autocast_dtype
        dtype PyTorch autocast runs eligible operations in, or ``None``: no autocast.
    """

    name: str
    channels_last: bool = False
    weights_dtype: torch.dtype = torch.float32
    autocast_dtype: torch.dtype | None = None

    @property
    def reduced_precision(self) -> bool:
        """Whether any arithmetic runs below float32, so that results may differ from ``fp32``."""
        return self.weights_dtype != torch.float32 or self.autocast_dtype is not None


INFERENCE_OPTIONS: dict[str, InferenceOption] = {
    option.name: option
    for option in (
        InferenceOption("fp32"),
        InferenceOption("fp32_channels_last", channels_last=True),
        InferenceOption("bf16_channels_last", channels_last=True, weights_dtype=torch.bfloat16),
        InferenceOption("bf16_autocast", autocast_dtype=torch.bfloat16),
    )
}
"""Every inference option by name."""

VALIDATED_REDUCED_PRECISION: frozenset[str] = frozenset()
"""Reduced-precision options that ``auto`` may choose.

An option belongs here only after ``benchmarks/inference_options.py`` found
it within 0.5 px mean boundary difference and 1 µm ETDRS sector difference of
``fp32`` on the Duke volumes, with the run recorded in BENCHMARKS.md. None has
been recorded yet; they can still be named explicitly.
"""


def inference_option(name: str) -> InferenceOption:
    """The option called ``name``.

    Raises
    ------
    InputError
        ``name`` is not in :data:`INFERENCE_OPTIONS` (with the closest name, if any).
    """
    if name not in INFERENCE_OPTIONS:
        raise InputError("inference", unknown_name("inference option", name, [AUTO, *INFERENCE_OPTIONS]))
    return INFERENCE_OPTIONS[name]


class OptimizedNetwork(nn.Module):
    """A network run as one :class:`InferenceOption`: float32 channels-first in, float32 logits out.

    Parameters
    ----------
    network
        The network, already converted to the option's dtype and layout.
    option
        How it runs.
    """

    def __init__(self, network: nn.Module, option: InferenceOption) -> None:
        super().__init__()
        self.network = network
        self.option = option

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, K, h, w)`` float32 logits of ``(B, C, h, w)`` float32 input."""
        layout = torch.channels_last if self.option.channels_last else torch.preserve_format
        # For fp32 this returns ``images`` itself: the reference path stays exactly the trained network's.
        images = images.to(dtype=self.option.weights_dtype, memory_format=layout)
        autocast = self.option.autocast_dtype
        with torch.autocast(images.device.type, dtype=autocast) if autocast is not None else contextlib.nullcontext():
            logits = self.network(images)
        return logits.float()


def prepare_model(model: TrainedModel, option: InferenceOption | str) -> TrainedModel:
    """``model`` set up to run as ``option``, for inference only.

    The result shares ``model``'s settings (preprocessing, class names,
    evaluation) and its :meth:`~retinaseg.models.trained.TrainedModel.predict`
    works as ``model``'s. Its network is an :class:`OptimizedNetwork` around
    ``model``'s own network for the channels-first float32 options, else
    around a converted copy (a few MB for the shipped models); ``model``
    itself is never changed. Do not train or save the result.

    Parameters
    ----------
    model
        A trained model in evaluation mode, not itself prepared.
    option
        An :class:`InferenceOption` or its name.

    Raises
    ------
    InputError
        An unknown option name.
    TypeError
        ``model`` was prepared already: prepare the original.
    """
    if isinstance(model.network, OptimizedNetwork):
        raise TypeError(f"the model runs as {model.network.option.name!r} already; prepare the original model")
    option = inference_option(option) if isinstance(option, str) else option
    network = model.network
    if option.channels_last or option.weights_dtype != torch.float32:
        network = copy.deepcopy(network)
        if option.weights_dtype != torch.float32:
            # Folding in float32 before the cast rounds once, where a bfloat16 batch norm would round twice more.
            fold_batch_norm(network)
        layout = torch.channels_last if option.channels_last else torch.preserve_format
        # Module.to takes memory_format (documented), its type stubs do not list it.
        network.to(dtype=option.weights_dtype, memory_format=layout)  # type: ignore[call-overload]
    prepared = copy.copy(model)
    prepared.network = OptimizedNetwork(network, option)
    return prepared

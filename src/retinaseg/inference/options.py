"""Ways to run a trained network: numeric precision and memory layout (:data:`INFERENCE_OPTIONS`).

``fp32``
    The network as trained: float32, channels-first (NCHW). The reference.
``fp32_channels_last``
    float32 with activations and weights channels-last (NHWC), the layout
    oneDNN's CPU convolutions and cuDNN's tensor cores are fastest in. Same
    arithmetic in another order: logits equal up to float32 rounding.
``fp32_folded_channels_last``
    ``fp32_channels_last`` with each batch norm folded into the convolution
    before it (:mod:`retinaseg.inference.fold`): one pass over the
    activations less per layer. Still float32: logits differ from ``fp32``
    by float32 rounding (about 1e-5 for the shipped U-Net).
``bf16_channels_last``
    Batch norm folded as above, then weights and activations bfloat16, channels-last. Fast on CPUs with
    AMX or AVX-512 BF16 and on GPUs; logits carry bfloat16 rounding (8-bit
    mantissa), so class maps differ from ``fp32`` near class edges.
``bf16_autocast``
    float32 weights, PyTorch autocast running convolutions in bfloat16: the
    usual choice on GPUs; rounding as ``bf16_channels_last``.
``onnxruntime``
    The network exported to ONNX and run by ONNX Runtime on the CPU
    (:mod:`retinaseg.inference.onnx_runtime`), float32 with its graph
    optimisations (operator fusion, its own memory layouts): logits equal up to
    float32 rounding. The only option of a model loaded from an ``.onnx``
    file. A PyTorch model is exported in memory first, which takes seconds
    (about 9 s for the shipped U-Net), so ``auto`` never picks it for one:
    export once with ``retinaseg export-onnx`` and pass the ``.onnx`` file.

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
from retinaseg.inference.onnx_runtime import OnnxNetwork, onnx_model
from retinaseg.models.trained import TrainedModel

AUTO = "auto"
"""Inference setting that times the allowed options and takes the fastest."""

TORCH = "torch"
"""The runtime of every option but :data:`ONNXRUNTIME`."""

ONNXRUNTIME = "onnxruntime"
"""The option (and runtime) of networks run by ONNX Runtime."""


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
        dtype of weights and input.
    fold
        Fold batch norm into the convolutions first (always for reduced-precision weights:
        folding in float32 before the cast rounds once, where a bfloat16 batch norm would
        round twice more).
    autocast_dtype
        dtype PyTorch autocast runs eligible operations in, or ``None``: no autocast.
    runtime
        :data:`TORCH` or :data:`ONNXRUNTIME` (then the other attributes are unused).
    """

    name: str
    channels_last: bool = False
    weights_dtype: torch.dtype = torch.float32
    fold: bool = False
    autocast_dtype: torch.dtype | None = None
    runtime: str = TORCH

    @property
    def reduced_precision(self) -> bool:
        """Whether any arithmetic runs below float32, so that results may differ from ``fp32``."""
        return self.weights_dtype != torch.float32 or self.autocast_dtype is not None


INFERENCE_OPTIONS: dict[str, InferenceOption] = {
    option.name: option
    for option in (
        InferenceOption("fp32"),
        InferenceOption("fp32_channels_last", channels_last=True),
        InferenceOption("fp32_folded_channels_last", channels_last=True, fold=True),
        InferenceOption("bf16_channels_last", channels_last=True, weights_dtype=torch.bfloat16, fold=True),
        InferenceOption("bf16_autocast", autocast_dtype=torch.bfloat16),
        InferenceOption(ONNXRUNTIME, runtime=ONNXRUNTIME),
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
    around a converted copy (a few MB for the shipped models); for
    ``onnxruntime`` an :class:`~retinaseg.inference.onnx_runtime.OnnxNetwork`
    (exported once per network and process; an ONNX model is returned as it
    is). ``model`` itself is never changed. Do not train or save the result.

    Parameters
    ----------
    model
        A trained model in evaluation mode, not itself prepared.
    option
        An :class:`InferenceOption` or its name.

    Raises
    ------
    InputError
        An unknown option name, or an ONNX model asked to run as another
        option than ``onnxruntime``.
    TypeError
        ``model`` was prepared already: prepare the original.
    """
    if isinstance(model.network, OptimizedNetwork):
        raise TypeError(f"the model runs as {model.network.option.name!r} already; prepare the original model")
    option = inference_option(option) if isinstance(option, str) else option
    if isinstance(model.network, OnnxNetwork):  # loaded from an .onnx file, or prepared as onnxruntime before
        if option.runtime != ONNXRUNTIME:
            raise InputError("inference", f"a network run by ONNX Runtime runs as {ONNXRUNTIME!r} only, not {option.name!r}")
        return model
    if option.runtime == ONNXRUNTIME:
        return onnx_model(model)
    network = model.network
    if option.channels_last or option.fold or option.weights_dtype != torch.float32:
        network = copy.deepcopy(network)
        if option.fold:
            fold_batch_norm(network)
        layout = torch.channels_last if option.channels_last else torch.preserve_format
        # Module.to takes memory_format (documented), its type stubs do not list it.
        network.to(dtype=option.weights_dtype, memory_format=layout)  # type: ignore[call-overload]
    prepared = copy.copy(model)
    prepared.network = OptimizedNetwork(network, option)
    return prepared

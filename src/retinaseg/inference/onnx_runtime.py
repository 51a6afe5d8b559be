"""Run a trained network with ONNX Runtime: export (:func:`export_onnx`), load (:func:`load_onnx_model`).

An exported file is a standard ONNX graph (opset :data:`OPSET`) with
dynamic batch, height and width, so other runtimes and languages can use it
too. Its ``metadata_props`` carry what the ``.pt`` weight files carry
beside the weights (class names, task, preprocessing, training config) as
JSON under :data:`METADATA_KEY`, so ``--model FILE.onnx`` works wherever a
``.pt`` does. Reading one never runs code from it: ONNX Runtime executes its
built-in operators only, and the graph is handed to it as bytes, so no
external data file next to it is read.

ONNX Runtime runs on the CPU here (the ``onnxruntime`` package is the CPU
build); the optional extra ``retinaseg[onnx]`` installs it with the
exporter's packages (``onnx``, ``onnxscript``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError, describe_exception
from retinaseg.io.atomic import atomic_path
from retinaseg.io.limits import check_regular_file
from retinaseg.io.output import check_output_file
from retinaseg.models.trained import TrainedModel

OPSET = 18
"""ONNX operator set of exported files (the first the PyTorch exporter fully supports)."""

FORMAT = "retinaseg-onnx-1"
"""``metadata_props`` entry :data:`FORMAT_KEY` of the files :func:`export_onnx` writes."""

FORMAT_KEY = "retinaseg_format"
METADATA_KEY = "retinaseg_metadata"
"""``metadata_props`` key of :meth:`TrainedModel.metadata` as JSON."""

MAX_ONNX_BYTES = 2**31
"""Largest ONNX file read: protobuf's limit for one message, and far above any segmentation network here."""

_INSTALL = "pip install 'retinaseg[onnx]'"

_EXPORTER_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir")


def _onnxruntime() -> Any:
    """The ``onnxruntime`` module, or a one-line error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise InputError("onnxruntime", f"not installed; ONNX models need it: {_INSTALL}") from None
    return onnxruntime


class OnnxNetwork(nn.Module):
    """A network run by an ONNX Runtime session on the CPU: ``(B, C, h, w)`` float32 in, ``(B, K, h, w)`` logits out.

    It has no PyTorch parameters; :meth:`TrainedModel.predict` pads, windows
    and resizes around it as around any network.

    Parameters
    ----------
    graph
        The serialized ONNX model. The session runs one operator on as many
        threads as PyTorch uses (``torch.get_num_threads()``), so
        thread settings (OMP_NUM_THREADS, cohort workers) apply to both runtimes alike.
    """

    def __init__(self, graph: bytes) -> None:
        super().__init__()
        ort = _onnxruntime()
        settings = ort.SessionOptions()
        settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        settings.intra_op_num_threads = torch.get_num_threads()
        settings.inter_op_num_threads = 1
        # Fatal only: a failing run raises an exception, which becomes retinaseg's one-line error; ORT's
        # own multi-line error log before it would break that rule, its warnings are not the user's concern.
        settings.log_severity_level = 4
        self.session = ort.InferenceSession(graph, settings, providers=["CPUExecutionProvider"])
        self.input_name: str = self.session.get_inputs()[0].name

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``images`` (moved to the CPU as float32), as a CPU tensor."""
        array = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def metadata(self) -> dict[str, str]:
        """The graph's ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)


def onnx_graph(model: TrainedModel) -> bytes:
    """``model``'s network as a serialized ONNX graph with dynamic batch, height and width, and the model's metadata.

    The PyTorch exporter (``torch.onnx.export``, ``dynamo=True``) traces a
    float32 copy of the network on the CPU; height and width stay free
    multiples of the model's size multiple. Takes seconds (about 9 s for
    the shipped 2-M-parameter U-Net on one core).

    Raises
    ------
    InputError
        The exporter's packages are missing.
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it; import it here for a clear message)
    except ImportError:
        raise InputError("onnx", f"not installed; exporting to ONNX needs it: {_INSTALL}") from None
    network = copy.deepcopy(model.network).to("cpu", torch.float32).eval()
    multiple = model.size_multiple
    example = torch.zeros(2, model.preprocessing.in_channels, 4 * multiple, 4 * multiple)
    dims = {
        0: torch.export.Dim("batch", min=1, max=1024),
        2: multiple * torch.export.Dim("height_blocks", min=1, max=8192 // multiple),
        3: multiple * torch.export.Dim("width_blocks", min=1, max=8192 // multiple),
    }
    # The exporter and its ONNX passes warn about torchvision's operators being unavailable, ambiguous attribute
    # types and their own deprecations: nothing a user can act on. Failures raise and become one line.
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                network,
                (example,),
                dynamo=True,
                opset_version=OPSET,
                input_names=["image"],
                output_names=["logits"],
                dynamic_shapes=(dims,),
                optimize=True,
                verbose=False,
            )
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
    if program is None:  # the signature allows it; the dynamo exporter always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {FORMAT_KEY: FORMAT, METADATA_KEY: json.dumps(model.metadata(), sort_keys=True)})
    return bytes(proto.SerializeToString())


def check_agreement(model: TrainedModel, network: OnnxNetwork, tolerance: float = 1e-3) -> float:
    """Largest difference between ``model``'s logits and ``network``'s on one random input; raises if over ``tolerance``.

    The graph must compute what the network computes, up to float32 rounding
    in another order; a larger difference means an operator was exported
    wrongly, and the file must not be used.
    """
    multiple = model.size_multiple
    images = torch.rand(
        1, model.preprocessing.in_channels, 3 * multiple, 5 * multiple, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        expected = model.network(images.to(model.device)).float().cpu()
    difference = float((network(images) - expected).abs().max())
    if not difference <= tolerance:
        raise RuntimeError(f"the ONNX graph's logits differ from PyTorch's by {difference:.3g} (at most {tolerance} allowed)")
    return difference


def checked_onnx_network(model: TrainedModel, what: str | os.PathLike[str]) -> tuple[OnnxNetwork, bytes, float]:
    """``model`` exported (:func:`onnx_graph`), loaded in ONNX Runtime and checked (:func:`check_agreement`).

    Returns the runner, its serialized graph and the largest logit
    difference from PyTorch.

    Raises
    ------
    InputError
        Naming ``what`` (the model as the user named it): the ONNX packages
        are missing, or the exporter cannot translate the network, or its
        graph computes other logits than PyTorch (some graphs work at the
        traced size only).
    """
    _onnxruntime()
    try:
        graph = onnx_graph(model)
        network = OnnxNetwork(graph)
        difference = check_agreement(model, network)
    except InputError:
        raise
    except Exception as err:  # the exporter fails on unsupported operators in many ways; say so in one line
        name = model.config["model"]["name"]
        raise InputError(what, f"the {name} network could not be exported to ONNX ({describe_exception(err)})") from err
    return network, graph, difference


def export_onnx(model_name_or_path: str | os.PathLike[str], out_path: str | os.PathLike[str]) -> tuple[Path, float]:
    """Write a model (shipped name, ``.pt`` or ``.ckpt``) as an ONNX file; returns the file and the logit difference.

    The exported graph is checked against PyTorch (:func:`checked_onnx_network`)
    before the file appears; it is written atomically, never over an existing file.

    Raises
    ------
    InputError
        A bad model or an ``.onnx`` one (already exported), an existing
        ``out_path``, the ONNX packages missing (checked before the export),
        or a network the exporter cannot translate or translates wrongly.
    """
    from retinaseg.inference.checkpoint import load_model  # its loader dispatches back here for .onnx files

    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise InputError(out_path, "an ONNX model file ends in .onnx")
    if Path(model_name_or_path).suffix == ".onnx":
        raise InputError(model_name_or_path, "is an ONNX model already; export a .pt, .ckpt or shipped model")
    check_output_file(out_path, inputs=[model_name_or_path])
    _onnxruntime()
    model = load_model(os.fspath(model_name_or_path), "cpu")
    _, graph, difference = checked_onnx_network(model, model_name_or_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(graph)
    return out_path, difference


# Keyed weakly by the PyTorch network: a process exports each network once, however many scans it segments.
_RUNNERS: weakref.WeakKeyDictionary[nn.Module, OnnxNetwork] = weakref.WeakKeyDictionary()


def onnx_model(model: TrainedModel) -> TrainedModel:
    """``model`` (a PyTorch one) exported in memory, checked, and run by ONNX Runtime, with the same settings.

    The export happens once per network and process (seconds); ``model``
    is unchanged. Errors as :func:`checked_onnx_network`.
    """
    if model.network not in _RUNNERS:
        _RUNNERS[model.network] = checked_onnx_network(model, model.config["model"]["name"])[0]
    runner = copy.copy(model)
    runner.network = _RUNNERS[model.network]
    return runner


def load_onnx_model(path: str | os.PathLike[str]) -> TrainedModel:
    """The model of an ONNX file written by :func:`export_onnx`, run by ONNX Runtime on the CPU.

    Raises
    ------
    InputError
        Naming ``path``: not a regular file, over :data:`MAX_ONNX_BYTES`, not
        an ONNX model, or one without retinaseg's metadata (class names,
        preprocessing: write it with ``retinaseg export-onnx``).
    """
    path = check_regular_file(path, "ONNX model")
    size = path.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise InputError(path, f"{size / 2**30:.1f} GiB; ONNX models of at most {MAX_ONNX_BYTES // 2**30} GiB are read")
    try:
        network = OnnxNetwork(path.read_bytes())
    except InputError:
        raise
    except Exception as err:  # ONNX Runtime reports a broken or foreign file as one of several error types
        raise InputError(path, f"not an ONNX model ({describe_exception(err)})") from err
    props = network.metadata()
    if props.get(FORMAT_KEY) != FORMAT or METADATA_KEY not in props:
        raise InputError(
            path, "an ONNX model without retinaseg's class names and preprocessing (write it with retinaseg export-onnx)"
        )
    try:
        metadata = json.loads(props[METADATA_KEY])
        model = TrainedModel(
            network, metadata["config"], metadata["class_names"], metadata["task"], Preprocessing(**metadata["preprocessing"])
        )
        classes = network.session.get_outputs()[0].shape[1]
        if classes != len(model.class_names):
            raise ValueError(f"the graph gives {classes} classes, the metadata names {len(model.class_names)}")
        channels = network.session.get_inputs()[0].shape[1]
        if channels != model.preprocessing.in_channels:
            raise ValueError(
                f"the graph takes {channels} channels, the metadata's preprocessing gives {model.preprocessing.in_channels}"
            )
    except Exception as err:  # edited metadata fails in the JSON, the lookups or the constructors
        raise InputError(path, f"unreadable retinaseg metadata ({describe_exception(err)})") from err
    return model.eval()

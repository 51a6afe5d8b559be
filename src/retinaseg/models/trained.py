"""A trained network with everything needed to apply it: :class:`TrainedModel`.

A :class:`TrainedModel` holds the network, the preprocessing its inputs need,
its class names, the input size multiple and the evaluation settings it was
trained with. :meth:`TrainedModel.predict` segments whole images of any size;
:meth:`TrainedModel.save_pretrained` and :meth:`TrainedModel.from_pretrained`
write and read it. Training (:mod:`retinaseg.training.module`) wraps one; it
needs neither Lightning nor the training code to be used.

Weight file (``.pt``, format :data:`WEIGHTS_FORMAT`): a PyTorch zip archive
holding a dict of plain data, read with the restricted unpickler
(:func:`~retinaseg.io.torch_files.read_torch_file`)::

    format      "retinaseg-weights-2"
    metadata    JSON text: {"class_names": [...], "task": "binary" | "multiclass",
                "preprocessing": {channels, clahe, normalize, resize}, "config": {the training config}}
    state_dict  {network parameter name: tensor}, floating point as float16 or float32

:meth:`~TrainedModel.from_pretrained` also reads the files of earlier
retinaseg versions and the training checkpoints (``.ckpt``) of
``retinaseg train``: both hold the metadata as ``hyper_parameters`` and the
network's weights under the ``model.`` prefix (the attribute
:class:`~retinaseg.training.module.SegmentationModule` keeps it in). Files
without ``preprocessing.resize`` (before ``data.resize``) load with ``None``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from retinaseg.data.geometry import resize_channels_first
from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError, describe_exception
from retinaseg.io.atomic import atomic_path
from retinaseg.io.torch_files import read_torch_file
from retinaseg.models.registry import build_model, model_size_multiple
from retinaseg.models.sliding import infer_logits

WEIGHTS_FORMAT = "retinaseg-weights-2"
"""The ``format`` entry of weight files written by :meth:`TrainedModel.save_pretrained`."""

_CHECKPOINT_LAYOUT_FORMATS = (None, "retinaseg-weights-1")
"""``format`` of files in the checkpoint layout: ``.ckpt`` (none) and weight files before version 2."""

_CHECKPOINT_PREFIX = "model."
"""Where training checkpoints keep the network's weights in their ``state_dict``."""

FLIPS = {"horizontal": -1, "vertical": -2}
"""Test-time flips a model may be applied with (``evaluation.flips``) and the axis of ``(B, C, H, W)`` each mirrors.

Vertical flips suit fundus photos, not B-scans: OCT anatomy is ordered top to bottom.
"""


@dataclass(frozen=True)
class EvaluationSettings:
    """How a model is applied and scored: the ``evaluation`` section of a training config, resolved.

    Attributes
    ----------
    roi_size
        Sliding-window size ``(h, w)`` in pixels, or ``None``: whole images in one pass.
    overlap
        Fraction of overlap between neighbouring windows, in ``[0, 1)``.
    sw_batch_size
        Windows per forward pass.
    metric_classes
        Class ids averaged into the mean Dice (the config's ``None``: every class but 0).
    boundary_classes
        OCT layer classes top to bottom, whose upper edges are the layer
        boundaries; empty for models without a layer order.
    fluid_classes
        Classes (fluid) that hide the boundary below them.
    threshold
        Binary tasks: a pixel is foreground where its probability is at least this.
    flips
        Test-time flips (names of :data:`FLIPS`): the logits are averaged over
        the image as it is and mirrored by every combination of these flips
        (each mirrored back), 2 passes for one flip, 4 for two; ``()``: one pass.
    ordered_layers
        OCT layer models: ``predict`` and ``evaluate`` rebuild each class map
        from its anatomically ordered layer surfaces
        (:func:`retinaseg.analysis.layer_order.ordered_layer_map`).
    """

    roi_size: tuple[int, int] | None
    overlap: float
    sw_batch_size: int
    metric_classes: tuple[int, ...]
    boundary_classes: tuple[int, ...]
    fluid_classes: tuple[int, ...]
    threshold: float = 0.5
    flips: tuple[str, ...] = ()
    ordered_layers: bool = False

    @classmethod
    def from_config(cls, evaluation: Mapping[str, Any], num_classes: int) -> EvaluationSettings:
        """The settings of a config's ``evaluation`` section for a model of ``num_classes`` classes.

        Raises
        ------
        InputError
            ``evaluation.ordered_layers`` without two or more layer classes
            or without a class above the retina.
        """
        roi_size, metric_classes = evaluation["roi_size"], evaluation["metric_classes"]
        settings = cls(
            roi_size=None if roi_size is None else (int(roi_size[0]), int(roi_size[1])),
            overlap=float(evaluation["overlap"]),
            sw_batch_size=int(evaluation["sw_batch_size"]),
            metric_classes=tuple(range(1, num_classes)) if metric_classes is None else tuple(int(c) for c in metric_classes),
            boundary_classes=tuple(int(c) for c in evaluation["boundary_classes"] or ()),
            fluid_classes=tuple(int(c) for c in evaluation["fluid_classes"] or ()),
            threshold=float(evaluation.get("threshold", 0.5)),  # models saved before the key existed used 0.5
            flips=_flip_names(evaluation.get("flips")),  # and no flips
            ordered_layers=evaluation.get("ordered_layers") is True,  # and their literal maps
        )
        if settings.ordered_layers and len(settings.boundary_classes) < 2:
            raise InputError(
                "evaluation.ordered_layers",
                "needs two or more layer classes in evaluation.boundary_classes, the last one reaching the image's bottom",
            )
        if settings.ordered_layers and settings.above_retina_class(num_classes) is None:
            raise InputError("evaluation.ordered_layers", "needs a class that is neither a layer nor fluid, above the retina")
        return settings

    def above_retina_class(self, num_classes: int) -> int | None:
        """The smallest class that is neither a layer nor fluid, what lies above the retina; ``None`` if none is."""
        others = sorted(set(range(num_classes)) - set(self.boundary_classes) - set(self.fluid_classes))
        return others[0] if others else None

    @property
    def flip_dims(self) -> list[tuple[int, ...]]:
        """The image axes mirrored in each pass of :attr:`flips`, ``()`` for the unflipped one first."""
        axes = [FLIPS[name] for name in self.flips]
        return [dims for count in range(len(axes) + 1) for dims in combinations(axes, count)]


def _flip_names(flips: Any) -> tuple[str, ...]:
    """``evaluation.flips`` of a stored config as a tuple; ``ValueError`` for anything but known names."""
    names = tuple(flips or ())
    if isinstance(flips, str) or any(not isinstance(name, str) or name not in FLIPS for name in names):
        raise ValueError(f"evaluation.flips must list names of {', '.join(FLIPS)}, got {flips!r}")
    return names


class TrainedModel:
    """A segmentation network and how to apply it.

    Parameters
    ----------
    network
        Registered network (:mod:`retinaseg.models.registry`) mapping
        ``(B, C, h, w)`` to ``(B, K, h, w)`` logits for ``h``, ``w`` multiples
        of ``size_multiple``.
    config
        The resolved training config the network was made with (plain data);
        its ``model`` section names the network, its ``evaluation`` section
        gives :attr:`evaluation`.
    class_names
        Name of each of the ``K`` output classes.
    task
        ``"binary"`` or ``"multiclass"``.
    preprocessing
        How raw images become network input
        (:func:`~retinaseg.data.preprocess.prepare_image`).

    Attributes
    ----------
    size_multiple
        Input height and width the network needs are multiples of this.
    evaluation
        :class:`EvaluationSettings` from ``config``.
    """

    def __init__(
        self,
        network: nn.Module,
        config: dict[str, Any],
        class_names: Sequence[str],
        task: str,
        preprocessing: Preprocessing,
    ) -> None:
        self.network = network
        self.config = config
        self.class_names = list(class_names)
        self.task = task
        self.preprocessing = preprocessing
        self.size_multiple = model_size_multiple(config["model"]["name"], config["model"]["options"])
        self.evaluation = EvaluationSettings.from_config(config["evaluation"], len(self.class_names))

    @classmethod
    def from_config(
        cls, config: dict[str, Any], class_names: Sequence[str], task: str, preprocessing: Preprocessing
    ) -> TrainedModel:
        """A new model as ``config`` describes it (parameters as for the class), its network freshly initialised."""
        network = build_model(config["model"]["name"], preprocessing.in_channels, len(class_names), config["model"]["options"])
        return cls(network, config, class_names, task, preprocessing)

    @property
    def device(self) -> torch.device:
        """Where the network's parameters are; the CPU for a network without any (ONNX Runtime's)."""
        parameter = next(self.network.parameters(), None)
        return torch.device("cpu") if parameter is None else parameter.device

    def to(self, device: str | torch.device) -> TrainedModel:
        """Move the network to ``device``; returns ``self``."""
        self.network.to(device)
        return self

    def eval(self) -> TrainedModel:
        """Put the network in evaluation mode (batch norm statistics, no dropout); returns ``self``."""
        self.network.eval()
        return self

    def predict(
        self, images: torch.Tensor, *, roi_size: tuple[int, int] | None = None, probabilities: bool = False
    ) -> torch.Tensor:
        """Logits or class probabilities for whole images of any size, without gradients.

        Images are padded to :attr:`size_multiple` and segmented in one pass,
        or segmented by overlapping windows (:mod:`retinaseg.models.sliding`);
        with ``evaluation.flips`` once more per mirror image, the logits averaged.
        A model trained on resized images (``preprocessing.resize``) gets
        its input resized to that size as in training
        (:func:`~retinaseg.data.geometry.resize_channels_first`, on the CPU),
        and its logits resized back to the input's size (bilinear), so the
        result always has the input's size.
        The network's mode is left as it is: models from :meth:`from_pretrained`
        and :func:`~retinaseg.inference.checkpoint.load_model` are in
        evaluation mode already.

        Parameters
        ----------
        images
            ``(B, C, H, W)`` float network input
            (:func:`~retinaseg.data.preprocess.prepare_image` with
            :attr:`preprocessing`), on any device; moved to :attr:`device`.
        roi_size
            Sliding-window size ``(h, w)`` in pixels of the network input
            (after any resize), rounded up to the size multiple; default:
            ``evaluation.roi_size`` (``None``: one pass).
        probabilities
            Return softmax probabilities (float32) instead of logits.

        Returns
        -------
        torch.Tensor
            ``(B, K, H, W)`` on :attr:`device`.
        """
        original = (int(images.shape[-2]), int(images.shape[-1]))
        # Inputs already at the training size (the validation images of a run) go through unchanged.
        size = None if self.preprocessing.resize == original else self.preprocessing.resize
        if size is not None:
            images = _resize_inputs(images, size)
        images = images.to(self.device)
        passes = self.evaluation.flip_dims
        with torch.no_grad():
            logits = self._logits(images, roi_size, passes[0])
            if len(passes) > 1:
                # Summed in at least float32 (a reduced-precision sum rounds each partial result), returned in
                # the passes' own dtype, so that what predict returns does not depend on the flips.
                total = logits.to(torch.promote_types(logits.dtype, torch.float32))
                for dims in passes[1:]:
                    total += self._logits(images, roi_size, dims)
                logits = (total / len(passes)).to(logits.dtype)
            if size is not None:
                # align_corners=False is the pixel-centre convention of the input resize, so the two stay aligned.
                logits = F.interpolate(logits, size=original, mode="bilinear", align_corners=False)
        return torch.softmax(logits.float(), dim=1) if probabilities else logits

    def _logits(self, images: torch.Tensor, roi_size: tuple[int, int] | None, flip_dims: tuple[int, ...]) -> torch.Tensor:
        """Logits of one pass, the input mirrored along ``flip_dims`` and the logits mirrored back."""
        if flip_dims:
            images = images.flip(flip_dims)
        logits = infer_logits(
            self.network,
            images,
            self.size_multiple,
            roi_size=roi_size or self.evaluation.roi_size,
            overlap=self.evaluation.overlap,
            sw_batch_size=self.evaluation.sw_batch_size,
        )
        return logits.flip(flip_dims) if flip_dims else logits

    def class_map(self, probabilities: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """``(H, W)`` uint8 classes of ``(K, H, W)`` probabilities.

        Binary tasks: foreground where its probability is at least
        ``threshold`` (default: ``evaluation.threshold``); otherwise the most
        probable class. Training and its validation scores use the most
        probable class (threshold 0.5) whatever the setting: the threshold is
        an operating point chosen for a trained model.
        """
        if self.task == "binary":
            chosen = self.evaluation.threshold if threshold is None else threshold
            return (probabilities[1] >= chosen).astype(np.uint8)
        return probabilities.argmax(axis=0).astype(np.uint8)

    def metadata(self) -> dict[str, Any]:
        """Everything but the weights, as plain data: what :meth:`save_pretrained` stores beside them."""
        return {
            "class_names": list(self.class_names),
            "task": self.task,
            "preprocessing": self.preprocessing.to_dict(),
            "config": self.config,
        }

    def save_pretrained(self, path: str | os.PathLike[str], *, half: bool = True) -> Path:
        """Write the weight file (format in the module docstring) atomically, replacing ``path``; returns it.

        ``half`` stores floating-point weights as float16: half the size,
        predictions equal up to float16 rounding of the weights. Loading
        turns them back into float32.
        """
        path = Path(path)
        state_dict = {
            key: (value.half() if half and value.is_floating_point() else value).detach().cpu()
            for key, value in self.network.state_dict().items()
        }
        if not state_dict:
            raise TypeError("the network has no PyTorch weights (an ONNX model?); only PyTorch models are saved as .pt")
        payload = {"format": WEIGHTS_FORMAT, "metadata": json.dumps(self.metadata(), sort_keys=True), "state_dict": state_dict}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str]) -> TrainedModel:
        """The model of a weight file (``.pt``) or training checkpoint (``.ckpt``), on the CPU, in evaluation mode.

        The file is read with the restricted unpickler: loading never runs
        code from it. Floating-point weights become float32.

        Raises
        ------
        InputError
            Naming ``path``: not a PyTorch file, one that holds more than
            plain data, or not a retinaseg model file.
        """
        path = Path(path)
        what = "weight file" if path.suffix == ".pt" else "checkpoint"
        payload = read_torch_file(path, what)
        file_format = payload.get("format")
        if file_format != WEIGHTS_FORMAT and (file_format not in _CHECKPOINT_LAYOUT_FORMATS or "hyper_parameters" not in payload):
            problem = (
                "no retinaseg weight-file header; a training checkpoint ends in .ckpt"
                if what == "weight file"
                else "no hyper_parameters and state_dict"
            )
            raise InputError(path, f"not a retinaseg {what} ({problem})")
        try:
            if file_format == WEIGHTS_FORMAT:
                metadata, state_dict = json.loads(payload["metadata"]), payload["state_dict"]
            else:
                metadata, state_dict = payload["hyper_parameters"], _network_weights(payload["state_dict"])
            preprocessing = Preprocessing(**metadata["preprocessing"])
            config, num_classes = metadata["config"], len(metadata["class_names"])
            network_config = without_initial_weights(config["model"])
            check_weights_fit(network_config, preprocessing.in_channels, num_classes, state_dict)
            network = build_model(network_config["name"], preprocessing.in_channels, num_classes, network_config["options"])
            model = cls(network, config, metadata["class_names"], metadata["task"], preprocessing)
            model.network.load_state_dict(
                {key: value.float() if value.is_floating_point() else value for key, value in state_dict.items()}
            )
        except (
            Exception
        ) as err:  # a foreign or edited file fails in the lookups, the constructors or load_state_dict, in many ways
            raise InputError(path, f"not a retinaseg {what} ({describe_exception(err)})") from err
        return model.eval()


#: Model options that only matter when training starts (initial weights from a file, a frozen
#: backbone); a saved model's own weights replace them, so the file is not needed to load it.
_TRAINING_START_OPTIONS = {"backbone_weights": "", "freeze_backbone": False}


def without_initial_weights(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """``model_config`` with :data:`_TRAINING_START_OPTIONS` reset, for rebuilding a saved network.

    An ensemble's (:mod:`retinaseg.models.ensemble`) members are reset too:
    its file holds their trained weights.
    """
    options: dict[str, Any] = {key: _TRAINING_START_OPTIONS.get(key, value) for key, value in model_config["options"].items()}
    if model_config["name"] == "ensemble":
        # Imported here: the ensemble module builds on this one. member_configs checks the members (at most 8,
        # none an ensemble) before they are walked, so a crafted file cannot make this deep or long.
        from retinaseg.models.ensemble import member_configs

        options["members"] = [without_initial_weights(member) for member in member_configs(options["members"])]
    return {**model_config, "options": options}


def check_weights_fit(model_config: Mapping[str, Any], in_channels: int, num_classes: int, state_dict: Mapping[str, Any]) -> None:
    """Refuse weights that do not fit the network a file describes, before that network is allocated.

    The network is built on PyTorch's ``meta`` device (no memory), so a file
    whose config asks for a huge network but holds small weights costs
    nothing; memory stays bounded by what the file really holds.
    """
    with torch.device("meta"):
        expected = build_model(model_config["name"], in_channels, num_classes, model_config["options"]).state_dict()
    for key in sorted(expected.keys() | state_dict.keys()):
        want = tuple(expected[key].shape) if key in expected else None
        got = tuple(state_dict[key].shape) if key in state_dict else None
        if want != got:
            raise ValueError(f"weights do not fit the network the file describes ({key}: network {want}, file {got})")


def _resize_inputs(images: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``(B, C, H, W)`` network input resized to ``(B, C, h, w)`` float32 on the CPU, exactly as training resized it."""
    batch = images.detach().float().cpu().numpy()
    return torch.from_numpy(np.stack([resize_channels_first(image, shape) for image in batch]))


def _network_weights(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The network's entries of a training checkpoint's ``state_dict``, without their prefix (the loss may have others)."""
    return {
        key.removeprefix(_CHECKPOINT_PREFIX): value for key, value in state_dict.items() if key.startswith(_CHECKPOINT_PREFIX)
    }

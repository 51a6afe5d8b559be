"""Segmentation losses on ``(B, C, H, W)`` logits and ``(B, H, W)`` class indices."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss
from monai.networks.utils import one_hot
from torch import nn

from retinaseg.errors import InputError, unknown_name

LOSS_NAMES = ("ce", "bce", "dice", "dice_ce", "jaccard", "dice_jaccard")
CE_LOSS_NAMES = ("ce", "dice_ce")
"""The losses with a cross-entropy term, which ``boundary_weight`` weights."""


class _IndexTargetLoss(nn.Module):
    """Adapts a MONAI loss that wants ``(B, 1, H, W)`` targets to ``(B, H, W)``."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target.unsqueeze(1))


class _OneHotBCELoss(nn.Module):
    """Binary cross-entropy of every class channel against the one-hot target."""

    def __init__(self, class_weights: torch.Tensor | None) -> None:
        super().__init__()
        pos_weight = None if class_weights is None else class_weights.view(1, -1, 1, 1)
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.bce(logits, one_hot(target.unsqueeze(1), logits.shape[1], dim=1).to(logits.dtype))


class _SumOfLosses(nn.Module):
    """The sum of several losses on the same logits and target (equal weights)."""

    def __init__(self, *losses: nn.Module) -> None:
        super().__init__()
        self.losses = nn.ModuleList(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.stack([loss(logits, target) for loss in self.losses]).sum()


class _BoundaryWeightedCE(nn.Module):
    """Cross-entropy with each pixel weighted ``1 + boundary_weight`` where its class differs from a 4-neighbour's.

    The pixel weighting of ReLayNet (Roy et al. 2017), which put 10 on the
    boundary pixels: thin layers are mostly boundary, and their edges are
    what thickness measurements read. Normalised like PyTorch's weighted
    mean: the sum of the weighted terms over the sum of the weights.
    """

    def __init__(self, boundary_weight: float, class_weights: torch.Tensor | None) -> None:
        super().__init__()
        self.boundary_weight = boundary_weight
        self.class_weights = class_weights

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        class_weights = None if self.class_weights is None else self.class_weights.to(logits.device, logits.dtype)
        # Per pixel: class_weights[target] * CE, so the class weights are in the sum already and go into the norm.
        per_pixel = F.cross_entropy(logits, target, weight=class_weights, reduction="none")
        weights = 1 + self.boundary_weight * label_edges(target).to(per_pixel.dtype)
        total = (per_pixel * weights).sum()
        if class_weights is not None:
            weights = weights * class_weights[target]
        return total / weights.sum()


def check_boundary_weight(name: str, boundary_weight: float) -> None:
    """Refuse a ``boundary_weight`` for a loss without cross-entropy (:class:`InputError` naming the key)."""
    if boundary_weight and name not in CE_LOSS_NAMES:
        raise InputError("loss.boundary_weight", f"weights the cross-entropy: use loss ce or dice_ce, not {name!r}")


def label_edges(target: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` bool: pixels of a ``(B, H, W)`` class map whose class differs from a 4-neighbour's."""
    vertical = target[:, 1:, :] != target[:, :-1, :]
    horizontal = target[:, :, 1:] != target[:, :, :-1]
    edges = torch.zeros_like(target, dtype=torch.bool)
    edges[:, 1:, :] |= vertical
    edges[:, :-1, :] |= vertical
    edges[:, :, 1:] |= horizontal
    edges[:, :, :-1] |= horizontal
    return edges


def build_loss(
    name: str, class_weights: Sequence[float] | None = None, boundary_weight: float = 0.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss ``f(logits (B,C,H,W), target (B,H,W) int64) -> scalar`` by name.

    ``ce`` cross-entropy; ``bce`` BCE-with-logits on the one-hot target;
    ``dice`` soft Dice; ``dice_ce`` Dice + cross-entropy; ``jaccard`` soft IoU;
    ``dice_jaccard`` soft Dice + soft IoU with equal weights (the loss of the
    original FCN comparison). Dice-type losses use softmax and include the
    background class; ``class_weights`` weight every loss per class.
    ``boundary_weight`` > 0 (``ce`` and ``dice_ce``) weights the cross-entropy
    of pixels on a class boundary ``1 + boundary_weight`` times (ReLayNet: 10).
    """
    weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)

    def overlap(jaccard: bool = False) -> nn.Module:
        return _IndexTargetLoss(DiceLoss(softmax=True, to_onehot_y=True, jaccard=jaccard, weight=weights))

    if boundary_weight:
        check_boundary_weight(name, boundary_weight)
        weighted_ce = _BoundaryWeightedCE(boundary_weight, weights)
        return weighted_ce if name == "ce" else _SumOfLosses(overlap(), weighted_ce)
    if name == "ce":
        return nn.CrossEntropyLoss(weight=weights)
    if name == "bce":
        return _OneHotBCELoss(weights)
    if name == "dice":
        return overlap()
    if name == "jaccard":
        return overlap(jaccard=True)
    if name == "dice_jaccard":
        return _SumOfLosses(overlap(), overlap(jaccard=True))
    if name == "dice_ce":
        return _IndexTargetLoss(DiceCELoss(softmax=True, to_onehot_y=True, weight=weights))
    raise InputError("loss.name", unknown_name("loss", name, LOSS_NAMES))

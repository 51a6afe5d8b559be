"""Segmentation losses on ``(B, C, H, W)`` logits and ``(B, H, W)`` class indices."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.losses import DiceCELoss, DiceLoss
from monai.networks.utils import one_hot
from torch import nn

from retinaseg.errors import InputError, unknown_name

LOSS_NAMES = ("ce", "bce", "dice", "dice_ce", "jaccard", "dice_jaccard")


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


def build_loss(name: str, class_weights: Sequence[float] | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss ``f(logits (B,C,H,W), target (B,H,W) int64) -> scalar`` by name.

    ``ce`` cross-entropy; ``bce`` BCE-with-logits on the one-hot target;
    ``dice`` soft Dice; ``dice_ce`` Dice + cross-entropy; ``jaccard`` soft IoU;
    ``dice_jaccard`` soft Dice + soft IoU with equal weights (the loss of the
    original FCN comparison). Dice-type losses use softmax and include the
    background class; ``class_weights`` weight every loss per class.
    """
    weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
    if name == "ce":
        return nn.CrossEntropyLoss(weight=weights)
    if name == "bce":
        return _OneHotBCELoss(weights)
    if name == "dice":
        return _IndexTargetLoss(DiceLoss(softmax=True, to_onehot_y=True, weight=weights))
    if name == "jaccard":
        return _IndexTargetLoss(DiceLoss(softmax=True, to_onehot_y=True, jaccard=True, weight=weights))
    if name == "dice_jaccard":
        return _SumOfLosses(
            _IndexTargetLoss(DiceLoss(softmax=True, to_onehot_y=True, weight=weights)),
            _IndexTargetLoss(DiceLoss(softmax=True, to_onehot_y=True, jaccard=True, weight=weights)),
        )
    if name == "dice_ce":
        return _IndexTargetLoss(DiceCELoss(softmax=True, to_onehot_y=True, weight=weights))
    raise InputError("loss.name", unknown_name("loss", name, LOSS_NAMES))

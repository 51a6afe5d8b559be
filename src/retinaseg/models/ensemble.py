"""Ensembles: several trained networks applied as one, their logits averaged.

An ensemble is a registered network (``ensemble``) whose option ``members``
lists the member networks as ``{"name": ..., "options": {...}}``, so its
weight file, loading (restricted, sizes checked before allocating),
inference options and ONNX export are those of any other network.
:func:`ensemble_of` joins trained models that segment the same classes from
the same input into one :class:`~retinaseg.models.trained.TrainedModel`.

Averaging logits (rather than probabilities) is what test-time flips do too
(``evaluation.flips``); on the Duke validation subject the two agreed to
1e-4 in mean layer Dice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from retinaseg.errors import InputError
from retinaseg.models.registry import build_model, get_model_spec, model_min_batch_size, model_size_multiple, register_model
from retinaseg.models.trained import TrainedModel, check_weights_fit, without_initial_weights

MAX_MEMBERS = 8
"""Most networks one ensemble may hold: each costs a full forward pass."""


class LogitMean(nn.Module):
    """The mean of the logits of member networks, each mapping ``(B, C, H, W)`` to ``(B, K, H, W)``.

    Parameters
    ----------
    members
        The networks, all taking the same input and giving the same classes.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.members[0](x)
        # Summed in at least float32 (a bfloat16 sum rounds each partial result), returned in the members' dtype.
        total = first.to(torch.promote_types(first.dtype, torch.float32))
        for member in self.members[1:]:
            total = total + member(x)
        return (total / len(self.members)).to(first.dtype)


def check_member_count(count: int, where: str) -> None:
    """Refuse (:class:`InputError` naming ``where``) an ensemble of fewer than 2 or more than :data:`MAX_MEMBERS` members."""
    if not 2 <= count <= MAX_MEMBERS:
        raise InputError(where, f"an ensemble needs 2 to {MAX_MEMBERS} member networks, got {count}")


def member_configs(members: Any) -> list[dict[str, Any]]:
    """``members`` (the ensemble's option) as ``[{"name", "options"}]``, each resolved over its network's defaults.

    Raises
    ------
    InputError
        Naming ``model.options.members`` or the member's key: fewer than 2 or
        more than :data:`MAX_MEMBERS` members, a member that is not a mapping
        of ``name`` and ``options``, an ensemble inside an ensemble, or an
        unknown network or option.
    """
    where = "model.options.members"
    if not isinstance(members, list):
        raise InputError(where, f"must be a list of member networks, got {members!r}")
    check_member_count(len(members), where)
    resolved = []
    for index, member in enumerate(members):
        here = f"{where}[{index}]"
        if not isinstance(member, Mapping) or "name" not in member or set(member) - {"name", "options"}:
            raise InputError(here, f"must be a mapping of name and options, got {member!r}")
        if not isinstance(member["name"], str):
            raise InputError(f"{here}.name", f"must be the name of a network, got {member['name']!r}")
        if member["name"] == "ensemble":
            raise InputError(f"{here}.name", "an ensemble cannot hold another ensemble: list its members instead")
        if not isinstance(member.get("options") or {}, Mapping):
            raise InputError(f"{here}.options", f"must be a mapping of the network's options, got {member['options']!r}")
        try:
            options = get_model_spec(member["name"]).resolve(dict(member.get("options") or {}))
        except InputError as err:  # names the member's key, not the ensemble's
            raise InputError(f"{here}.{err.where.removeprefix('model.')}", err.problem) from err
        resolved.append({"name": member["name"], "options": options})
    return resolved


def _size_multiple(options: dict[str, Any]) -> int:
    """The least common multiple of the members' size multiples."""
    return math.lcm(*(model_size_multiple(member["name"], member["options"]) for member in member_configs(options["members"])))


def _min_batch_size(options: dict[str, Any]) -> int:
    """The largest of the members' smallest training batches."""
    return max(model_min_batch_size(member["name"], member["options"]) for member in member_configs(options["members"]))


@register_model(
    "ensemble",
    family="ensemble",
    description="mean of the logits of 2-8 networks (members: [{name, options}]); made by retinaseg ensemble",
    defaults={"members": [{"name": "unet", "options": {}}, {"name": "unet", "options": {"base_channels": 16}}]},
    size_multiple=_size_multiple,
    min_batch_size=_min_batch_size,
)
def build_ensemble(in_channels: int, num_classes: int, members: list[dict[str, Any]]) -> nn.Module:
    return LogitMean([build_model(m["name"], in_channels, num_classes, m["options"]) for m in member_configs(members)])


def ensemble_of(models: Sequence[TrainedModel], names: Sequence[str]) -> TrainedModel:
    """One model averaging the logits of ``models``, in evaluation mode; applied as the first one is.

    The members' networks are used as they are (not copied). The first
    model's ``evaluation`` section applies to the mean (flips, ordered
    layers, windows), except its threshold: a binary ensemble starts at 0.5,
    to be chosen again on validation images (``evaluate --threshold val``).

    Parameters
    ----------
    models
        2 to :data:`MAX_MEMBERS` trained PyTorch models with the same task,
        class names and preprocessing.
    names
        What each model was given as (a file or a shipped name), for errors.

    Raises
    ------
    InputError
        Naming the first model that does not fit the others, is an
        ensemble itself or has no PyTorch weights, or too few or many models.
    ValueError
        A member's network changed for inference (wrapped, batch norm folded):
        join the models as loaded.
    """
    check_member_count(len(models), "models")
    for model, name in zip(models, names, strict=True):
        if next(model.network.parameters(), None) is None:
            raise InputError(name, "an ONNX export holds no PyTorch weights: join the .pt or .ckpt it was made from")
        if model.config["model"]["name"] == "ensemble":
            raise InputError(name, "is an ensemble already: join its members' files instead")
    first = models[0]
    for model, name in zip(models[1:], names[1:], strict=True):
        for what, mine, theirs in (
            ("task", model.task, first.task),
            ("classes", model.class_names, first.class_names),
            ("preprocessing", model.preprocessing, first.preprocessing),
        ):
            if mine != theirs:
                raise InputError(name, f"cannot join {names[0]}: different {what} ({mine} vs {theirs})")
    members = member_configs([without_initial_weights(model.config["model"]) for model in models])
    # A threshold was chosen for the first model's probabilities, not for the mean: back to the untuned 0.5.
    evaluation = {key: value for key, value in first.config["evaluation"].items() if key != "threshold"}
    config = {**first.config, "model": {"name": "ensemble", "options": {"members": members}}, "evaluation": evaluation}
    network = LogitMean([model.network for model in models])
    # A network changed for inference (wrapped, batch norm folded) would be saved in a file no loader reads.
    check_weights_fit(config["model"], first.preprocessing.in_channels, len(first.class_names), network.state_dict())
    return TrainedModel(network, config, first.class_names, first.task, first.preprocessing).eval()

"""The Lightning module: trains the network of a :class:`~retinaseg.models.trained.TrainedModel`."""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, ReduceLROnPlateau

from retinaseg.data.preprocess import Preprocessing
from retinaseg.metrics.segmentation import scores_from_confusion
from retinaseg.models.trained import TrainedModel
from retinaseg.numeric import finite_mean
from retinaseg.training.losses import build_loss

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
"""The optimisers of ``optimizer.name`` (:data:`retinaseg.training.config.OPTIMIZERS`)."""


class SegmentationModule(L.LightningModule):
    """Trains a registered network; validates with the Dice of chosen classes on whole images.

    The hyper-parameters (saved in checkpoints) are those of
    :meth:`TrainedModel.from_config <retinaseg.models.trained.TrainedModel.from_config>`,
    so a checkpoint loads as a :class:`~retinaseg.models.trained.TrainedModel`
    without Lightning.

    Parameters
    ----------
    config
        The resolved training config (see :mod:`retinaseg.training.config`).
    class_names
        Name of each output class.
    task
        ``"binary"`` or ``"multiclass"``.
    preprocessing
        Input preparation (:meth:`Preprocessing.to_dict <retinaseg.data.preprocess.Preprocessing.to_dict>`),
        stored so inference reproduces it.

    Attributes
    ----------
    trained_model
        The model being trained, for validation and export.
    model
        Its network, registered here: checkpoints hold its weights under ``model.``.
    """

    _val_confusion: torch.Tensor
    """Confusion matrix of the validation round so far (a buffer: it follows the module's device)."""

    def __init__(self, config: dict[str, Any], class_names: list[str], task: str, preprocessing: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.trained_model = TrainedModel.from_config(config, class_names, task, Preprocessing(**preprocessing))
        self.model = self.trained_model.network
        self.channels_last = bool(config["trainer"].get("channels_last", False))  # runs saved before the key: off
        if self.channels_last:
            # Module.to takes memory_format (documented), its type stubs do not list it.
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        loss = config["loss"]
        # Configs saved before boundary_weight existed trained without it.
        self.loss = build_loss(loss["name"], loss["class_weights"], loss.get("boundary_weight", 0.0))
        self.register_buffer(
            "_val_confusion", torch.zeros(len(class_names), len(class_names), dtype=torch.long), persistent=False
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = batch["image"].contiguous(memory_format=torch.channels_last) if self.channels_last else batch["image"]
        loss = self.loss(self.model(images), batch["label"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]), sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_confusion.zero_()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # Whole images, padded or windowed as at inference, so val_dice predicts the test scores.
        logits = self.trained_model.predict(batch["image"])
        loss = self.loss(logits, batch["label"])
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)
        pred = logits.argmax(dim=1)
        inside = batch["fov"]
        num_classes = len(self.trained_model.class_names)
        pairs = batch["label"][inside] * num_classes + pred[inside]
        self._val_confusion += torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)

    def on_validation_epoch_end(self) -> None:
        confusion = self.trainer.strategy.reduce(self._val_confusion.float(), reduce_op="sum")
        scores = scores_from_confusion(confusion.cpu().numpy().astype(np.int64))
        # Every process holds the same reduced value; sync_dist only silences Lightning's warning.
        metric_classes = list(self.trained_model.evaluation.metric_classes)
        self.log("val_dice", finite_mean(scores["dice"][metric_classes]), prog_bar=True, sync_dist=True)
        self.log("val_iou", finite_mean(scores["iou"][metric_classes]), sync_dist=True)
        self.log("val_accuracy", float(scores["accuracy"]), sync_dist=True)

    def configure_optimizers(self) -> Any:
        # Names and values were checked by validate_config before training.
        config = self.trained_model.config
        opt_cfg, sched_cfg = config["optimizer"], config["scheduler"]
        momentum = {"momentum": opt_cfg["momentum"]} if opt_cfg["name"] == "sgd" else {}
        optimizer = _OPTIMIZERS[opt_cfg["name"]](
            self.parameters(), lr=opt_cfg["lr"], weight_decay=opt_cfg["weight_decay"], **momentum
        )
        if sched_cfg["name"] == "cosine":
            cosine = CosineAnnealingLR(optimizer, T_max=config["trainer"]["max_epochs"], eta_min=sched_cfg["min_lr"])
            return {"optimizer": optimizer, "lr_scheduler": cosine}
        if sched_cfg["name"] == "plateau":
            monitor = config["trainer"]["monitor"]
            plateau = ReduceLROnPlateau(
                optimizer,
                mode=monitor_mode(monitor),
                factor=sched_cfg["factor"],
                patience=sched_cfg["patience"],
                min_lr=sched_cfg["min_lr"],
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": plateau, "monitor": monitor}}
        return optimizer  # scheduler "none"


def monitor_mode(monitor: str) -> Literal["min", "max"]:
    """Whether the monitored validation metric improves downwards (``"min"``: the loss) or upwards (``"max"``)."""
    return "min" if monitor == "val_loss" else "max"

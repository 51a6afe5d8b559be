"""The Lightning module: one network, one loss, validation on whole images."""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from retinaseg.data.preprocess import Preprocessing
from retinaseg.inference.sliding import infer_logits
from retinaseg.metrics.segmentation import scores_from_confusion
from retinaseg.models import build_model, model_size_multiple
from retinaseg.training.losses import build_loss

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
"""The optimisers of ``optimizer.name`` (:data:`retinaseg.training.config.OPTIMIZERS`)."""


class SegmentationModule(L.LightningModule):
    """Trains a registered network; validates with the Dice of chosen classes.

    Parameters
    ----------
    config
        The resolved training config (see :mod:`retinaseg.training.config`).
    class_names
        Name of each output class.
    task
        ``"binary"`` or ``"multiclass"``.
    preprocessing
        Input preparation, stored so inference reproduces it.
    """

    def __init__(self, config: dict[str, Any], class_names: list[str], task: str, preprocessing: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = config
        self.class_names = list(class_names)
        self.preprocessing = Preprocessing(**preprocessing)
        model_cfg = config["model"]
        self.model = build_model(model_cfg["name"], self.preprocessing.in_channels, len(class_names), model_cfg["options"])
        self.size_multiple = model_size_multiple(model_cfg["name"], model_cfg["options"])
        self.loss = build_loss(config["loss"]["name"], config["loss"]["class_weights"])
        self.metric_classes = metric_classes(config, len(class_names))
        self.register_buffer("_val_confusion", torch.zeros(len(class_names), len(class_names), dtype=torch.long), persistent=False)

    def forward(self, image: torch.Tensor, roi_size: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits ``(B, K, H, W)`` for whole images ``(B, C, H, W)`` of any size.

        ``roi_size`` switches to sliding-window inference with that window;
        default: the config's ``evaluation.roi_size`` (``None``: one pass).
        """
        evaluation = self.config["evaluation"]
        roi = roi_size or evaluation["roi_size"]
        return infer_logits(
            self.model,
            image,
            self.size_multiple,
            roi_size=None if roi is None else tuple(roi),
            overlap=evaluation["overlap"],
            sw_batch_size=evaluation["sw_batch_size"],
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.model(batch["image"]), batch["label"])
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]), sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_confusion.zero_()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["image"])
        loss = self.loss(logits, batch["label"])
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=1, sync_dist=True)
        pred = logits.argmax(dim=1)
        inside = batch["fov"]
        num_classes = len(self.class_names)
        pairs = batch["label"][inside] * num_classes + pred[inside]
        self._val_confusion += torch.bincount(pairs, minlength=num_classes**2).view(num_classes, num_classes)

    def on_validation_epoch_end(self) -> None:
        confusion = self.trainer.strategy.reduce(self._val_confusion.float(), reduce_op="sum")
        dice = scores_from_confusion(confusion.cpu().numpy().astype(np.int64))["dice"]
        # Every process holds the same reduced value; sync_dist only silences Lightning's warning.
        self.log("val_dice", float(np.nanmean(dice[self.metric_classes])), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> Any:
        # Names and values were checked by validate_config before training.
        opt_cfg, sched_cfg = self.config["optimizer"], self.config["scheduler"]
        optimizer = _OPTIMIZERS[opt_cfg["name"]](self.parameters(), lr=opt_cfg["lr"], weight_decay=opt_cfg["weight_decay"])
        if sched_cfg["name"] == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=self.config["trainer"]["max_epochs"], eta_min=sched_cfg["min_lr"]
            )
            return {"optimizer": optimizer, "lr_scheduler": scheduler}
        if sched_cfg["name"] == "plateau":
            monitor = self.config["trainer"]["monitor"]
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="min" if monitor == "val_loss" else "max",
                factor=sched_cfg["factor"],
                patience=sched_cfg["patience"],
                min_lr=sched_cfg["min_lr"],
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": monitor}}
        return optimizer  # scheduler "none"


def metric_classes(config: dict[str, Any], num_classes: int) -> list[int]:
    """Class ids averaged into ``val_dice`` (default: every class but 0)."""
    chosen = config["evaluation"]["metric_classes"]
    return list(range(1, num_classes)) if chosen is None else [int(c) for c in chosen]

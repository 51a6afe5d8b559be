"""PyTorch datasets over prepared samples: random patches for training, whole images for evaluation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from retinaseg.data.geometry import random_crop, resize_channels_first, resize_label
from retinaseg.data.preprocess import Preprocessing, field_of_view, prepare_image
from retinaseg.errors import InputError
from retinaseg.types import SampleSet


@dataclass
class PreparedSample:
    """A sample ready for the network.

    Attributes
    ----------
    id
        Sample id.
    image
        ``(C, H, W)`` float32 network input.
    label
        ``(H, W)`` int64 class indices.
    fov
        ``(H, W)`` bool; metrics are computed inside it.
    """

    id: str
    image: np.ndarray
    label: np.ndarray
    fov: np.ndarray


def prepare_samples(sample_set: SampleSet, settings: Preprocessing, fov_mode: str = "auto") -> list[PreparedSample]:
    """Preprocess every labelled sample once, so epochs only crop and augment.

    Raises
    ------
    InputError
        A sample without a label map.
    """
    prepared = []
    for s in sample_set.samples:
        if s.label is None:
            raise InputError(s.source or s.id, "sample has no label map; training and evaluation need labelled samples")
        prepared.append(
            PreparedSample(
                id=s.id,
                image=prepare_image(s.image, settings),
                label=s.label.astype(np.int64),
                fov=field_of_view(s, fov_mode, sample_set.modality),
            )
        )
    return prepared


def resize_samples(samples: list[PreparedSample], shape: tuple[int, int] | None) -> list[PreparedSample]:
    """The samples resized to ``shape`` for training and validation (``data.resize``); ``None`` leaves them as they are.

    Images are resized as :meth:`~retinaseg.models.trained.TrainedModel.predict`
    resizes its input (:func:`~retinaseg.data.geometry.resize_channels_first`);
    labels and FOV masks by nearest neighbour, so they hold no class id or
    mask value that was not there.

    Parameters
    ----------
    samples
        Prepared samples: ``(C, H, W)`` images, ``(H, W)`` labels and masks.
    shape
        Target ``(h, w)`` in pixels, or ``None``.

    Returns
    -------
    list of PreparedSample
        ``(C, h, w)`` float32 images, ``(h, w)`` int64 labels and bool masks.
    """
    if shape is None:
        return samples
    return [
        PreparedSample(
            id=s.id,
            image=resize_channels_first(s.image, shape),
            label=resize_label(s.label, shape),
            fov=resize_label(s.fov, shape),
        )
        for s in samples
    ]


class PatchDataset(Dataset):
    """Random training patches, ``patches_per_image`` per image and epoch.

    Parameters
    ----------
    samples
        Prepared training samples.
    patch_size
        ``(h, w)`` of each patch, or ``None`` for whole images (which must
        then share one size to be batched).
    patches_per_image
        Patches drawn from each image per epoch.
    augment
        ``augment(image_hwc, label, fov) -> (image_hwc, label, fov)`` or None.
    foreground_crop_prob
        Probability that a patch is centred on a foreground pixel; helps
        thin structures such as vessels.
    seed
        Seed of the patch positions; each item index draws from its own stream
        so results do not depend on the worker that loads it.
    """

    def __init__(
        self,
        samples: list[PreparedSample],
        patch_size: tuple[int, int] | None,
        patches_per_image: int = 1,
        augment: Callable | None = None,
        foreground_crop_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.samples = samples
        self.patch_size = None if patch_size is None else (int(patch_size[0]), int(patch_size[1]))
        self.patches_per_image = patches_per_image
        self.augment = augment
        self.foreground_crop_prob = foreground_crop_prob
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """New patch positions for each epoch, still reproducible."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples) * self.patches_per_image

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index // self.patches_per_image]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        image = sample.image.transpose(1, 2, 0)
        label, fov = sample.label, sample.fov
        if self.patch_size is not None:
            image, cut_label, cut_fov = random_crop(
                image, label, fov, self.patch_size, rng, foreground_prob=self.foreground_crop_prob
            )
            assert cut_label is not None and cut_fov is not None  # random_crop cuts every array it is given
            label, fov = cut_label, cut_fov
        if self.augment is not None:
            image, label, fov = self.augment(image, label, fov)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)),
            "label": torch.from_numpy(np.ascontiguousarray(label, dtype=np.int64)),
            "fov": torch.from_numpy(np.ascontiguousarray(fov, dtype=bool)),
        }


class WholeImageDataset(Dataset):
    """Whole prepared images, one per item (sizes may differ: use batch size 1)."""

    def __init__(self, samples: list[PreparedSample]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.samples[index]
        return {
            "image": torch.from_numpy(sample.image),
            "label": torch.from_numpy(sample.label),
            "fov": torch.from_numpy(sample.fov),
        }

"""Joint random augmentation of an image, its label map and its FOV mask.

Built on albumentations: geometric transforms move the image (bilinear) and
the masks (nearest neighbour, so no new label values appear) together;
intensity transforms touch the image only. Borders uncovered by a rotation or
shift are filled by mirroring, identically in image and masks, so a label
never disagrees with the image under it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import albumentations as A
import cv2
import numpy as np

from retinaseg.errors import InputError

# Smoothing (sigma, px) and strength (alpha) of the elastic field; with
# uniform noise this gives smooth displacements of a few pixels.
_ELASTIC_SIGMA_PX = 12.0
_ELASTIC_ALPHA = 120.0


@dataclass(frozen=True)
class AugmentConfig:
    """Which random augmentations to apply, and how strongly.

    The defaults are mild and valid for both OCT B-scans and fundus photos;
    vertical flips are off because OCT anatomy is ordered top to bottom.

    Attributes
    ----------
    hflip, vflip
        Random left-right / up-down flips.
    rotate_deg
        Rotation angle drawn uniformly from ``[-rotate_deg, rotate_deg]``.
    scale
        Zoom factor drawn from ``[1 - scale, 1 + scale]``.
    translate
        Shift drawn from ``[-translate, translate]`` times the image size.
    brightness
        Additive brightness change, fraction of the full [0, 1] range.
    contrast
        Relative contrast change drawn from ``[-contrast, contrast]``.
    gamma
        Relative change of the gamma exponent, drawn from ``[-gamma, gamma]``.
    noise_std
        Additive Gaussian noise with standard deviation drawn from
        ``[0, noise_std]`` (fraction of the [0, 1] range).
    elastic
        Smooth elastic deformation (a few pixels).
    p
        Probability with which each enabled transform is applied.
    """

    hflip: bool = True
    vflip: bool = False
    rotate_deg: float = 10.0
    scale: float = 0.1
    translate: float = 0.05
    brightness: float = 0.1
    contrast: float = 0.1
    gamma: float = 0.0
    noise_std: float = 0.0
    elastic: bool = False
    p: float = 0.5

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AugmentConfig:
        """Build from a config mapping; unknown keys raise :class:`InputError`."""
        known = {f.name for f in fields(cls)}
        for key in values:
            if key not in known:
                raise InputError(f"augment.{key}", f"unknown augmentation option; use {', '.join(sorted(known))}")
        return cls(**values)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            key = f"augment.{f.name}"
            if isinstance(f.default, bool):
                if not isinstance(value, (bool, np.bool_)):
                    raise InputError(key, f"must be true or false, got {value!r}")
            elif isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float)) or value < 0:
                raise InputError(key, f"must be a number >= 0, got {value!r}")
            elif f.name in ("translate", "noise_std", "p") and value > 1:
                raise InputError(key, f"must lie in [0, 1], got {value}")
            elif f.name in ("scale", "gamma") and value >= 1:
                # The factor 1 - value must stay positive.
                raise InputError(key, f"must lie in [0, 1), got {value}")


class Augmentation:
    """A seeded, callable joint augmentation; build it with :func:`build_augmentation`.

    Call it as ``image, label, fov = augmentation(image, label, fov)``:

    - ``image``: ``(H, W)`` or ``(H, W, C)`` float32 in [0, 1] (C = 1 or 3);
    - ``label``: ``(H, W)`` integer class map (any integer dtype) or ``None``;
    - ``fov``: ``(H, W)`` bool mask or ``None``.

    Outputs have the input shapes and dtypes. With no transform enabled the
    inputs are returned unchanged.

    Each DataLoader worker receives a copy with the same random state; call
    :meth:`reseed` in the worker (e.g. with the worker's seed) so workers do
    not repeat each other's augmentations.
    """

    def __init__(self, transforms: list[A.BasicTransform], seed: int | None) -> None:
        self._compose = A.Compose(transforms, additional_targets={"fov": "mask"}, seed=seed) if transforms else None

    @property
    def is_identity(self) -> bool:
        """True when no transform is enabled."""
        return self._compose is None

    def reseed(self, seed: int) -> None:
        """Restart the random stream from ``seed``."""
        if self._compose is not None:
            self._compose.set_random_seed(seed)

    def __call__(
        self, image: np.ndarray, label: np.ndarray | None = None, fov: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        if self._compose is None:
            return image, label, fov
        data: dict[str, np.ndarray] = {"image": np.asarray(image, dtype=np.float32)}
        # OpenCV warps no 64-bit integers and no bools; class indices fit uint8.
        if label is not None:
            if label.size and (label.min() < 0 or label.max() > 255):
                raise InputError("label", "class indices must lie in 0..255 for augmentation")
            data["mask"] = label.astype(np.uint8)
        if fov is not None:
            data["fov"] = fov.astype(np.uint8)
        out = self._compose(**data)
        return (
            out["image"].reshape(out["image"].shape[:2] + np.shape(image)[2:]),
            None if label is None else out["mask"].astype(label.dtype),
            None if fov is None else out["fov"].astype(bool),
        )


def build_augmentation(cfg: AugmentConfig | dict[str, Any] | None, seed: int | None = None) -> Augmentation:
    """Build the joint augmentation described by ``cfg``.

    Parameters
    ----------
    cfg
        An :class:`AugmentConfig`, a mapping of its fields (unknown keys raise
        :class:`InputError` naming the key), or ``None`` for no augmentation.
    seed
        Seed of the augmentation's own random stream (albumentations ignores
        NumPy's and Python's global seeds); ``None`` draws a fresh one.

    Returns
    -------
    Augmentation
        Callable ``(image, label, fov) -> (image, label, fov)``.
    """
    if cfg is None:
        return Augmentation([], seed)
    if isinstance(cfg, dict):
        cfg = AugmentConfig.from_dict(cfg)
    masks_mirrored = {"border_mode": cv2.BORDER_REFLECT_101, "mask_interpolation": cv2.INTER_NEAREST}
    transforms: list[A.BasicTransform] = []
    if cfg.hflip:
        transforms.append(A.HorizontalFlip(p=cfg.p))
    if cfg.vflip:
        transforms.append(A.VerticalFlip(p=cfg.p))
    if cfg.rotate_deg or cfg.scale or cfg.translate:
        transforms.append(
            A.Affine(
                rotate=(-cfg.rotate_deg, cfg.rotate_deg),
                scale=(1 - cfg.scale, 1 + cfg.scale),
                translate_percent={"x": (-cfg.translate, cfg.translate), "y": (-cfg.translate, cfg.translate)},
                keep_ratio=True,
                interpolation=cv2.INTER_LINEAR,
                p=cfg.p,
                **masks_mirrored,
            )
        )
    if cfg.elastic:
        transforms.append(
            A.ElasticTransform(
                alpha=_ELASTIC_ALPHA,
                sigma=_ELASTIC_SIGMA_PX,
                noise_distribution="uniform",
                interpolation=cv2.INTER_LINEAR,
                p=cfg.p,
                **masks_mirrored,
            )
        )
    if cfg.brightness or cfg.contrast:
        transforms.append(
            A.RandomBrightnessContrast(
                brightness_limit=(-cfg.brightness, cfg.brightness),
                contrast_limit=(-cfg.contrast, cfg.contrast),
                p=cfg.p,
            )
        )
    if cfg.gamma:
        transforms.append(A.RandomGamma(gamma_limit=(100 * (1 - cfg.gamma), 100 * (1 + cfg.gamma)), p=cfg.p))
    if cfg.noise_std:
        transforms.append(A.GaussNoise(std_range=(0.0, cfg.noise_std), p=cfg.p))
    if cfg.p == 0:
        transforms = []
    return Augmentation(transforms, seed)

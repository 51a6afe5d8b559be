"""Turn a raw image into the network's input: channel choice, CLAHE, normalisation.

Training, evaluation and prediction all go through :func:`prepare_image` with
the preprocessing settings stored in the checkpoint, so a model always sees its
inputs the way it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from retinaseg.data.fov import estimate_fov
from retinaseg.data.geometry import check_size
from retinaseg.data.normalize import clahe, normalize_image, to_grey
from retinaseg.errors import InputError
from retinaseg.types import Sample

CHANNEL_MODES = ("grey", "green", "rgb")


@dataclass(frozen=True)
class Preprocessing:
    """Settings of :func:`prepare_image` (stored in checkpoints).

    Attributes
    ----------
    channels
        ``"grey"`` (1 channel; RGB inputs are converted by luminance),
        ``"green"`` (1 channel; the green channel of RGB fundus photos, where
        vessels have the most contrast) or ``"rgb"`` (3 channels).
    clahe
        Apply contrast-limited adaptive histogram equalisation first.
    normalize
        A method of :func:`retinaseg.data.normalize.normalize_image`.
    resize
        ``(h, w)`` in pixels the network was trained at (``data.resize``), or
        ``None``: images at their own size. Not applied by
        :func:`prepare_image`, so labels keep their resolution for scoring:
        training resizes images and labels together
        (:func:`~retinaseg.data.dataset.resize_samples`), and
        :meth:`~retinaseg.models.trained.TrainedModel.predict` resizes its
        input to this size and the logits back to the input's.
    """

    channels: str = "grey"
    clahe: bool = False
    normalize: str = "percentile"
    resize: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.resize is not None:
            # Weight files store the size as a JSON list; a tuple keeps the settings comparable.
            object.__setattr__(self, "resize", check_size(self.resize))

    @property
    def in_channels(self) -> int:
        return 3 if self.channels == "rgb" else 1

    def to_dict(self) -> dict:
        return asdict(self)


def choose_channels(requested: str, modality: str, image_channels: int) -> str:
    """Resolve ``"auto"``: green channel for RGB fundus photos, grey otherwise."""
    if requested == "auto":
        return "green" if modality == "fundus" and image_channels == 3 else "grey"
    if requested not in CHANNEL_MODES:
        raise InputError("data.channels", f"unknown channel mode {requested!r}; use auto, {', '.join(CHANNEL_MODES)}")
    return requested


def prepare_image(image: np.ndarray, settings: Preprocessing) -> np.ndarray:
    """Network input for one image.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, 3)`` array of any integer or float dtype.
    settings
        Channel mode, CLAHE and normalisation.

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)`` float32, ``C`` = ``settings.in_channels``.
    """
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if settings.channels == "rgb":
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
    elif image.ndim == 3:
        image = to_grey(image, channel="green" if settings.channels == "green" else "luminance")
    if settings.clahe:
        image = clahe(_to_uint8(image))
    image = normalize_image(image, settings.normalize)
    return np.ascontiguousarray(image[None] if image.ndim == 2 else image.transpose(2, 0, 1), dtype=np.float32)


def field_of_view(sample: Sample, mode: str, modality: str) -> np.ndarray:
    """The sample's FOV mask: from its file, estimated (fundus), or everything.

    ``mode`` is ``"auto"`` (file if present, else estimated for fundus photos
    and the whole image for OCT) or ``"none"`` (the whole image).
    """
    if mode not in ("auto", "none"):
        raise InputError("data.fov", f"unknown FOV mode {mode!r}; use auto or none")
    if mode == "auto" and sample.fov is not None:
        return sample.fov.astype(bool)
    if mode == "auto" and modality == "fundus":
        return estimate_fov(sample.image)
    return np.ones(sample.image.shape[:2], dtype=bool)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    scaled = normalize_image(image, "minmax")
    return np.round(scaled * 255).astype(np.uint8)

"""Core data containers shared by readers, datasets, training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from retinaseg.errors import InputError

Task = Literal["multiclass", "binary"]
Modality = Literal["oct", "fundus"]


@dataclass
class Sample:
    """One 2-D image with its optional label map and field-of-view mask.

    Attributes
    ----------
    id
        Unique name of the sample inside its set (e.g. ``"Subject_01_00"``).
    subject
        Subject / patient id; splits never put one subject in two splits.
    image
        ``(H, W)`` grey or ``(H, W, 3)`` RGB array, uint8, uint16 or float.
    label
        ``(H, W)`` uint8 class-index map, or ``None`` when unlabelled.
    fov
        ``(H, W)`` bool field-of-view mask (fundus), or ``None`` (all valid).
    spacing_um
        Pixel spacing ``(row_um, col_um)`` in micrometres; ``None`` (or a
        ``None`` entry) where unknown. For OCT B-scans ``row_um`` is axial.
    source
        Path of the file the image came from, used in error messages.
    """

    id: str
    subject: str
    image: np.ndarray
    label: np.ndarray | None = None
    fov: np.ndarray | None = None
    spacing_um: tuple[float | None, float | None] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        shape = self.image.shape[:2]
        for name in ("label", "fov"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[:2] != shape:
                raise InputError(
                    self.source or self.id,
                    f"{name} size {arr.shape[1]}x{arr.shape[0]} does not match image size {shape[1]}x{shape[0]} (WxH)",
                )

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def channels(self) -> int:
        return 1 if self.image.ndim == 2 else int(self.image.shape[2])


@dataclass
class SampleSet:
    """A list of samples sharing one label convention.

    Attributes
    ----------
    samples
        The samples, in a stable order.
    class_names
        Name of each class index; ``class_names[k]`` is label value ``k``.
    task
        ``"binary"`` (background vs one foreground class, e.g. vessels) or
        ``"multiclass"`` (e.g. retinal layers).
    modality
        ``"oct"`` for B-scans, ``"fundus"`` for fundus photographs.
    name
        Human-readable name of the set (dataset name).
    """

    samples: list[Sample]
    class_names: list[str]
    task: Task = "multiclass"
    modality: Modality = "oct"
    name: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subjects(self) -> list[str]:
        """Distinct subject ids in first-seen order."""
        return list(dict.fromkeys(s.subject for s in self.samples))

    def select_subjects(self, subjects: list[str]) -> SampleSet:
        """A new set holding only the samples of the given subjects."""
        wanted = set(subjects)
        return replace(self, samples=[s for s in self.samples if s.subject in wanted])

    def __len__(self) -> int:
        return len(self.samples)

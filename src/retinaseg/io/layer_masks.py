"""Merge separate binary layer masks into one label map.

Some annotation projects draw each structure as its own binary mask (e.g.
whole retina, RPE, photoreceptors, a transition zone, "rest of retina"). Such
masks overlap and disagree at their edges. :func:`merge_layer_masks` joins
them with one explicit rule and counts every disagreement.

Priority rule: where several masks claim a pixel, the mask listed EARLIER in
``priority`` wins. List thin, specific layers (RPE, photoreceptors) before
broad ones (whole retina), otherwise the broad mask swallows them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.folders import image_files
from retinaseg.io.images import read_binary_mask, read_image
from retinaseg.types import Modality, Sample, SampleSet

logger = logging.getLogger(__name__)


@dataclass
class MergeReport:
    """Counts of what :func:`merge_layer_masks` decided.

    Attributes
    ----------
    conflict_pixels
        Pixels claimed by two or more masks (each pixel counted once).
    conflicts_by_pair
        ``{(winner, loser): pixels}``: pixels of mask ``loser`` given to
        ``winner``. A pixel claimed by three masks counts in two pairs.
    unlabelled_pixels
        Pixels claimed by no mask (left as background 0).
    """

    conflict_pixels: int = 0
    conflicts_by_pair: dict[tuple[str, str], int] = field(default_factory=dict)
    unlabelled_pixels: int = 0


def _default_class_ids(priority: list[str]) -> dict[str, int]:
    return {name: index + 1 for index, name in enumerate(priority)}


def _check_names(masks: dict[str, np.ndarray], priority: list[str], class_ids: dict[str, int]) -> None:
    if len(set(priority)) != len(priority):
        raise InputError("priority", "names a mask more than once")
    if set(priority) != set(masks):
        raise InputError("priority", f"must list each mask exactly once: masks {sorted(masks)}, priority {priority}")
    missing = [name for name in priority if name not in class_ids]
    if missing:
        raise InputError("class_ids", f"no class id for {', '.join(missing)}")
    bad = {name: class_ids[name] for name in priority if not 1 <= class_ids[name] <= 255}
    if bad:
        raise InputError("class_ids", f"ids must be 1..255 (0 is background): {bad}")


def merge_layer_masks(
    masks: dict[str, np.ndarray],
    priority: list[str],
    class_ids: dict[str, int] | None = None,
) -> tuple[np.ndarray, MergeReport]:
    """Merge binary masks into one class-index map, earlier ``priority`` first.

    Parameters
    ----------
    masks
        ``{name: (H, W) array}``; non-zero pixels are inside the mask.
    priority
        Every mask name once; where masks overlap, the earlier name wins.
    class_ids
        ``{name: class index}`` in 1..255 (several names may share one).
        Default: 1, 2, ... in ``priority`` order.

    Returns
    -------
    label : numpy.ndarray
        ``(H, W)`` uint8: 0 where no mask claims the pixel, else the class id
        of the winning mask.
    report : MergeReport
        Conflict and unlabelled pixel counts.

    Raises
    ------
    InputError
        ``priority`` does not list every mask exactly once, a class id is
        missing or outside 1..255, or the masks differ in shape or are not 2-D.
    """
    class_ids = _default_class_ids(priority) if class_ids is None else class_ids
    _check_names(masks, priority, class_ids)
    shapes = {name: np.shape(masks[name]) for name in priority}
    if len(set(shapes.values())) != 1 or len(shapes[priority[0]]) != 2:
        raise InputError("masks", f"must all be 2-D with one shape, got {shapes}")

    claims = np.stack([np.asarray(masks[name]) != 0 for name in priority])  # (N, H, W)
    claimed = claims.any(axis=0)
    winner = np.argmax(claims, axis=0)  # first claiming mask in priority order
    ids = np.array([class_ids[name] for name in priority], dtype=np.uint8)
    label = np.where(claimed, ids[winner], 0).astype(np.uint8)

    conflicts_by_pair: dict[tuple[str, str], int] = {}
    for loser_index, loser in enumerate(priority):
        lost = claims[loser_index] & (winner != loser_index)
        counts = np.bincount(winner[lost], minlength=len(priority))
        for winner_index in np.flatnonzero(counts):
            conflicts_by_pair[(priority[winner_index], loser)] = int(counts[winner_index])
    report = MergeReport(
        conflict_pixels=int((claims.sum(axis=0) > 1).sum()),
        conflicts_by_pair=conflicts_by_pair,
        unlabelled_pixels=int((~claimed).sum()),
    )
    return label, report


def load_layer_mask_folder(
    folder: str | os.PathLike[str],
    layer_suffixes: dict[str, str],
    priority: list[str],
    *,
    class_ids: dict[str, int] | None = None,
    modality: Modality = "oct",
    name: str = "",
) -> SampleSet:
    """Load images with one binary mask file per layer and merge the masks.

    Parameters
    ----------
    folder
        Folder with images ``<stem>.<ext>`` and masks ``<stem><suffix>.<ext>``,
        e.g. ``scan01.png``, ``scan01_rpe.png``, ``scan01_retina.png``.
        Files whose stem ends with a layer suffix are masks; the rest are
        images.
    layer_suffixes
        ``{layer name: file-stem suffix}``, e.g. ``{"rpe": "_rpe"}``.
    priority, class_ids
        Passed to :func:`merge_layer_masks`.
    modality
        ``"oct"`` or ``"fundus"``.
    name
        Name of the set; default: the folder's name.

    Returns
    -------
    SampleSet
        One sample per image (id = stem, subject = stem), label = merged
        masks. ``class_names`` is ``"background"`` then, for each class id,
        the layer name(s) joined by ``"+"``. ``extra["merge_reports"]`` maps
        sample id -> :class:`MergeReport`; samples with conflicts are also
        logged as warnings.

    Raises
    ------
    InputError
        No images, a missing layer mask (all are named), a mask that is not
        binary (0/255 or 0/1; the values are listed) or whose size differs
        from its image, or a problem reported by :func:`merge_layer_masks`.
    """
    folder = Path(folder)
    class_ids = _default_class_ids(priority) if class_ids is None else class_ids
    files = image_files(folder)
    suffixes = tuple(layer_suffixes.values())
    stems = [stem for stem in files if not stem.endswith(suffixes)]
    if not stems:
        raise InputError(folder, "no images (files whose stem does not end with a layer suffix)")
    missing = [f"{stem}{suffix}" for stem in stems for suffix in suffixes if f"{stem}{suffix}" not in files]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(folder, f"missing layer masks: {', '.join(missing[:5])}{more}")

    samples, reports = [], {}
    for stem in stems:
        image = read_image(files[stem])
        masks = {}
        for layer, suffix in layer_suffixes.items():
            mask_path = files[f"{stem}{suffix}"]
            masks[layer] = read_binary_mask(mask_path)
            if masks[layer].shape != image.shape[:2]:
                raise InputError(mask_path, f"mask shape {masks[layer].shape} differs from image shape {image.shape[:2]}")
        label, report = merge_layer_masks(masks, priority, class_ids)
        if report.conflict_pixels:
            logger.warning(
                "%s: %d pixels claimed by several layer masks %s", files[stem], report.conflict_pixels, report.conflicts_by_pair
            )
        reports[stem] = report
        samples.append(Sample(id=stem, subject=stem, image=image, label=label, source=str(files[stem])))

    names_by_id: dict[int, list[str]] = {}
    for layer in priority:
        names_by_id.setdefault(class_ids[layer], []).append(layer)
    class_names = ["background"] + ["+".join(names_by_id.get(k, [f"class_{k}"])) for k in range(1, max(names_by_id) + 1)]
    return SampleSet(
        samples=samples,
        class_names=class_names,
        task="binary" if len(class_names) == 2 else "multiclass",
        modality=modality,
        name=name or folder.name,
        extra={"merge_reports": reports},
    )

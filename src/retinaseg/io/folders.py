"""Readers for image + mask folders, CHASE_DB1 and DRIVE.

Pairing rule (one rule, used everywhere): the mask of image ``<stem>.<ext>``
is the file whose stem is ``<stem minus strip_suffix> + mask_suffix``, with
any suffix in :data:`~retinaseg.io.images.IMAGE_SUFFIXES` (or ``mask_ext``).
Examples: ``Image_01L.jpg`` -> ``Image_01L_1stHO.png`` (``mask_suffix=
"_1stHO"``); DRIVE ``21_training.tif`` -> ``21_manual1.gif``
(``strip_suffix="_training"``, ``mask_suffix="_manual1"``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from retinaseg.errors import InputError
from retinaseg.io.images import (
    IMAGE_SUFFIXES,
    check_value_to_class,
    read_binary_mask,
    read_image,
    read_label_image,
)
from retinaseg.io.limits import check_class_names, check_regular_file
from retinaseg.types import Modality, Sample, SampleSet

_MAX_LISTED_FILES = 5
CHASE_ANNOTATORS = ("1stHO", "2ndHO")
DRIVE_SPLITS = ("training", "test")
VESSEL_CLASS_NAMES = ["background", "vessel"]


def _list_files(names: list[str]) -> str:
    more = f" and {len(names) - _MAX_LISTED_FILES} more" if len(names) > _MAX_LISTED_FILES else ""
    return ", ".join(names[:_MAX_LISTED_FILES]) + more


def image_files(folder: str | os.PathLike[str], ext: str | None = None) -> dict[str, Path]:
    """Image files of a folder, keyed by file stem.

    Parameters
    ----------
    folder
        Folder to list (not recursive).
    ext
        Only files with this suffix (e.g. ``".png"``, case-insensitive);
        default: any suffix in ``IMAGE_SUFFIXES``.

    Returns
    -------
    dict of str to Path
        ``{stem: path}`` sorted by stem.

    Raises
    ------
    InputError
        The folder does not exist; an entry with an image suffix is not a
        regular file (a pipe would block reading, a folder would be left out
        without a word); two files share a stem (``a.png`` and ``a.tif``),
        which would make pairing ambiguous.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "folder not found")
    suffixes = (ext.lower(),) if ext else IMAGE_SUFFIXES
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in suffixes:
            continue
        check_regular_file(path)
        if path.stem in found:
            raise InputError(folder, f"two files named {path.stem}: {found[path.stem].name} and {path.name}")
        found[path.stem] = path
    return dict(sorted(found.items()))


def _mask_stem(image_stem: str, strip_suffix: str, mask_suffix: str) -> str:
    if strip_suffix and image_stem.endswith(strip_suffix):
        image_stem = image_stem[: -len(strip_suffix)]
    return image_stem + mask_suffix


def pair_image_masks(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    mask_suffix: str = "",
    mask_ext: str | None = None,
    *,
    image_ext: str | None = None,
    strip_suffix: str = "",
) -> list[tuple[Path, Path]]:
    """Pair every image of a folder with its mask (see the module's rule).

    Parameters
    ----------
    images_dir, masks_dir
        Folders of images and masks (may be the same folder; then a
        ``mask_suffix`` is required and files that are masks of another image
        are not taken as images).
    mask_suffix
        Appended to the image stem to give the mask stem.
    mask_ext, image_ext
        Only consider masks / images with this suffix (e.g. ``".png"``).
    strip_suffix
        Removed from the end of the image stem before ``mask_suffix`` is
        appended (DRIVE: ``"_training"``).

    Returns
    -------
    list of (Path, Path)
        ``(image, mask)`` pairs sorted by image stem. Masks without an image
        are ignored (e.g. a second annotator's files).

    Raises
    ------
    InputError
        No images; images without a mask (the first few are named); two
        files with the same stem; same folder and no suffix.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    same_folder = images_dir.resolve() == masks_dir.resolve()
    if same_folder and not (mask_suffix or strip_suffix):
        raise InputError(masks_dir, "images and masks share this folder: give a mask_suffix")
    masks = image_files(masks_dir, mask_ext)
    images = image_files(images_dir, image_ext)
    if same_folder:
        mask_stems = {_mask_stem(stem, strip_suffix, mask_suffix) for stem in images}
        images = {stem: path for stem, path in images.items() if stem not in mask_stems}
    if not images:
        raise InputError(images_dir, f"no image files ({image_ext or ', '.join(IMAGE_SUFFIXES)})")
    pairs, unpaired = [], []
    for stem, image_path in images.items():
        mask_path = masks.get(_mask_stem(stem, strip_suffix, mask_suffix))
        if mask_path is None:
            unpaired.append(image_path.name)
        else:
            pairs.append((image_path, mask_path))
    if unpaired:
        expected = _mask_stem(Path(unpaired[0]).stem, strip_suffix, mask_suffix)
        raise InputError(
            masks_dir,
            f"no mask for {len(unpaired)} image(s): {_list_files(unpaired)} (expected e.g. {expected}.*)",
        )
    return pairs


def compile_subject_pattern(pattern: object) -> re.Pattern[str] | None:
    """Compile a ``subject_pattern`` option, refusing what is not a valid regular expression.

    Parameters
    ----------
    pattern
        Text of a regular expression (see :func:`subject_id`), an already
        compiled one, or ``None`` (one subject per file).

    Returns
    -------
    re.Pattern or None
        The compiled expression; ``None`` for ``None``.

    Raises
    ------
    InputError
        ``pattern`` is not text or ``None``, or not a valid expression.
    """
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    if not isinstance(pattern, str):
        raise InputError("subject_pattern", f"must be a regular expression (text), got {pattern!r:.60}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise InputError("subject_pattern", f"{pattern!r} is not a valid regular expression ({exc})") from None


def subject_id(stem: str, pattern: str | re.Pattern[str] | None, where: str | os.PathLike[str]) -> str:
    """Subject id of a file stem.

    Parameters
    ----------
    stem
        File name without suffix.
    pattern
        Regular expression searched in ``stem``; the subject is its group
        named ``subject`` if present, else its first group, else the whole
        match. ``None``: the whole stem.
    where
        File named in the error message.

    Raises
    ------
    InputError
        ``pattern`` is not a valid expression, does not match ``stem``, or
        gives an empty subject.
    """
    compiled = compile_subject_pattern(pattern)
    if compiled is None:
        return stem
    match = compiled.search(stem)
    if match is None:
        raise InputError(where, f"file name does not match subject_pattern {compiled.pattern!r}")
    if "subject" in match.groupdict():
        subject = match.group("subject")
    else:
        subject = match.group(1) if match.groups() else match.group(0)
    if not subject:  # an optional group that did not take part, or an empty match
        raise InputError(where, f"subject_pattern {compiled.pattern!r} gives an empty subject for {stem!r}")
    return subject


def _read_fov(path: Path, shape: tuple[int, int]) -> np.ndarray:
    fov = read_binary_mask(path)
    if fov.shape != shape:
        raise InputError(path, f"FOV size {fov.shape[1]}x{fov.shape[0]} differs from image {shape[1]}x{shape[0]} (WxH)")
    return fov


def _declared_classes(class_names: list[str] | None, value_to_class: dict[int, int] | None, modality: Modality) -> list[str]:
    """The class list of a folder, checked against ``value_to_class`` before any file is read."""
    if class_names is not None:
        class_names = check_class_names(class_names)
        if value_to_class is not None:
            check_value_to_class(value_to_class, len(class_names))
        return class_names
    if value_to_class is not None:
        top = max(check_value_to_class(value_to_class).values())
        if top >= 2:
            return [f"class_{k}" for k in range(top + 1)]
    return list(VESSEL_CLASS_NAMES) if modality == "fundus" else ["background", "foreground"]


def load_image_mask_folder(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    *,
    mask_suffix: str = "",
    mask_ext: str | None = None,
    image_ext: str | None = None,
    strip_suffix: str = "",
    class_names: list[str] | None = None,
    value_to_class: dict[int, int] | None = None,
    subject_pattern: str | None = None,
    fov_dir: str | os.PathLike[str] | None = None,
    fov_suffix: str = "",
    modality: Modality = "fundus",
    name: str = "",
) -> SampleSet:
    """Load a folder of images with a folder of label masks.

    Parameters
    ----------
    images_dir, masks_dir
        Image and mask folders, paired by :func:`pair_image_masks` (with
        ``mask_suffix``, ``mask_ext``, ``image_ext``, ``strip_suffix``).
    class_names
        Name of each class id (see
        :func:`~retinaseg.io.limits.check_class_names`). Default: a binary
        set, ``["background", "vessel"]`` (``"foreground"`` for OCT), or
        ``"class_0"`` ... up to the largest class of ``value_to_class``.
    value_to_class
        Stored mask value -> class id, see
        :func:`~retinaseg.io.images.read_label_image`. Default: masks store
        class ids, and binary masks may store 0/255.
    subject_pattern
        Regular expression giving the subject id from the image stem (see
        :func:`subject_id`); default: one subject per image.
    fov_dir, fov_suffix
        Optional folder of binary field-of-view masks; the FOV of image
        ``<stem>.<ext>`` is ``<stem><fov_suffix>.*`` (``strip_suffix`` is not
        applied).
    modality
        ``"fundus"`` or ``"oct"``.
    name
        Name of the set; default: the images folder's name.

    Returns
    -------
    SampleSet
        Samples sorted by image stem (the sample id); images as read by
        :func:`~retinaseg.io.images.read_image`, labels ``(H, W)`` uint8,
        ``fov`` ``(H, W)`` bool or ``None``, no pixel spacing. Task
        ``"binary"`` when there are two classes, else ``"multiclass"``.

    Raises
    ------
    InputError
        Invalid options (checked before any file is read); pairing problems,
        unreadable files, mask or FOV size different from its image, mask
        values that are not class ids (listed), a FOV that is not binary, a
        stem not matching ``subject_pattern``.
    """
    class_names = _declared_classes(class_names, value_to_class, modality)
    pattern = compile_subject_pattern(subject_pattern)
    pairs = pair_image_masks(images_dir, masks_dir, mask_suffix, mask_ext, image_ext=image_ext, strip_suffix=strip_suffix)
    fov_paths = dict(pair_image_masks(images_dir, fov_dir, fov_suffix, image_ext=image_ext)) if fov_dir is not None else {}
    samples = []
    for image_path, mask_path in pairs:
        image = read_image(image_path)
        label = read_label_image(mask_path, value_to_class, len(class_names))
        if label.shape != image.shape[:2]:
            raise InputError(
                mask_path,
                f"mask size {label.shape[1]}x{label.shape[0]} differs from image "
                f"{image_path.name} size {image.shape[1]}x{image.shape[0]} (WxH)",
            )
        fov = _read_fov(fov_paths[image_path], label.shape) if fov_dir is not None else None
        samples.append(
            Sample(
                id=image_path.stem,
                subject=subject_id(image_path.stem, pattern, image_path),
                image=image,
                label=label,
                fov=fov,
                source=str(image_path),
            )
        )
    return SampleSet(
        samples=samples,
        class_names=class_names,
        task="binary" if len(class_names) == 2 else "multiclass",
        modality=modality,
        name=name or Path(images_dir).name,
    )


def load_chase_db1(root: str | os.PathLike[str], annotator: str = "1stHO") -> SampleSet:
    """Load CHASE_DB1 (Fraz et al. 2012) retinal vessel images.

    Parameters
    ----------
    root
        The flat CHASE_DB1 folder: ``Image_XX{L,R}.jpg`` and
        ``Image_XX{L,R}_{1stHO,2ndHO}.png``.
    annotator
        ``"1stHO"`` (the usual reference) or ``"2ndHO"``.

    Returns
    -------
    SampleSet
        28 samples ``Image_XXL`` / ``Image_XXR``: ``(960, 999, 3)`` uint8
        RGB images, ``(960, 999)`` uint8 0/1 vessel labels. The subject is the
        child id ``"XX"`` (both eyes of a child share it). No FOV masks are
        shipped with CHASE_DB1, so ``fov`` is ``None``. Task ``"binary"``,
        modality ``"fundus"``.
    """
    if annotator not in CHASE_ANNOTATORS:
        raise InputError("annotator", f"{annotator!r} is not one of {', '.join(CHASE_ANNOTATORS)}")
    return load_image_mask_folder(
        root,
        root,
        mask_suffix=f"_{annotator}",
        image_ext=".jpg",
        class_names=VESSEL_CLASS_NAMES,
        subject_pattern=r"^Image_(\d+)[LR]$",
        modality="fundus",
        name="chase_db1",
    )


def load_drive(root: str | os.PathLike[str], split: str = "training") -> SampleSet:
    """Load one split of DRIVE (Staal et al. 2004) retinal vessel images.

    Parameters
    ----------
    root
        DRIVE folder with ``<split>/images/NN_<split>.tif``,
        ``<split>/1st_manual/NN_manual1.gif`` and
        ``<split>/mask/NN_<split>_mask.gif`` (the field of view).
    split
        ``"training"`` or ``"test"``.

    Returns
    -------
    SampleSet
        Samples ``"NN_<split>"`` (one subject ``"NN"`` each) with RGB images,
        0/1 vessel labels from the first observer and the shipped FOV masks.
        Task ``"binary"``, modality ``"fundus"``.
    """
    if split not in DRIVE_SPLITS:
        raise InputError("split", f"{split!r} is not one of {', '.join(DRIVE_SPLITS)}")
    split_dir = Path(root) / split
    return load_image_mask_folder(
        split_dir / "images",
        split_dir / "1st_manual",
        mask_suffix="_manual1",
        strip_suffix=f"_{split}",
        class_names=VESSEL_CLASS_NAMES,
        subject_pattern=r"^(\d+)_",
        fov_dir=split_dir / "mask",
        fov_suffix="_mask",
        modality="fundus",
        name=f"drive_{split}",
    )

"""Readers for the Duke DME data set (Chiu et al., Biomed. Opt. Express 2015).

Two forms are read:

- :func:`load_duke_npy`: the per-B-scan ``.npy`` arrays of the Y-Net / ReLayNet
  conversion (``DukeData/{train,val,test}/{images,masks}/Subject_XX_YY.npy``);
- :func:`load_duke_mat`: the original ``Subject_XX.mat`` files with manual
  layer boundaries, converted here to the same 10-class label maps.

Label values follow the 10-class ReLayNet convention tabled in
:mod:`retinaseg.conventions` (:data:`~retinaseg.conventions.DUKE_CLASS_NAMES`).

One-pixel offset between the two forms: the ``.npy`` conversion used Duke's
1-based MATLAB rows directly as 0-based indices, so its layers start one pixel
deeper than the grader's line. :func:`load_duke_mat` converts rows properly
(MATLAB row ``r`` is array row ``r - 1``), so its label maps sit one pixel
higher than the ``.npy`` ones. Layer thicknesses are the same in both.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import scipy.io

from retinaseg.conventions import (
    DUKE_AXIAL_UM,
    DUKE_BOUNDARY_NAMES,
    DUKE_CLASS_NAMES,
    DUKE_FLUID_CLASS,
)
from retinaseg.errors import InputError, describe_exception
from retinaseg.io.limits import check_image_size, check_oct_size, check_regular_file
from retinaseg.types import Sample, SampleSet

_NUM_BOUNDARIES = len(DUKE_BOUNDARY_NAMES)
_GRADERS = (1, 2)
_NPY_NAME = re.compile(r"^(Subject_\d+)_(\d+)$")
_MAT_NAME = re.compile(r"^Subject_\d+$")


def _as_uint8(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Cast an array holding integers 0..255 (any dtype, e.g. float32) to uint8."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "biuf":
        raise InputError(path, f"{what} has unsupported dtype {arr.dtype}")
    if arr.size and (not np.isfinite(arr).all() or (arr != np.round(arr)).any() or arr.min() < 0 or arr.max() > 255):
        raise InputError(path, f"{what} must hold integers 0..255")
    return arr.astype(np.uint8)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` file, read from its header alone."""
    check_regular_file(path, ".npy file")
    with path.open("rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            if version not in ((1, 0), (2, 0)):
                raise InputError(path, f"unsupported .npy format version {version[0]}.{version[1]}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
        except (OSError, ValueError, EOFError, SyntaxError) as exc:  # numpy's answers to a broken header
            raise InputError(path, f"cannot read .npy header ({describe_exception(exc)})") from exc
        return shape, dtype, handle.tell()


def _load_npy(path: Path, what: str) -> np.ndarray:
    """A 2-D numeric ``.npy`` array, its header checked against the limits and the file size before loading."""
    shape, dtype, offset = _npy_header(path)
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InputError(path, f"{what} has unsupported dtype {dtype}")
    if len(shape) != 2:
        raise InputError(path, f"{what} must be 2-D, got shape {shape}")
    check_image_size(*shape, path)
    declared = shape[0] * shape[1] * dtype.itemsize
    held = path.stat().st_size - offset
    if declared != held:
        raise InputError(path, f"header declares {shape} {dtype} ({declared} bytes) but the file holds {held}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"cannot read .npy file ({describe_exception(exc)})") from exc


def _duke_data_dir(root: Path) -> Path:
    return root / "DukeData" if (root / "DukeData").is_dir() else root


def load_duke_npy(root: str | os.PathLike[str]) -> SampleSet:
    """Load the per-B-scan Duke DME arrays.

    Parameters
    ----------
    root
        Folder holding ``DukeData/`` (or ``DukeData`` itself), laid out as
        ``{train,val,test}/{images,masks}/Subject_XX_YY.npy``. The upstream
        train/val/test folders are ignored: all B-scans are returned and the
        split is chosen later by subject.

    Returns
    -------
    SampleSet
        One sample per B-scan, sorted by id ``"Subject_XX_YY"`` (subject
        ``"Subject_XX"``, ``YY`` = ordinal of the annotated B-scan). Images
        ``(496, W)`` uint8, labels ``(496, W)`` uint8 in 0..9 (see
        :mod:`retinaseg.conventions`), ``spacing_um = (3.87, None)``; modality ``"oct"``, task
        ``"multiclass"``. Arrays stored as float32 holding integers (the
        upstream files) are accepted and cast to uint8.

    Raises
    ------
    InputError
        No ``.npy`` files; a file name not of the form ``Subject_XX_YY.npy``;
        a B-scan in two split folders; an image without its mask; unreadable
        arrays; an array that is not 2-D, not numeric, larger than the image
        limits or than its file (all checked from the header before
        loading); image/mask shape mismatch; mask values outside 0..9.
    """
    root = Path(root)
    data_dir = _duke_data_dir(root)
    image_paths = sorted(data_dir.glob("*/images/*.npy"))
    if not image_paths:
        raise InputError(root, "no Duke .npy B-scans found (expected DukeData/<split>/images/Subject_XX_YY.npy)")

    samples: dict[str, Sample] = {}
    for image_path in image_paths:
        match = _NPY_NAME.match(image_path.stem)
        if match is None:
            raise InputError(image_path, "file name is not of the form Subject_XX_YY.npy")
        sample_id = image_path.stem
        if sample_id in samples:
            raise InputError(image_path, f"B-scan {sample_id} also found at {samples[sample_id].source}")
        mask_path = image_path.parent.parent / "masks" / image_path.name
        if not mask_path.exists():
            raise InputError(image_path, f"mask {mask_path} is missing")
        image = _as_uint8(_load_npy(image_path, "image"), image_path, "image")
        label = _as_uint8(_load_npy(mask_path, "mask"), mask_path, "mask")
        if label.shape != image.shape:
            raise InputError(mask_path, f"mask shape {label.shape} differs from image shape {image.shape}")
        if label.size and label.max() >= len(DUKE_CLASS_NAMES):
            bad = np.unique(label[label >= len(DUKE_CLASS_NAMES)]).tolist()
            raise InputError(mask_path, f"mask values {bad} outside 0..{len(DUKE_CLASS_NAMES) - 1}")
        samples[sample_id] = Sample(
            id=sample_id,
            subject=match.group(1),
            image=image,
            label=label,
            spacing_um=(DUKE_AXIAL_UM, None),
            source=str(image_path),
        )
    return SampleSet(
        samples=[samples[k] for k in sorted(samples)],
        class_names=list(DUKE_CLASS_NAMES),
        task="multiclass",
        modality="oct",
        name="duke_dme",
    )


def boundaries_to_labels(boundary_rows_1based: np.ndarray, height: int) -> np.ndarray:
    """Rasterise Duke layer boundaries of one B-scan into class indices 0..8.

    Parameters
    ----------
    boundary_rows_1based
        ``(8, W)`` float boundary rows in MATLAB 1-based pixel units, ``NaN``
        where not annotated.
    height
        Number of rows ``H`` of the B-scan.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8. The pixel in 0-based row ``y`` gets the number of
        boundaries ``b`` with ``y + 1 >= b``, i.e. at or above it, so a
        boundary's own pixel belongs to the layer below it (MATLAB row ``r``
        is array row ``r - 1``; fractional rows round down the layer's top
        edge to the next whole pixel).

    Notes
    -----
    Each boundary is first limited to lie no deeper than every boundary
    below it (a running minimum from the bottom, ignoring ``NaN``). This
    orders crossing lines, and fills a missing boundary with the next
    annotated one below it, so layers whose boundaries are missing get zero
    thickness. Missing boundaries with no annotated one below are not
    counted. Labels of partly annotated columns are therefore only a
    best guess; :func:`load_duke_mat` marks those columns outside ``fov``.
    """
    ordered = np.fmin.accumulate(boundary_rows_1based[::-1], axis=0)[::-1]
    rows_1based = np.arange(1, height + 1, dtype=np.float64)[None, :, None]
    # NaN compares False, so boundaries still missing add nothing to the count.
    return (rows_1based >= ordered[:, None, :]).sum(axis=0).astype(np.uint8)


def _check_mat_sizes(path: Path, names: list[str]) -> None:
    """Refuse a ``.mat`` file whose variables declare more than an OCT volume, from their headers alone."""
    check_regular_file(path, ".mat file")
    try:
        declared = {name: shape for name, shape, _ in scipy.io.whosmat(path) if name in names}
    except NotImplementedError as exc:  # scipy's answer to v7.3 (HDF5) files
        raise InputError(path, "MATLAB v7.3 (HDF5) .mat files are not supported; re-save with save -v7") from exc
    except Exception as exc:  # scipy raises many types for non-MAT or broken files
        raise InputError(path, f"cannot read MATLAB file ({describe_exception(exc)})") from exc
    for name, shape in declared.items():
        # Every variable is H x W x N at most (boundaries: 8 x W x N).
        if len(shape) > 3:
            raise InputError(path, f"'{name}' must be at most 3-D, got shape {shape}")
        rows, ascans, bscans = (*shape, 1, 1)[:3]
        check_oct_size(bscans, rows, ascans, f"{path} ('{name}')")


def _loadmat(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    _check_mat_sizes(path, names)
    try:
        contents = scipy.io.loadmat(path, variable_names=names)
    except NotImplementedError as exc:  # scipy's answer to v7.3 (HDF5) files
        raise InputError(path, "MATLAB v7.3 (HDF5) .mat files are not supported; re-save with save -v7") from exc
    except Exception as exc:  # scipy raises many types for non-MAT or broken files
        raise InputError(path, f"cannot read MATLAB file ({describe_exception(exc)})") from exc
    missing = [name for name in names if name not in contents]
    if missing:
        raise InputError(path, f"missing variable(s) {', '.join(missing)}")
    return {name: np.asarray(contents[name]) for name in names}


def _read_duke_mat(path: Path, grader: int, crop: bool) -> tuple[list[Sample], dict[str, int], dict[str, int]]:
    layers_name, fluid_name = f"manualLayers{grader}", f"manualFluid{grader}"
    arrays = _loadmat(path, ["images", layers_name, fluid_name])
    images, layers, fluid = arrays["images"], arrays[layers_name], arrays[fluid_name]
    if images.ndim != 3:
        raise InputError(path, f"'images' must be H x W x N, got shape {images.shape}")
    height, width, num_bscans = images.shape
    if layers.shape != (_NUM_BOUNDARIES, width, num_bscans):
        raise InputError(path, f"'{layers_name}' must be {_NUM_BOUNDARIES} x {width} x {num_bscans}, got {layers.shape}")
    if fluid.shape != images.shape:
        raise InputError(path, f"'{fluid_name}' must be {height} x {width} x {num_bscans}, got {fluid.shape}")
    if layers.dtype.kind not in "biuf" or fluid.dtype.kind not in "biuf":
        raise InputError(path, f"'{layers_name}' and '{fluid_name}' must be numeric")
    images = _as_uint8(images, path, "'images'")
    layers = layers.astype(np.float64)

    annotated = np.flatnonzero(np.isfinite(layers).any(axis=(0, 1)))
    if annotated.size == 0:
        raise InputError(path, f"'{layers_name}' has no annotated B-scan (all NaN)")
    full_columns = np.isfinite(layers[:, :, annotated]).all(axis=0)  # (W, n_annotated)
    any_full = np.flatnonzero(full_columns.any(axis=1))
    if any_full.size == 0:
        raise InputError(path, f"'{layers_name}' has no A-scan with all {_NUM_BOUNDARIES} boundaries")
    # Like the published .npy conversion: one crop per subject, from the first
    # to the last A-scan annotated in any of its B-scans.
    x0, x1 = (int(any_full[0]), int(any_full[-1]) + 1) if crop else (0, width)

    subject = path.stem
    samples, bscan_index, crop_x0 = [], {}, {}
    for ordinal, index in enumerate(annotated.tolist()):
        label = boundaries_to_labels(layers[:, x0:x1, index], height)
        label[fluid[:, x0:x1, index] > 0] = DUKE_FLUID_CLASS
        columns = full_columns[x0:x1, ordinal]
        fov = None if crop and columns.all() else np.broadcast_to(columns, label.shape).copy()
        sample_id = f"{subject}_{ordinal:02d}"
        samples.append(
            Sample(
                id=sample_id,
                subject=subject,
                image=np.ascontiguousarray(images[:, x0:x1, index]),
                label=label,
                fov=fov,
                spacing_um=(DUKE_AXIAL_UM, None),
                source=str(path),
            )
        )
        bscan_index[sample_id] = index
        crop_x0[sample_id] = x0
    return samples, bscan_index, crop_x0


def load_duke_mat(path_or_folder: str | os.PathLike[str], *, grader: int = 1, crop: bool = True) -> SampleSet:
    """Load original Duke DME ``Subject_XX.mat`` files as 10-class label maps.

    Parameters
    ----------
    path_or_folder
        One ``.mat`` file, or a folder whose ``Subject_*.mat`` files are all
        read. Each file (MATLAB v5) holds ``images`` (H x W x N uint8, N = 61
        B-scans of 496 x 768), ``manualLayersG`` (8 x W x N boundary rows,
        1-based, ``NaN`` where not annotated) and ``manualFluidG`` (H x W x N,
        > 0 = fluid), ``G`` = ``grader``.
    grader
        Which manual annotation to use (1 or 2).
    crop
        If true (default), crop every B-scan of a file to the columns from
        the first to the last A-scan that has all 8 boundaries in any of the
        file's annotated B-scans (the published ``.npy`` conversion does the
        same). If false, keep the full width.

    Returns
    -------
    SampleSet
        One sample per annotated B-scan (a B-scan with any finite boundary),
        id ``"<file stem>_YY"`` (``YY`` = ordinal among the annotated
        B-scans), subject = file stem. Labels ``(H, W')`` uint8 0..9 as tabled in
        :mod:`retinaseg.conventions`, fluid drawn over the layers. ``fov`` marks the
        columns that have all 8 boundaries; it is ``None`` when ``crop`` is
        true and every column of the crop has them. ``extra`` holds
        ``"bscan_index"`` (0-based B-scan in the volume) and ``"crop_x0"``
        (first kept column) per sample id. Spacing ``(3.87, None)`` µm.

    Raises
    ------
    InputError
        A grader other than 1 or 2; no ``Subject_*.mat`` in the folder;
        unreadable or v7.3 (HDF5) file; variables declaring more than an OCT
        volume (checked from their headers before loading);
        missing variables; shapes that do not agree; no annotated B-scan.
    """
    if grader not in _GRADERS or isinstance(grader, bool):
        raise InputError("grader", f"must be one of {', '.join(map(str, _GRADERS))} (Duke's two graders), got {grader!r}")
    path_or_folder = Path(path_or_folder)
    if path_or_folder.is_dir():
        paths = sorted(p for p in path_or_folder.glob("Subject_*.mat") if _MAT_NAME.match(p.stem))
        if not paths:
            raise InputError(path_or_folder, "no Subject_XX.mat files found")
    elif path_or_folder.is_file():
        paths = [path_or_folder]
    else:
        raise InputError(path_or_folder, "file or folder not found")

    samples: list[Sample] = []
    extra: dict[str, dict[str, int]] = {"bscan_index": {}, "crop_x0": {}}
    for path in paths:
        file_samples, bscan_index, crop_x0 = _read_duke_mat(path, grader, crop)
        samples += file_samples
        extra["bscan_index"].update(bscan_index)
        extra["crop_x0"].update(crop_x0)
    return SampleSet(
        samples=samples,
        class_names=list(DUKE_CLASS_NAMES),
        task="multiclass",
        modality="oct",
        name="duke_dme",
        extra=extra,
    )

"""NIfTI export of OCT volumes and label volumes, for ITK-SNAP and 3D Slicer.

Voxel axes and world frame
--------------------------
The ``(N, H, W)`` B-scan array is written transposed, as a ``(W, H, N)``
NIfTI array: voxel index ``i`` is the A-scan, ``j`` the row (depth), ``k``
the B-scan. NIfTI's first index varies fastest, so the file holds the
B-scans one after another, row by row, as the ``(N, H, W)`` array does. The
affine (:func:`nifti_affine`) maps voxels to a RAS+ frame in mm in which the
scan sits as the eye is seen from the front, as on the SLO image:

- ``i`` (A-scan, SLO ``x`` to the right) runs to the patient's left: a
  fundus image is viewed from the front, so its right side is the
  patient's left, for either eye;
- ``j`` (row) runs posterior: depth goes from the vitreous into the eye;
- ``k`` (B-scan) runs superior when the B-scans move up the SLO image (as
  Spectralis rasters do, first B-scan inferior-most), inferior when they
  move down, superior when they do not move (one B-scan, circle, radial).

Viewers then show a B-scan in their axial view as the device does (A-scan 0
left, vitreous on top) and an en-face slice in the coronal view upright, as on
the SLO (axis codes ``L, P, S``). The frame is the scan's own: rotated or
vertical patterns are not turned; the origin is voxel ``(0, 0, 0)``. Voxel
sizes, which give the right proportions, are the physical spacings.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import nibabel as nib
import numpy as np

from retinaseg.conventions import SPECTRALIS_DISPLAY_GAMMA
from retinaseg.errors import InputError
from retinaseg.io.atomic import atomic_path
from retinaseg.volume import BSCAN_SPACING_RANGE_MM, OctVolume

_DESCRIP_BYTES = 80  # size of the NIfTI-1 header field ``descrip``


def nifti_affine(volume: OctVolume) -> np.ndarray:
    """Voxel-to-world affine of the ``(W, H, N)`` array written for ``volume`` (module docstring).

    Returns
    -------
    numpy.ndarray
        ``(4, 4)`` float64, mm. Column norms: ``scale_x_mm`` (A-scans),
        ``scale_z_mm`` (rows), mean of :meth:`OctVolume.bscan_spacing_mm`
        (B-scans). B-scans not apart (one B-scan; circle or radial scans
        around one centre) get ``scale_x_mm``, so the voxel is not degenerate.
    """
    gaps = volume.bscan_spacing_mm()
    spacing = float(gaps.mean()) if gaps.size else 0.0
    if not spacing > BSCAN_SPACING_RANGE_MM[0]:
        spacing = volume.scale_x_mm
    centre_y = volume.ascan_positions_mm()[:, :, 1].mean(axis=1)
    # SLO y points down (inferior); B-scans moving down the image run inferior.
    superior = -1.0 if centre_y[-1] > centre_y[0] else 1.0
    return np.diag([-volume.scale_x_mm, -volume.scale_z_mm, superior * spacing, 1.0])


def write_bscans_nifti(volume: OctVolume, path: str | os.PathLike[str], gamma: float = SPECTRALIS_DISPLAY_GAMMA) -> Path:
    """Write the B-scans as 8-bit display images to a NIfTI file, atomically.

    Parameters
    ----------
    volume
        The volume.
    path
        ``.nii.gz`` (gzip-compressed) or ``.nii`` file; its folder must exist.
    gamma
        Display exponent of :meth:`OctVolume.display_bscans`.

    Returns
    -------
    pathlib.Path
        ``path``. The file holds ``(W, H, N)`` uint8 images, invalid pixels 0.
    """
    images = volume.display_bscans(gamma)
    return _write(images, volume, path, f"OCT {volume.laterality} {volume.source}", intent=None)


def write_labels_nifti(
    labels: np.ndarray, volume: OctVolume, path: str | os.PathLike[str], class_names: Sequence[str] = ()
) -> Path:
    """Write a label volume to a NIfTI file on the grid of ``volume``, atomically.

    Parameters
    ----------
    labels
        ``(N, H, W)`` integer class map with values 0..255, same shape as ``volume``.
    volume
        The volume the labels belong to; gives the affine.
    path
        ``.nii.gz`` or ``.nii`` file; its folder must exist.
    class_names
        Name of each label value; stored in the header's ``descrip`` if they
        fit its 80 bytes, else left out.

    Returns
    -------
    pathlib.Path
        ``path``. The file holds ``(W, H, N)`` uint8 labels with the NIfTI
        intent ``label``.

    Raises
    ------
    InputError
        ``labels`` of another shape than ``volume``, not integer, or outside 0..255.
    """
    labels = np.asarray(labels)
    if labels.shape != volume.shape:
        raise InputError(path, f"labels of shape {labels.shape} for a volume of shape {volume.shape} (N, H, W)")
    if labels.dtype.kind not in "uib" or labels.min() < 0 or labels.max() > 255:  # shapes are never empty
        raise InputError(path, f"labels of dtype {labels.dtype}, values {labels.min()}..{labels.max()}: not classes 0..255")
    names = "labels: " + ",".join(class_names)
    descrip = names if class_names and len(names.encode("utf-8")) <= _DESCRIP_BYTES else ""
    return _write(labels.astype(np.uint8), volume, path, descrip, intent="label")


def _write(data: np.ndarray, volume: OctVolume, path: str | os.PathLike[str], descrip: str, intent: str | None) -> Path:
    """Write ``(N, H, W)`` uint8 ``data`` as a ``(W, H, N)`` NIfTI-1 image with ``volume``'s affine."""
    path = Path(path)
    gz = path.name.endswith(".nii.gz")
    if not (gz or path.name.endswith(".nii")):
        raise InputError(path, "a NIfTI file must end in .nii.gz or .nii")
    affine = nifti_affine(volume)
    image = nib.Nifti1Image(data.transpose(2, 1, 0), affine)
    image.header.set_xyzt_units(xyz="mm")
    # Both forms, code 1 (scanner), agree, so no viewer picks a different one.
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    # Non-ASCII text (a source path) does not fit the byte field; '?' stands in for it.
    image.header["descrip"] = descrip.encode("ascii", "replace")[:_DESCRIP_BYTES]
    if intent:
        image.header.set_intent(intent)
    # No file name (it would be the temporary one) and a zero time in the gzip header: same volume, same bytes.
    with (
        atomic_path(path) as tmp,
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if gz else nullcontext(raw) as stream,
    ):
        image.to_file_map(image.make_file_map({"image": stream}))
    return path

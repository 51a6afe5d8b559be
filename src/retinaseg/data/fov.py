"""Field-of-view (FOV) masks of fundus photographs.

A fundus camera images a roughly circular retinal field on a dark surround.
Pixels outside it carry no information and must not count in metrics. Some
datasets ship FOV masks; for the others (e.g. CHASE_DB1) the mask is
estimated by thresholding, as most vessel-segmentation papers do.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from retinaseg.errors import InputError

# Fraction of the way from the surround level to the bright retina at which
# the FOV edge is placed. Otsu's threshold was tried and rejected: on CHASE_DB1
# it cuts into the dark, vignetted periphery and drops up to 14% of the vessels.
_EDGE_FRACTION = 0.05


def estimate_fov(image: np.ndarray, threshold: float | None = None, *, erode_px: float = 2.0) -> np.ndarray:
    """Estimate the field-of-view mask of a fundus photo.

    Steps: threshold the red channel (the brightest one in fundus photos, so
    its FOV edge is the sharpest; grey images are used as they are), keep the
    largest connected region, fill its holes (dark lesions, vessels) and
    erode it by ``erode_px`` to drop the blurred, JPEG-ringing rim.

    Parameters
    ----------
    image
        ``(H, W, 3)`` RGB or ``(H, W)`` grey array, any dtype.
    threshold
        Intensity (in the image's units) above which a pixel is inside the
        field. ``None`` places it 5% of the way from the surround level (the
        median of the image border) to the bright retina (99th percentile).
    erode_px
        Radius of the Euclidean erosion in pixels; 0 keeps the rim.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool mask, True inside the field of view.

    Raises
    ------
    InputError
        A wrongly shaped image, or one with no pixel above the threshold.
    """
    if image.ndim == 3 and image.shape[2] in (3, 4):
        channel = image[..., 0]
    elif image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        channel = image.reshape(image.shape[:2])
    else:
        raise InputError("image", f"expected (H, W) grey or (H, W, 3) RGB, got shape {image.shape}")
    if erode_px < 0:
        raise InputError("erode_px", f"must be >= 0, got {erode_px}")
    channel = channel.astype(np.float32)
    if threshold is None:
        threshold = _automatic_threshold(channel)
    inside = channel > threshold
    regions, n_regions = ndimage.label(inside)
    if n_regions == 0:
        raise InputError("image", f"no field of view found: no pixel above threshold {threshold:.3g}")
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    fov = ndimage.binary_fill_holes(regions == sizes.argmax())
    if erode_px > 0:
        fov = ndimage.distance_transform_edt(fov) > erode_px
    return fov


def _automatic_threshold(channel: np.ndarray) -> float:
    border = np.concatenate([channel[0], channel[-1], channel[:, 0], channel[:, -1]])
    surround = float(np.median(border))
    bright = float(np.percentile(channel, 99))
    return surround + _EDGE_FRACTION * (bright - surround)

"""Layer thickness in micrometres from layer boundaries.

A layer's thickness along an A-scan is the axial distance between the
boundary above it and the boundary below it. Boundaries are row positions in
pixels (row 0 at the top, the vitreous side), so thickness in micrometres is
the row difference times the axial pixel size.
"""

from __future__ import annotations

import numpy as np

from retinaseg.errors import InputError

#: Name of the whole-retina (ILM to BM) thickness beside the per-layer ones.
TOTAL_RETINA = "total retina"


def layer_thickness_um(
    boundaries_px: np.ndarray,
    axial_um: float,
    *,
    tolerance_px: float = 0.5,
) -> np.ndarray:
    """Thickness of the layers between consecutive boundaries.

    Parameters
    ----------
    boundaries_px
        ``(..., B, W)`` row positions in pixels (row 0 at the top, sub-pixel
        allowed, NaN where unknown) of ``B >= 2`` boundaries ordered from top
        to bottom, e.g. ILM, NFL/GCL, ..., BM, for ``W`` A-scans. Leading
        axes (e.g. B-scans) are kept.
    axial_um
        Axial pixel size in micrometres (:attr:`retinaseg.volume.OctVolume.axial_um`,
        3.87 for Spectralis).
    tolerance_px
        Largest crossing, in pixels, of a boundary above the one before it
        that is taken as sub-pixel segmentation noise and clipped to zero
        thickness (genuine Spectralis lines cross by up to 3e-5 px).

    Returns
    -------
    numpy.ndarray
        ``(..., B - 1, W)`` float64 thickness in micrometres of the layer
        between boundary ``i`` and ``i + 1``; NaN where either is NaN.

    Raises
    ------
    InputError
        If the array has fewer than two boundaries or ``axial_um`` is not a
        positive number.
    ValueError
        If a boundary lies more than ``tolerance_px`` above the boundary
        before it: the boundaries are out of order, which is a bug in the
        caller, not something to clip away.

    Notes
    -----
    Total retinal thickness (ILM to BM) is the thickness of the single
    "layer" between the first and the last boundary::

        total_um = layer_thickness_um(b[..., [0, -1], :], axial_um)[..., 0, :]
    """
    b = np.asarray(boundaries_px, dtype=np.float64)
    if b.ndim < 2 or b.shape[-2] < 2:
        raise InputError("boundaries_px", f"must be (..., B, W) with B >= 2 boundaries, got shape {b.shape}")
    if not (np.isfinite(axial_um) and axial_um > 0):
        raise InputError("axial_um", f"must be a positive number of micrometres, got {axial_um}")
    step_px = np.diff(b, axis=-2)
    worst = np.nanmin(step_px, initial=0.0)
    if worst < -tolerance_px:
        index = np.unravel_index(np.nanargmin(step_px), step_px.shape)
        upper = index[-2]
        raise ValueError(
            f"boundary {upper + 1} lies {-worst:.3g} px above boundary {upper} at index {index}: "
            "boundaries must be ordered top to bottom"
        )
    return np.maximum(step_px, 0.0) * float(axial_um)

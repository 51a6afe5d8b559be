"""Display images: grey from colour, and 8-bit display values back to linear reflectance.

Exports without the device's raw values (folders of B-scan images, HEYEX XML)
hold display images ``u = 255 r ** gamma`` of the linear reflectance ``r``,
with the Spectralis-style ``gamma =``
:data:`~retinaseg.conventions.SPECTRALIS_DISPLAY_GAMMA`. Inverting it,
``r = (u / 255) ** (1 / gamma)``, makes
:meth:`~retinaseg.volume.OctVolume.display_bscans` give the images back
exactly.
"""

from __future__ import annotations

import numpy as np

from retinaseg.conventions import SPECTRALIS_DISPLAY_GAMMA

# ITU-R BT.601 luma weights, the convention of Pillow's "L" mode.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

# Reflectance of each 8-bit display value, the inverse of OctVolume.display_bscans().
_DISPLAY_TO_REFLECTANCE = ((np.arange(256) / 255.0) ** (1.0 / SPECTRALIS_DISPLAY_GAMMA)).astype(np.float32)


def reflectance_from_display(display: np.ndarray) -> np.ndarray:
    """Linear reflectance of 8-bit display images.

    Parameters
    ----------
    display
        uint8 display values, any shape.

    Returns
    -------
    numpy.ndarray
        float32 reflectance in ``[0, 1]``, the shape of ``display``; a table
        look-up, exact and light on memory.
    """
    return _DISPLAY_TO_REFLECTANCE[display]


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luminance of a colour image (exact for grey images saved as RGB).

    Parameters
    ----------
    rgb
        ``(..., 3)`` RGB values, any dtype.

    Returns
    -------
    numpy.ndarray
        ``(...)`` luminance in the input's dtype, rounded for integer images.
    """
    luma = rgb @ _LUMA_WEIGHTS
    if np.issubdtype(rgb.dtype, np.integer):
        luma = np.round(luma)
    return luma.astype(rgb.dtype)

"""Conventions shared across retinaseg: label classes, boundaries, device lines, display.

Readers (``io``), data sets (``data``), measurements (``analysis``) and
reports (``report``) all speak in these terms, so they are defined once here
and imported from here. The module imports nothing else from retinaseg.

Duke DME label maps
-------------------
The Duke DME data set (Chiu et al., Biomed. Opt. Express 2015), the phantom
and the shipped OCT layer model use the 10-class ReLayNet convention. Class
``k`` in 1..7 lies between boundary ``k`` and boundary ``k + 1``
(:data:`DUKE_BOUNDARY_NAMES`, 1-based here):

==  ========  ===================================
0   vitreous  above boundary 1 (ILM)
1   RNFL      ILM -> NFL/GCL
2   GCL+IPL   NFL/GCL -> IPL/INL
3   INL       IPL/INL -> INL/OPL
4   OPL       INL/OPL -> OPL/ONL
5   ONL-ISM   OPL/ONL -> ISM/ISE
6   ISE       ISM/ISE -> ISE/OS
7   OS-RPE    ISE/OS -> boundary 8 (Bruch's membrane)
8   choroid   below boundary 8
9   fluid     manual fluid, drawn over the layers
==  ========  ===================================

Device segmentation lines
-------------------------
:data:`DEVICE_LINE_NAMES` names the lines of a Spectralis export by their
index in the file, as the HSF-OCT-103 description and eyepy
(``SEG_MAPPING``) do. Each line is a boundary, named after the layer it
closes:

=====  ======  ===========================================
index  name    boundary
=====  ======  ===========================================
0      ILM     inner limiting membrane (vitreous / RNFL)
1      BM      Bruch's membrane (RPE / choroid)
2      RNFL    outer RNFL boundary (RNFL / GCL)
3      GCL     GCL / IPL
4      IPL     IPL / INL
5      INL     INL / OPL
6      OPL     OPL / ONL
7      ONL     ONL / ELM
8      ELM     external limiting membrane
14     PR1     myoid / ellipsoid zone (EZ)
15     PR2     outer segments / interdigitation zone (IZ)
16     RPE     IZ / RPE
17-18  IPL+/-  OCTA slab boundaries
=====  ======  ===========================================

Lines 9-13 (``IOS``, ``OPT``, ``CHO``, ``VIT``, ``ANT``) are rarely filled.

Display
-------
Spectralis shows, and exports as 8-bit images, ``u = 255 * r ** gamma`` of
the linear reflectance ``r`` with :data:`SPECTRALIS_DISPLAY_GAMMA`; the inverse
is ``r = (u / 255) ** (1 / gamma)``. Models see B-scans in this display.
"""

from __future__ import annotations

DUKE_CLASS_NAMES: list[str] = [
    "vitreous",
    "RNFL",
    "GCL+IPL",
    "INL",
    "OPL",
    "ONL-ISM",
    "ISE",
    "OS-RPE",
    "choroid",
    "fluid",
]
"""Name of each Duke label value (index = class), see the module table."""

DUKE_LAYER_CLASSES: tuple[int, ...] = tuple(range(DUKE_CLASS_NAMES.index("RNFL"), DUKE_CLASS_NAMES.index("choroid") + 1))
"""Layer classes of the Duke label maps top to bottom, RNFL .. choroid (1..8).

Boundary ``k`` (:data:`DUKE_BOUNDARY_NAMES`) is the upper edge of class
``DUKE_LAYER_CLASSES[k]``.
"""

DUKE_FLUID_CLASS: int = DUKE_CLASS_NAMES.index("fluid")
"""Fluid class of the Duke label maps (9); it is drawn over the layer labels."""

DUKE_BOUNDARY_NAMES: list[str] = [
    "ILM",
    "NFL/GCL",
    "IPL/INL",
    "INL/OPL",
    "OPL/ONL",
    "ISM/ISE",
    "ISE/OS",
    "BM",
]
"""Name of the upper edge of each class in :data:`DUKE_LAYER_CLASSES`."""

DUKE_AXIAL_UM = 3.87
"""Axial pixel spacing of the Duke Spectralis B-scans in micrometres."""

DEVICE_LINE_NAMES: tuple[str, ...] = (
    "ILM",
    "BM",
    "RNFL",
    "GCL",
    "IPL",
    "INL",
    "OPL",
    "ONL",
    "ELM",
    "IOS",
    "OPT",
    "CHO",
    "VIT",
    "ANT",
    "PR1",
    "PR2",
    "RPE",
    "IPL+",
    "IPL-",
)
"""Name of segmentation line ``i`` of a Spectralis export (see the module table)."""


def device_line_name(index: int) -> str:
    """Name of device segmentation line ``index``; ``"LINE<i>"`` past the known ones."""
    return DEVICE_LINE_NAMES[index] if index < len(DEVICE_LINE_NAMES) else f"LINE{index}"


DUKE_TO_DEVICE_LINES: dict[str, str] = {
    "ILM": "ILM",
    "NFL/GCL": "RNFL",
    "IPL/INL": "IPL",
    "INL/OPL": "INL",
    "OPL/ONL": "OPL",
    "ISM/ISE": "PR1",
    "ISE/OS": "PR2",
    "BM": "BM",
}
"""Device line (:data:`DEVICE_LINE_NAMES`) that corresponds to each Duke boundary.

ISE/OS is matched to ``PR2`` (outer segments / interdigitation zone), the
nearest line but not the same boundary: it lies deeper by about the
outer-segment length.
"""

SPECTRALIS_DISPLAY_GAMMA = 0.25
"""Exponent of the Spectralis display ``u = 255 * r ** gamma`` of linear reflectance ``r``.

The Duke DME B-scans (and so the shipped models' training images) are
8-bit exports under this transform.
"""

INVALID_DISPLAY_VALUE = 255
"""Grey value of pixels the device marked invalid, in the 8-bit display.

8-bit Spectralis exports (and so the Duke DME training images) show them
saturated white.
"""

DEFAULT_MODEL = "duke_layers_unet_boundary"
"""Shipped OCT layer model used when none is named."""

INFERENCE_CHOICES: tuple[str, ...] = (
    "auto",
    "fp32",
    "fp32_channels_last",
    "fp32_folded_channels_last",
    "bf16_channels_last",
    "bf16_autocast",
    "onnxruntime",
)
"""Values of ``--inference``: ``auto`` or an option of :data:`retinaseg.inference.options.INFERENCE_OPTIONS`.

Here, so that commands check the value before PyTorch is imported.
"""

"""B-scan pictures drawn straight into arrays, without a plotting library.

A B-scan of the report is a stack of pictures the browser lays over each
other (each one the B-scan's size, row 0 at the top):

- the grey B-scan as JPEG (speckle does not compress losslessly: a PNG of a
  768-A-scan B-scan is several times larger);
- the class colours as a palette PNG whose entries are translucent
  (opacity ``alpha``; class 0 transparent), so the browser blends them over
  the grey exactly as :func:`retinaseg.report.palette.overlay` would;
- the boundary lines, one pixel wide with a dark edge, as a palette PNG;
- reference lines (device or manual segmentation), black with white
  dashes, as a palette PNG.

The colour and line pictures hold a few colours in large runs and take a
few kB each. Everything is vectorised over the image; :func:`composite`
blends the layers into one RGB picture, as a browser shows them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retinaseg.conventions import INVALID_DISPLAY_VALUE, SPECTRALIS_DISPLAY_GAMMA
from retinaseg.errors import InputError
from retinaseg.report.encoding import jpeg_bytes, png_bytes

#: Opacity of the class colours over the B-scan.
CLASS_ALPHA = 0.3

#: JPEG quality of the grey B-scans: speckle hides the loss (no visible difference
#: from the PNG at 1:1), and a 768-A-scan B-scan takes ~25 kB instead of ~150 kB.
BSCAN_JPEG_QUALITY = 60

# zlib level of the colour and line pictures: small and sparse, so level 6 costs ~1 ms
# more than level 1 and saves ~20 %.
_LAYER_PNG_LEVEL = 6

# A B-scan shown flatter than this (height / width) is stretched in depth:
# the retina is ~0.3 mm thick on a 6-10 mm wide scan and its layers would
# be a few pixels high.
_MIN_BSCAN_ASPECT = 1.0 / 3.0

# Palette of the line pictures: 0 transparent, 1 the dark edge, then one entry per line colour.
_EDGE_RGBA = (0, 0, 0, 200)
# Reference lines: dashes this many A-scans long, alternately black and white.
_DASH_PX = 3


def display_rows(reflectance: np.ndarray, gamma: float = SPECTRALIS_DISPLAY_GAMMA) -> np.ndarray:
    """8-bit B-scans as the network sees them, for any part of a volume.

    Parameters
    ----------
    reflectance
        Linear reflectance, any shape (e.g. ``volume.reflectance[:, top:bottom]``);
        NaN = invalid.
    gamma
        Display exponent.

    Returns
    -------
    numpy.ndarray
        uint8 of the same shape: ``round(255 * clip(r, 0, 1) ** gamma)``, invalid
        pixels :data:`~retinaseg.conventions.INVALID_DISPLAY_VALUE`: the values of
        :func:`retinaseg.inference.volume.network_images` on those pixels,
        computed only where they are shown.
    """
    r = np.asarray(reflectance, dtype=np.float32)
    invalid = np.isnan(r)
    values = np.clip(np.where(invalid, np.float32(0.0), r), 0.0, 1.0)
    images = np.round(255.0 * values ** np.float32(gamma)).astype(np.uint8)
    images[invalid] = INVALID_DISPLAY_VALUE
    return images


def stretch_and_note(
    height_px: int,
    width_px: int,
    axial_um: float | None,
    lateral_um: float | None,
    depth_exaggeration: float | None = None,
) -> tuple[float | None, str]:
    """How much to stretch a B-scan in depth for display, and the words saying so.

    Parameters
    ----------
    height_px, width_px
        Rows and A-scans shown.
    axial_um, lateral_um
        Pixel height and A-scan spacing in µm; ``None`` when unknown.
    depth_exaggeration
        Stretch factor to use; ``None`` picks 1 unless the B-scan would be
        shown flatter than 1:3 (height:width), then the smallest integer
        that reaches 1:3.

    Returns
    -------
    tuple of float or None, and str
        The factor (``None`` without both scales: pixels are then shown
        square) and e.g. ``"depth stretched ×2 for readability"``.
    """
    if axial_um is None or lateral_um is None:
        return None, "square pixels, scale unknown"
    if depth_exaggeration is None:
        ratio = (height_px * axial_um) / (width_px * lateral_um)
        depth_exaggeration = float(max(1, math.ceil(_MIN_BSCAN_ASPECT / ratio))) if ratio > 0 else 1.0
    if depth_exaggeration == 1:
        return 1.0, "physical aspect 1:1"
    return float(depth_exaggeration), f"depth stretched ×{depth_exaggeration:g} for readability"


def line_pixels(rows_px: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a line through one point per column, connected between neighbouring columns.

    Parameters
    ----------
    rows_px
        ``(W,)`` row of the line in each column (0 = centre of the top row;
        any real value, also outside the picture); NaN = no line there (a gap).
    height
        Rows of the picture.

    Returns
    -------
    tuple of numpy.ndarray
        Row and column indices of the line's pixels inside the picture. In
        column ``x`` the line covers the rows from its own row to half-way to
        each neighbour's (rounded), so a steep line stays connected; a column
        between two gaps gets one pixel.
    """
    rows = np.asarray(rows_px, dtype=np.float64)
    finite = np.isfinite(rows)
    centre = np.where(finite, rows, 0.0)
    left = np.concatenate([centre[:1], centre[:-1]])
    left_ok = np.concatenate([[False], finite[:-1]])
    right = np.concatenate([centre[1:], centre[-1:]])
    right_ok = np.concatenate([finite[1:], [False]])
    mid_left = np.where(left_ok, (left + centre) / 2, centre)
    mid_right = np.where(right_ok, (right + centre) / 2, centre)
    low = np.floor(np.minimum(centre, np.minimum(mid_left, mid_right)) + 0.5)
    high = np.floor(np.maximum(centre, np.maximum(mid_left, mid_right)) + 0.5)
    low = np.clip(low, 0, height).astype(np.int64)
    high = np.clip(high, -1, height - 1).astype(np.int64)
    lengths = np.where(finite, np.maximum(high - low + 1, 0), 0)
    columns = np.repeat(np.arange(rows.size), lengths)
    offsets = np.arange(columns.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(low, lengths) + offsets, columns


def line_mask(rows_px: np.ndarray, height: int) -> np.ndarray:
    """``(height, W)`` bool picture of the line of :func:`line_pixels`."""
    rows = np.asarray(rows_px)
    mask = np.zeros((height, rows.size), dtype=bool)
    mask[line_pixels(rows, height)] = True
    return mask


def _edge(core: np.ndarray) -> np.ndarray:
    """Pixels next to ``core`` (4-neighbourhood) that are not in it."""
    grown = core.copy()
    grown[1:] |= core[:-1]
    grown[:-1] |= core[1:]
    grown[:, 1:] |= core[:, :-1]
    grown[:, :-1] |= core[:, 1:]
    return grown & ~core


def _checked_rows(rows_px: np.ndarray, width: int, name: str) -> np.ndarray:
    rows = np.asarray(rows_px, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != width:
        raise InputError(name, f"shape {rows.shape} must be (lines, {width} A-scans)")
    return rows


def boundary_lines(boundaries_px: np.ndarray, height: int, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index picture and palette of boundary lines, each with a dark edge.

    Parameters
    ----------
    boundaries_px
        ``(B, W)`` row of each boundary in each column (NaN = gap).
    height
        Rows of the picture.
    colours
        ``(B, 3)`` uint8 colour of each line (B <= 254).

    Returns
    -------
    tuple of numpy.ndarray
        ``(height, W)`` uint8 indices (0 nothing, 1 edge, ``2 + b`` line
        ``b``; a later line covers an earlier one) and the ``(B + 2, 4)``
        uint8 RGBA palette.
    """
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    rows = _checked_rows(boundaries_px, np.shape(boundaries_px)[-1], "boundaries_px")
    if len(colours) != len(rows) or len(rows) > 254:
        raise InputError("colours", f"need one colour per boundary ({len(rows)}, at most 254), got {len(colours)}")
    index = np.zeros((height, rows.shape[1]), dtype=np.uint8)
    pixels = [line_pixels(line, height) for line in rows]
    core = np.zeros(index.shape, dtype=bool)
    for where in pixels:
        core[where] = True
    index[_edge(core)] = 1
    for b, where in enumerate(pixels):
        index[where] = 2 + b
    palette = np.concatenate(
        [[(0, 0, 0, 0), _EDGE_RGBA], np.concatenate([colours, np.full((len(colours), 1), 255)], axis=1)]
    ).astype(np.uint8)
    return index, palette


def reference_lines(reference_px: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Index picture and palette of reference lines: black with white dashes.

    Parameters
    ----------
    reference_px
        ``(R, W)`` row of each reference line in each column (NaN = gap).
    height
        Rows of the picture.

    Returns
    -------
    tuple of numpy.ndarray
        ``(height, W)`` uint8 indices (0 nothing, 1 black, 2 white) and the
        ``(3, 4)`` uint8 RGBA palette.
    """
    rows = _checked_rows(reference_px, np.shape(reference_px)[-1], "reference_px")
    width = rows.shape[1]
    core = np.zeros((height, width), dtype=bool)
    for line in rows:
        core[line_pixels(line, height)] = True
    white = (np.arange(width) // _DASH_PX) % 2 == 0
    index = np.where(core, np.where(white[None, :], 2, 1), 0).astype(np.uint8)
    return index, np.array([(0, 0, 0, 0), (0, 0, 0, 255), (255, 255, 255, 255)], dtype=np.uint8)


def class_palette(palette: np.ndarray, alpha: float = CLASS_ALPHA) -> np.ndarray:
    """``(K, 4)`` uint8 RGBA palette of a label map over a B-scan: class 0 transparent, the others ``alpha`` opaque."""
    palette = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    if not 0.0 <= alpha <= 1.0:
        raise InputError("alpha", f"must lie in [0, 1], got {alpha}")
    opacity = np.full((len(palette), 1), round(255 * alpha), dtype=np.uint8)
    opacity[:1] = 0
    return np.concatenate([palette, opacity], axis=1)


@dataclass(frozen=True)
class BscanPictures:
    """The encoded pictures of one B-scan, bottom to top.

    Attributes
    ----------
    image
        JPEG of the grey B-scan.
    classes
        PNG of the translucent class colours, or ``None`` without a label map.
    boundaries
        PNG of the boundary lines.
    reference
        PNG of the reference lines, or ``None`` without them.
    """

    image: bytes
    classes: bytes | None
    boundaries: bytes
    reference: bytes | None


def bscan_pictures(
    image_u8: np.ndarray,
    labels: np.ndarray | None,
    boundaries_px: np.ndarray,
    boundary_colours: np.ndarray,
    *,
    palette: np.ndarray,
    reference_px: np.ndarray | None = None,
    alpha: float = CLASS_ALPHA,
    jpeg_quality: int = BSCAN_JPEG_QUALITY,
) -> BscanPictures:
    """Encode one B-scan with its class colours, boundaries and reference lines.

    Parameters
    ----------
    image_u8
        ``(H, W)`` uint8 B-scan, row 0 at the top.
    labels
        ``(H, W)`` class-index map (values below ``len(palette)``), or ``None``.
    boundaries_px
        ``(B, W)`` row of each boundary (0 = centre of the top row); NaN = gap.
    boundary_colours
        ``(B, 3)`` uint8 colour of each boundary line
        (:func:`retinaseg.report.palette.boundary_palette`).
    palette
        ``(K, 3)`` uint8 colour of each class.
    reference_px
        ``(R, W)`` reference boundaries, or ``None``.
    alpha
        Opacity of the class colours.
    jpeg_quality
        JPEG quality of the grey B-scan.

    Returns
    -------
    BscanPictures
    """
    image = np.asarray(image_u8)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise InputError("image_u8", f"must be an (H, W) uint8 B-scan, got {image.dtype} {image.shape}")
    height, width = image.shape
    boundaries = _checked_rows(boundaries_px, width, "boundaries_px")
    classes = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != image.shape:
            raise InputError("labels", f"shape {labels.shape} does not match the B-scan's {image.shape}")
        colours = class_palette(palette, alpha)
        if labels.size and (labels.min() < 0 or labels.max() >= len(colours)):
            raise InputError(
                "labels", f"values {int(labels.min())}..{int(labels.max())} outside the {len(colours)}-colour palette"
            )
        classes = png_bytes(labels.astype(np.uint8, copy=False), palette_rgba=colours, compress_level=_LAYER_PNG_LEVEL)
    line_index, line_palette = boundary_lines(boundaries, height, boundary_colours)
    reference = None
    if reference_px is not None:
        ref_index, ref_palette = reference_lines(_checked_rows(reference_px, width, "reference_px"), height)
        reference = png_bytes(ref_index, palette_rgba=ref_palette, compress_level=_LAYER_PNG_LEVEL)
    return BscanPictures(
        image=jpeg_bytes(image, quality=jpeg_quality),
        classes=classes,
        boundaries=png_bytes(line_index, palette_rgba=line_palette, compress_level=_LAYER_PNG_LEVEL),
        reference=reference,
    )


def composite(layers: Sequence[np.ndarray]) -> np.ndarray:
    """Blend pictures over each other as a browser does (source over).

    Parameters
    ----------
    layers
        ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA uint8
        pictures, bottom first; the first is taken as opaque.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    """
    if not layers:
        raise InputError("layers", "needs at least one picture")

    def rgba(layer: np.ndarray) -> np.ndarray:
        layer = np.asarray(layer, dtype=np.float64)
        if layer.ndim == 2:
            layer = np.repeat(layer[..., None], 3, axis=2)
        if layer.shape[2] == 3:
            layer = np.concatenate([layer, np.full(layer.shape[:2] + (1,), 255.0)], axis=2)
        return layer

    out = rgba(layers[0])[..., :3]
    for layer in layers[1:]:
        top = rgba(layer)
        a = top[..., 3:] / 255.0
        out = (1.0 - a) * out + a * top[..., :3]
    return np.rint(out).astype(np.uint8)

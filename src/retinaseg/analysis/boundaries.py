"""Layer boundaries of OCT B-scans recovered from label maps, and their errors.

A B-scan label map assigns each pixel to a retinal layer, ordered from the
vitreous (top rows) to the choroid (bottom rows). A layer boundary is a
curve with one row position per column (A-scan). The usual accuracy measure
for layer segmentation is the mean absolute boundary error along the A-scans,
in pixels or in micrometres along the axial direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from retinaseg.errors import InputError


def boundaries_from_labels(
    label: np.ndarray,
    layer_classes: Sequence[int],
    fluid_classes: Sequence[int] = (),
) -> np.ndarray:
    """Upper edge of each layer in each column of a label map.

    Parameters
    ----------
    label
        ``(H, W)`` integer class-index map, row 0 at the top (vitreous side).
    layer_classes
        Layer classes in top-to-bottom order, e.g.
        :data:`~retinaseg.conventions.DUKE_LAYER_CLASSES`. List every layer
        down to the deepest boundary wanted.
    fluid_classes
        Classes that overwrite layer labels (e.g.
        :data:`~retinaseg.conventions.DUKE_FLUID_CLASS`).

    Returns
    -------
    numpy.ndarray
        ``(len(layer_classes), W)`` float64 row index (pixels, 0 = top row)
        of the upper edge of each layer; NaN where it cannot be read.

    Notes
    -----
    Boundary ``i`` is the first row, from the top, whose class is
    ``layer_classes[i]`` *or any layer listed after it*. Where the layer is
    present this is the top row of that layer. Where it has zero thickness
    (the boundary coincides with the next one, e.g. OPL in 3317 of the 58168
    Duke DME columns, or the inner layers at the foveal pit) the boundary is
    still defined and lies at the top of the next layer, instead of being
    reported missing.

    Fluid pixels are skipped in the search, and a boundary whose first row
    has a fluid pixel directly above it is set to NaN: the fluid covers the
    place where the boundary runs, and where exactly it runs under the fluid
    is unknown. (Filling fluid with the layer above or below would move the
    boundary to the bottom or the top of the fluid pocket, a bias as large as
    the pocket.) In the Duke DME reference maps this hides 0.4 % of all
    column-boundary pairs, 2.3 % of the OPL/ONL columns. NaN is also returned where no
    listed layer lies at or below the boundary in that column.
    """
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise InputError("label", f"must be an (H, W) integer label map, got {label.dtype} {label.shape}")
    if label.size and label.min() < 0:
        raise InputError("label", f"class values must be >= 0, found {int(label.min())}")
    layers = np.asarray(layer_classes, dtype=np.int64)
    if layers.size == 0 or layers.min() < 0:
        raise InputError("layer_classes", f"need one or more classes >= 0, got {list(layer_classes)}")
    # depth[r, c] = position of the pixel's class in layer_classes, -1 if not a layer
    lut = np.full(max(int(label.max(initial=0)), int(layers.max())) + 1, -1, dtype=np.int64)
    lut[layers] = np.arange(layers.size)
    depth = lut[label]
    at_or_below = depth[None, :, :] >= np.arange(layers.size)[:, None, None]  # (n, H, W)
    first = at_or_below.argmax(axis=1)
    found = at_or_below.any(axis=1)
    above = label[np.maximum(first - 1, 0), np.arange(label.shape[1])]
    hidden = (first > 0) & np.isin(above, fluid_classes)
    return np.where(found & ~hidden, first, np.nan).astype(np.float64)


def boundary_mad(
    pred_boundaries: np.ndarray,
    true_boundaries: np.ndarray,
    axial_um: float | None = None,
) -> dict[str, np.ndarray]:
    """Mean absolute difference between predicted and reference boundaries.

    Parameters
    ----------
    pred_boundaries, true_boundaries
        ``(n, W)`` row positions in pixels, as from
        :func:`boundaries_from_labels`, NaN where unknown. To pool several
        B-scans, concatenate them along the column axis.
    axial_um
        Axial pixel size in micrometres (3.87 for Spectralis); adds
        ``"mad_um"``.

    Returns
    -------
    dict
        ``"mad_px"``: ``(n,)`` float64 mean absolute difference in pixels over
        the columns where both are known (NaN if there are none);
        ``"n_columns"``: ``(n,)`` int64 number of such columns;
        ``"mad_um"``: ``"mad_px"`` times ``axial_um``, when given.
    """
    pred = np.asarray(pred_boundaries, dtype=np.float64)
    true = np.asarray(true_boundaries, dtype=np.float64)
    if pred.shape != true.shape or pred.ndim != 2:
        raise InputError(
            "pred_boundaries",
            f"shape {pred.shape} must be (n, W) and match the reference shape {true.shape}",
        )
    error = np.abs(pred - true)
    valid = np.isfinite(error)
    n_columns = valid.sum(axis=1)
    total = np.where(valid, error, 0.0).sum(axis=1)
    mad_px = np.full(n_columns.shape, np.nan)
    np.divide(total, n_columns, out=mad_px, where=n_columns > 0)
    out = {"mad_px": mad_px, "n_columns": n_columns.astype(np.int64)}
    if axial_um is not None:
        out["mad_um"] = mad_px * axial_um
    return out


#: Rows next to a padding wedge in which a boundary counts as hidden by it.
_EDGE_MARGIN_PX = 2

#: B-scans processed together: the working arrays take about
#: ``H * W * (n_layers + 1) * 3`` bytes per B-scan (~10 MB for 496 x 768).
_BSCANS_PER_CHUNK = 4


def layer_surfaces(
    labels: np.ndarray,
    layer_classes: Sequence[int],
    fluid_classes: Sequence[int] = (),
    invalid: np.ndarray | None = None,
    min_retina_px: float = 10.0,
) -> np.ndarray:
    """Anatomically ordered layer boundaries of segmented B-scans.

    Unlike :func:`boundaries_from_labels`, which reads a label map literally
    (for scoring), this turns a network's prediction into surfaces fit for
    thickness measurements: boundaries never cross, layers leave no gaps,
    isolated wrong pixels barely move a boundary, boundaries under fluid are
    interpolated, and columns where the retina is not visible are NaN.

    Parameters
    ----------
    labels
        ``(N, H, W)`` or ``(H, W)`` integer class maps, row 0 at the top.
    layer_classes
        Layer classes in top-to-bottom order; boundary ``k`` is the upper
        edge of ``layer_classes[k]``. Every other class that is not fluid
        counts as lying above the retina (vitreous).
    fluid_classes
        Classes of fluid pockets, which lie inside or across layers.
    invalid
        Boolean mask like ``labels`` of pixels without image data (the
        device's padding wedges), or ``None``.
    min_retina_px
        Columns whose first-to-last boundary distance is below this are
        treated as showing no retina.

    Returns
    -------
    numpy.ndarray
        ``(N, len(layer_classes), W)`` (or ``(len(layer_classes), W)``)
        float64 row positions in pixels; NaN where unknown.

    Notes
    -----
    Each column is first replaced by the top-to-bottom layer sequence (each
    layer once, in order, possibly empty) that disagrees with the fewest of
    its pixels (:func:`_monotone_fit`), so stray pixels and islands of a
    wrong class, inside or outside the retina, cannot move a boundary to
    them; boundaries are then ordered by construction, and for a clean
    column they are exactly the top rows of the layers.

    A fluid pixel belongs to the layer around it. Where a fluid pocket
    separates two different layers, the boundary between them runs somewhere
    inside the pocket: its row is interpolated along the B-scan from the
    columns where it is seen and clipped into the pocket (the rule used for
    the Duke DME reference lines).

    Invalid pixels touching the top (bottom) edge of the image count as
    vitreous (as lying below the retina); a boundary that runs along the edge
    of such a region is not seen and is NaN, as is every boundary of a column
    with less than ``min_retina_px`` of retina (the B-scan is wider than the
    retina or the column is in a shadow). NaN columns are never filled in.
    """
    labels = np.asarray(labels)
    single = labels.ndim == 2
    if single:
        labels = labels[None]
        invalid = None if invalid is None else np.asarray(invalid)[None]
    invalid = None if invalid is None else np.asarray(invalid, dtype=bool)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError("labels", f"must be (N, H, W) integer class maps, got {labels.dtype} {labels.shape}")
    if invalid is not None and invalid.shape != labels.shape:
        raise InputError("invalid", f"mask shape {invalid.shape} does not match the labels {labels.shape}")
    if labels.shape[0] > _BSCANS_PER_CHUNK:  # B-scans are independent; bound the working memory
        chunks = range(0, labels.shape[0], _BSCANS_PER_CHUNK)
        return np.concatenate(
            [
                layer_surfaces(
                    labels[i : i + _BSCANS_PER_CHUNK],
                    layer_classes,
                    fluid_classes,
                    None if invalid is None else invalid[i : i + _BSCANS_PER_CHUNK],
                    min_retina_px,
                )
                for i in chunks
            ]
        )
    height = labels.shape[1]
    invalid = np.zeros(labels.shape, dtype=bool) if invalid is None else invalid
    if invalid.any():
        top_invalid = np.logical_and.accumulate(invalid, axis=1)  # padding wedges from the top edge
        bottom_invalid = np.logical_and.accumulate(invalid[:, ::-1], axis=1)[:, ::-1]
    else:  # the usual case, without the two passes over the B-scans
        top_invalid = bottom_invalid = invalid
    start, stop = _rows_needed(labels, layer_classes, fluid_classes, invalid, top_invalid, bottom_invalid)
    rows = slice(start, stop)
    surfaces = _surfaces(
        labels[:, rows], layer_classes, fluid_classes, invalid[:, rows], (top_invalid[:, rows], bottom_invalid[:, rows]), start
    )

    # A boundary lying on the edge of a padding wedge may be hidden under it.
    top_rows = top_invalid.sum(axis=1)[:, None, :]  # (N, 1, W)
    bottom_rows = bottom_invalid.sum(axis=1)[:, None, :]
    unseen = ((top_rows > 0) & (surfaces <= top_rows + _EDGE_MARGIN_PX)) | (
        (bottom_rows > 0) & (surfaces >= height - bottom_rows - _EDGE_MARGIN_PX)
    )
    surfaces[unseen] = np.nan
    no_retina = surfaces[:, -1] - surfaces[:, 0] < min_retina_px  # False where either is NaN
    surfaces[np.broadcast_to(no_retina[:, None, :], surfaces.shape)] = np.nan
    return surfaces[0] if single else surfaces


def _surfaces(
    labels: np.ndarray,
    layer_classes: Sequence[int],
    fluid_classes: Sequence[int],
    invalid: np.ndarray,
    edge_invalid: tuple[np.ndarray, np.ndarray],
    first_row: int,
) -> np.ndarray:
    """Ordered surfaces of ``(N, H, W)`` label maps, before the edge-of-wedge and no-retina rules.

    ``labels`` are rows ``first_row`` onwards of the B-scans
    (:func:`_rows_needed`); the surfaces are in rows of the whole B-scans,
    every value as computed from all rows. ``invalid`` marks pixels without
    data, ``edge_invalid`` those of them joined to the top and to the
    bottom edge of the whole B-scan.
    """
    top_invalid, bottom_invalid = edge_invalid
    n_layers = len(layer_classes)

    lut = np.full(max(int(labels.max(initial=0)), *layer_classes, *fluid_classes) + 1, -1, dtype=np.int8)
    lut[list(layer_classes)] = np.arange(n_layers)
    fluid = np.zeros(lut.size, dtype=bool)
    fluid[list(fluid_classes)] = True
    depth = lut[labels]  # (N, H, W): -1 above the retina, k inside layer k
    unknown = fluid[labels]

    depth = np.where(top_invalid, -1, np.where(bottom_invalid, n_layers - 1, depth))
    unknown = (unknown | invalid) & ~top_invalid & ~bottom_invalid

    unknown |= _detached_retina(depth, unknown, n_layers)
    depth = _monotone_fit(depth, unknown, n_layers)

    # Unknown pixels take the layer above them (count toward the upper layer:
    # boundary at the pocket's bottom) or the layer below (boundary at its top);
    # only columns with unknown pixels change.
    depth_from_above, depth_from_below = depth, depth
    bscans, columns = np.nonzero(unknown.any(axis=1))
    if len(bscans):
        depth_from_above, depth_from_below = depth.copy(), depth.copy()
        above, below = _fill_unknown(depth[bscans, :, columns], unknown[bscans, :, columns], n_layers)
        depth_from_above[bscans, :, columns], depth_from_below[bscans, :, columns] = above, below
    deepest = _rows_above_layers(depth_from_above, n_layers) + first_row  # (N, L, W)
    shallowest = _rows_above_layers(depth_from_below, n_layers) + first_row

    surfaces = np.where(deepest == shallowest, deepest, np.nan)
    columns = np.arange(surfaces.shape[2])
    for n, layer in zip(*np.nonzero(np.isnan(surfaces).any(axis=2))):
        seen = np.isfinite(surfaces[n, layer])
        if seen.any():
            surfaces[n, layer, ~seen] = np.interp(columns[~seen], columns[seen], surfaces[n, layer, seen])
    surfaces = np.clip(surfaces, shallowest, deepest)
    never_seen = np.isnan(surfaces)
    surfaces = np.maximum.accumulate(np.where(never_seen, -np.inf, surfaces), axis=1)
    surfaces[never_seen] = np.nan
    return surfaces


def _fill_unknown(depth: np.ndarray, unknown: np.ndarray, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """``(K, H)`` columns with each unknown pixel given the depth of the nearest known pixel above, and below.

    Without a known pixel above (below), a pixel counts as above the retina
    (in the last layer).
    """
    height = depth.shape[1]
    rows = np.arange(height)
    known_above = np.maximum.accumulate(np.where(unknown, -1, rows), axis=1)
    known_below = np.minimum.accumulate(np.where(unknown, height, rows)[:, ::-1], axis=1)[:, ::-1]
    from_above = np.where(known_above >= 0, np.take_along_axis(depth, np.maximum(known_above, 0), axis=1), -1)
    from_below = np.where(
        known_below < height, np.take_along_axis(depth, np.minimum(known_below, height - 1), axis=1), n_layers - 1
    )
    return from_above, from_below


def _rows_above_layers(depth: np.ndarray, n_layers: int) -> np.ndarray:
    """``(N, L, W)`` float64: rows of each column above layer ``k``, for depths that never decrease down a column.

    That is the first row of depth ``k`` or more (``H`` if none), found from
    the rows where the depth steps up, rather than by counting rows ``L`` times.
    """
    n, height, width = depth.shape
    start_before = np.full((n, 1, width), -2, dtype=depth.dtype)  # below every depth: row 0 starts a run
    bscans, rows, columns = np.nonzero(np.diff(depth, axis=1, prepend=start_before) > 0)
    first_row = np.full((n, n_layers + 1, width), height, dtype=np.float64)  # index depth + 1, depth -1 to L - 1
    first_row[bscans, depth[bscans, rows, columns] + 1, columns] = rows
    # a layer absent from a column starts where the next deeper one present does
    return np.minimum.accumulate(first_row[:, ::-1], axis=1)[:, ::-1][:, 1:]


def _rows_needed(
    labels: np.ndarray,
    layer_classes: Sequence[int],
    fluid_classes: Sequence[int],
    invalid: np.ndarray,
    top_invalid: np.ndarray,
    bottom_invalid: np.ndarray,
) -> tuple[int, int]:
    """``(start, stop)``: the rows :func:`layer_surfaces` must fit; the surfaces are the same from them alone.

    Rows above ``start`` hold, in every B-scan and column, only pixels above
    the retina: valid ones of no layer and no fluid, or padding joined to
    the top edge (which counts as vitreous); rows from ``stop`` down only
    pixels of the last layer: valid ones, or padding joined to the bottom
    edge. The fit never places a boundary there (any other layer would
    disagree with every such pixel), so every boundary lies ``start`` rows
    lower than in the crop. Most of a B-scan's rows are vitreous or choroid:
    this saves most of the work. ``top_invalid``/``bottom_invalid`` mark
    the padding joined to the top/bottom edge (a column without any data is
    both, and counts as above the retina).
    """
    height = labels.shape[1]
    valid = ~invalid
    in_retina = np.zeros(max(int(labels.max(initial=0)), *layer_classes, *fluid_classes) + 1, dtype=bool)
    in_retina[[*layer_classes, *fluid_classes]] = True
    above_retina = (valid & ~in_retina[labels]) | top_invalid
    last_layer = (valid & (labels == layer_classes[-1])) | (bottom_invalid & ~top_invalid)
    needed_above = np.flatnonzero(~above_retina.all(axis=(0, 2)))
    needed_below = np.flatnonzero(~last_layer.all(axis=(0, 2)))
    if not len(needed_above) or not len(needed_below):
        return 0, height
    return int(needed_above[0]), int(needed_below[-1]) + 1


#: Pieces of retina smaller than this fraction of the B-scan's largest piece
#: are ignored (false positives in the vitreous or choroid).
_MIN_RETINA_PIECE = 0.2


def _detached_retina(depth: np.ndarray, unknown: np.ndarray, n_layers: int) -> np.ndarray:
    """Pixels of small pieces of retina apart from the main retina of their B-scan.

    The retina (every layer but the last, which lies below it, and fluid) is
    one connected sheet in a B-scan, or a few large pieces where a shadow or
    the optic disc interrupts it. Islands predicted in the noisy vitreous or
    deep in the choroid are smaller than :data:`_MIN_RETINA_PIECE` of the
    largest piece; they are returned so that they carry no weight.
    """
    retina = ((depth >= 0) & (depth < n_layers - 1)) | unknown
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 2)  # connected within a B-scan only
    pieces, count = ndimage.label(retina, structure=structure)
    if count == 0:
        return np.zeros(depth.shape, dtype=bool)
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    bscan_of_piece = np.zeros(count + 1, dtype=np.int64)
    bscan_of_piece[pieces.ravel()] = np.repeat(np.arange(depth.shape[0]), depth[0].size)
    largest = np.zeros(depth.shape[0], dtype=np.int64)
    np.maximum.at(largest, bscan_of_piece[1:], sizes[1:])
    small = sizes < _MIN_RETINA_PIECE * largest[bscan_of_piece]
    small[0] = False
    return small[pieces]


def _monotone_fit(depth: np.ndarray, unknown: np.ndarray, n_layers: int) -> np.ndarray:
    """Closest layer order of each column (:func:`_fit_columns`), at its known pixels.

    Parameters
    ----------
    depth
        ``(N, H, W)`` layer index per pixel, -1 above the retina.
    unknown
        ``(N, H, W)`` pixels that fit any layer (fluid, missing data).
    n_layers
        Number of layers.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W)`` int8 depths that differ from ``depth`` at the fewest
        known pixels while never decreasing down a column's known pixels
        (unknown pixels keep their input value).
    """
    # A column whose known pixels already go down the layers in order is its own best fit (no pixel
    # disagrees); on a network's B-scans that is all but a few percent, so only the rest is fitted.
    in_order = np.maximum.accumulate(np.where(unknown, -1, depth), axis=1)
    out_of_order = ((depth < in_order) & ~unknown).any(axis=1)  # (N, W)
    fitted = depth.astype(np.int8, copy=True)
    if out_of_order.any():
        bscans, columns = np.nonzero(out_of_order)
        fit = _fit_columns(depth[bscans, :, columns].T, unknown[bscans, :, columns].T, n_layers)  # (H, C)
        fitted[bscans, :, columns] = np.where(unknown[bscans, :, columns], fitted[bscans, :, columns], fit.T)
    return fitted


def _fit_columns(depth: np.ndarray, unknown: np.ndarray, n_layers: int) -> np.ndarray:
    """Closest layer order of each column, by dynamic programming.

    Parameters
    ----------
    depth
        ``(H, C)`` layer index per pixel of ``C`` columns, -1 above the retina.
    unknown
        ``(H, C)`` pixels that fit any layer.
    n_layers
        Number of layers.

    Returns
    -------
    numpy.ndarray
        ``(H, C)`` int8 depths, non-decreasing down every column, that differ
        from ``depth`` at the fewest known pixels (ties: the deeper layer
        starts as low as possible).
    """
    height, n_columns = depth.shape
    states = np.arange(-1, n_layers)[:, None]  # (S, 1): -1 = above the retina
    mismatch = (depth[:, None, :] != states[None]) & ~unknown[:, None, :]  # (H, S, C)
    cost = mismatch[0].astype(np.int32)
    previous = np.empty((height, states.size, n_columns), dtype=np.int8)
    previous[0] = np.arange(states.size)[:, None]
    for row in range(1, height):
        # best predecessor state <= s (prefix minimum over the states)
        best_cost = cost.copy()
        best_state = np.broadcast_to(np.arange(states.size)[:, None], cost.shape).astype(np.int8)
        for s in range(1, states.size):
            better = best_cost[s - 1] <= best_cost[s]
            best_cost[s] = np.where(better, best_cost[s - 1], best_cost[s])
            best_state[s] = np.where(better, best_state[s - 1], best_state[s])
        previous[row] = best_state
        cost = best_cost + mismatch[row]
    fitted = np.empty((height, n_columns), dtype=np.int8)
    state = cost.argmin(axis=0)
    for row in range(height - 1, -1, -1):
        fitted[row] = state
        state = previous[row, state, np.arange(n_columns)]
    return fitted - 1

"""The bridge to eyepy: ``eyepy.EyeVolume`` to :class:`~retinaseg.volume.OctVolume` and back.

:func:`read_eyepy_file` reads the files eyepy reads (``.e2e`` with
``eyepy.import_heyex_e2e``, HEYEX ``.xml`` exports with
``eyepy.import_heyex_xml``, ``.eye`` with ``eyepy.EyeVolume.load``) and
converts them with :func:`from_eyepy`. :func:`to_eyepy` and
:func:`write_eye` go the other way: our volume with our layer boundaries as
an ``eyepy.EyeVolume`` / ``.eye`` file, which
:func:`retinaseg.io.oct_files.read_oct` reads back unchanged.

eyepy versions
--------------
Written for eyepy 0.16 to 0.21 (``requirements.lock`` pins 0.21.0): 0.16 is
the first to keep the localizer transform in ``.eye`` files (older versions
refit it on load, which fails for one B-scan); the E2E conventions below
are those of 0.21. Registering the localizer with the B-scans needs eyepy's
private ``eyepy.io.utils._compute_localizer_oct_transform`` with its 0.16-0.21
signature ``(volume meta, localizer meta, data shape)``; it is called only
through :func:`_localizer_transform`.

Intensities
-----------
``OctVolume.reflectance`` is linear reflectance in ``[0, 1]`` with NaN for
invalid pixels. eyepy keeps the stored values in ``EyeVolume.raw_data`` and
names the display mapping in ``meta["intensity_transform"]``;
:func:`from_eyepy` converts per mapping:

- ``"vol"`` (eyepy's HEYEX ``.vol`` importer; also the ``.eye`` files written
  here): the raw values are the device's linear reflectance (eyepy's ``data``
  is a log display of them). Values above 1e30 (the format's FLT_MAX invalid
  marker) and non-finite values become NaN; anything else outside ``[0, 1]``
  is refused, as by ``read_vol``.
- ``"e2e"`` (HEYEX E2E): the raw values are the device's reflectance, stored
  as an unsigned 16-bit float (not an 8-bit display image) and displayed by
  eyepy with the same log mapping as ``.vol``. Values above 1.99 mark empty
  regions (eyepy's ``from_e2e_intensity``) and become NaN; the rest is
  clipped to ``[0, 1]``.
- ``"default"`` (HEYEX XML, eyepy's folder importer): the values are 8-bit
  display images (16-bit images scaled to 8 bits by ``v >> 8``). They are
  turned back into reflectance by
  :func:`retinaseg.io.display.reflectance_from_display`. Floating-point data
  are accepted only when every finite value is an integer in 0..255; NaN
  stays NaN.
- ``"angio"`` (OCT angiography) and ``"custom"`` are refused.

Geometry from eyepy
-------------------
eyepy's ``scale_x`` is the A-scan pitch, ``scale_y`` the axial pixel size and
``scale_z`` the distance between B-scans, in ``meta["scale_unit"]``; B-scan
``i`` of ``data`` has ``meta["bscan_meta"][i]["start_pos"/"end_pos"]``
``(x, y)`` in ``pos_unit`` in the localizer frame (origin top-left, ``y``
down, B-scan 0 the lowest on the fundus for Heidelberg files), i.e. our SLO
frame. Units: ``mm`` and ``µm`` are converted; positions in localizer
``pixel`` units are multiplied by the localizer pixel size. eyepy 0.21 gives
E2E geometry in degrees (scale unit ``px``, positions in ``°`` from the
centre of a 30° localizer, localizer scale ``30 / width`` °/pixel); they are
converted with eyepy's own assumptions: 0.2896 mm per degree
(``MEDIUM_EYE_LENGTH_UM_PER_DEG``) and a position origin 15° from the
localizer's top-left corner. The E2E axial pixel size is the per-B-scan
``scale_y`` (mm) and the A-scan pitch ``|end - start| / W`` (provisional,
like eyepy's own derivation). eyepy stores the E2E laterality as the ASCII
code of ``R``/``L`` (``"82"``/``"76"``); both spellings are accepted.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import eyepy
import numpy as np
from eyepy import EyeBscanMeta, EyeEnface, EyeEnfaceMeta, EyeVolume, EyeVolumeMeta

# Private in eyepy, but it is what every eyepy importer uses to register the
# localizer with the B-scans; without it eyepy guesses a square layout. Used
# only through _localizer_transform (eyepy versions: module notes).
from eyepy.io.utils import _compute_localizer_oct_transform
from skimage.transform import AffineTransform

from retinaseg.errors import InputError, describe_exception
from retinaseg.io.atomic import atomic_path
from retinaseg.io.display import luminance, reflectance_from_display
from retinaseg.io.heidelberg import VOL_INVALID_ABOVE, VOL_INVALID_MARKER
from retinaseg.io.limits import MAX_OCT_VOXELS, check_oct_size
from retinaseg.volume import (
    CIRCLE_PATTERN,
    BScanGeometry,
    Laterality,
    OctVolume,
    check_geometry,
    check_reflectance_range,
    check_scale,
    check_scan_pattern,
    check_signal,
)

E2E_MM_PER_DEG = 0.2896
"""Fundus millimetres per degree eyepy assumes for E2E (289.6 µm/°)."""

E2E_LOCALIZER_FIELD_DEG = 30.0
"""Localizer field eyepy assumes for E2E; positions are in degrees from its centre."""

_E2E_EMPTY_ABOVE = 1.99
_BLANK_LOCALIZER_KEY = "retinaseg_blank_localizer"
_LAYER_ORIGIN = "retinaseg"
_LATERALITY_NAMES: dict[str, Laterality] = {
    "OD": "OD",
    "R": "OD",
    "RIGHT": "OD",
    "82": "OD",  # 82 = ord("R"): eyepy's E2E laterality
    "OS": "OS",
    "L": "OS",
    "LEFT": "OS",
    "76": "OS",  # 76 = ord("L")
}
# Lambdas: eyepy imports its importer modules lazily, on first attribute access.
_EYEPY_LOADERS: dict[str, tuple[str, Callable[[Path], EyeVolume]]] = {
    ".e2e": ("HEYEX E2E file", lambda path: eyepy.import_heyex_e2e(path)),
    ".xml": ("HEYEX XML export", lambda path: eyepy.import_heyex_xml(path)),
    ".eye": ("eyepy .eye file", EyeVolume.load),
}


# --- eyepy -> OctVolume -----------------------------------------------------------------------


def _reflectance_from_eyepy(raw: np.ndarray, transform: str, where: str) -> np.ndarray:
    """Linear reflectance in [0, 1] (NaN invalid) from ``EyeVolume.raw_data``; see module notes."""
    if transform in ("vol", "e2e"):
        if raw.dtype.kind not in "fiu":
            raise InputError(where, f"{raw.dtype} B-scan data are not reflectance values")
        values = raw.astype(np.float32, copy=False)
        limit = VOL_INVALID_ABOVE if transform == "vol" else _E2E_EMPTY_ABOVE
        reflectance = np.where(~np.isfinite(values) | (values > limit), np.float32(np.nan), values)
        if transform == "e2e":
            return np.clip(reflectance, 0.0, 1.0)
        check_reflectance_range(reflectance, where)
        return reflectance
    if transform == "default":
        if raw.dtype == np.uint16:
            return reflectance_from_display(raw >> 8)
        if raw.dtype != np.uint8:
            if raw.dtype.kind not in "fiu":
                raise InputError(where, f"{raw.dtype} B-scan data are not display images")
            values = raw.astype(np.float64)
            finite = values[np.isfinite(values)]
            if finite.size and (finite.min() < 0 or finite.max() > 255 or (finite != np.round(finite)).any()):
                raise InputError(
                    where,
                    f"{raw.dtype} B-scans with intensity transform 'default' are not 8-bit display values "
                    "(integers 0..255); their intensity scale is unknown",
                )
            display = np.nan_to_num(values).astype(np.uint8)
            return np.where(np.isnan(values), np.float32(np.nan), reflectance_from_display(display))
        return reflectance_from_display(raw)
    if transform == "angio":
        raise InputError(where, "OCT angiography (flow) data; retinaseg analyses structural OCT")
    raise InputError(where, f"unknown intensity transform {transform!r}; expected 'vol', 'e2e' or 'default'")


def _mm_per_unit(unit: object) -> float | None:
    """Millimetres per length unit ``"mm"`` or ``"µm"``; None for any other unit."""
    return {"mm": 1.0, "µm": 1e-3, "um": 1e-3}.get(str(unit).strip())


def _is_degrees(unit: object) -> bool:
    return str(unit).strip() in ("°", "deg")


def _localizer_scale_mm(meta: Mapping[str, Any]) -> tuple[float, float] | None:
    """Localizer pixel size in mm; None when its unit is not a length (or degrees, as for E2E)."""
    factor = E2E_MM_PER_DEG if _is_degrees(meta.get("scale_unit")) else _mm_per_unit(meta.get("scale_unit"))
    if factor is None:
        return None
    scale = (float(meta["scale_x"]) * factor, float(meta["scale_y"]) * factor)
    return scale if all(math.isfinite(s) and s > 0 for s in scale) else None


def _positions_mm(points: np.ndarray, unit: object, localizer_scale: tuple[float, float] | None, where: str) -> np.ndarray:
    """``(N, 2)`` B-scan start or end points converted to mm in the SLO frame."""
    if _is_degrees(unit):
        # eyepy: degrees from the centre of a 30° localizer (origin moved to its top-left corner)
        return (points + E2E_LOCALIZER_FIELD_DEG / 2) * E2E_MM_PER_DEG
    factor = _mm_per_unit(unit)
    if factor is not None:
        return points * factor
    if str(unit).strip() in ("pixel", "px") and localizer_scale is not None:
        return points * np.asarray(localizer_scale)
    raise InputError(where, f"B-scan positions in unit {unit!r} cannot be converted to mm")


def _scales_mm(meta: Mapping[str, Any], path_mm: np.ndarray, width: int, where: str) -> tuple[float, float]:
    """A-scan pitch and axial pixel size in mm (E2E: from the length of the B-scans' path and per-B-scan scale_y)."""
    unit = meta.get("scale_unit")
    factor = _mm_per_unit(unit)
    if factor is not None:
        scale_x, scale_z = float(meta["scale_x"]) * factor, float(meta["scale_y"]) * factor
    elif meta.get("intensity_transform") == "e2e" and meta["bscan_meta"][0].get("scale_y") is not None:
        scale_x, scale_z = float(np.mean(path_mm)) / width, float(meta["bscan_meta"][0]["scale_y"])
    else:
        raise InputError(where, f"no physical pixel size (scale unit {unit!r}); retinaseg measures in mm")
    return (
        check_scale(scale_x, "scale_x_mm", where, "A-scan pitch"),
        check_scale(scale_z, "scale_z_mm", where, "axial pixel size"),
    )


def _quality(value: object) -> float:
    try:
        quality = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return quality if math.isfinite(quality) and quality < VOL_INVALID_ABOVE else math.nan


def _slo_uint8(image: np.ndarray) -> np.ndarray:
    """Localizer as ``(H, W)`` uint8; eyepy's stand-in projection (float) is taken as 0..1 (or 0..255)."""
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., 0] if image.shape[2] == 1 else luminance(image[..., :3])
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if image.dtype == np.uint8:
        return image.copy()
    values = np.nan_to_num(image.astype(np.float64))
    scale = 255.0 if values.size and values.max() <= 1 else 1.0
    return np.clip(np.round(values * scale), 0, 255).astype(np.uint8)


def _laterality(value: object) -> Laterality | None:
    return _LATERALITY_NAMES.get(str(value).strip().upper()) if value is not None else None


def from_eyepy(ev: EyeVolume, source: str = "") -> OctVolume:
    """Convert an ``eyepy.EyeVolume`` to an :class:`~retinaseg.volume.OctVolume`.

    Parameters
    ----------
    ev
        Volume from any eyepy importer or ``EyeVolume.load``.
    source
        File it came from, for messages and ``OctVolume.source``.

    Returns
    -------
    OctVolume
        ``reflectance`` ``(N, H, W)`` float32 linear in ``[0, 1]``, NaN
        invalid (per intensity transform, module notes); scales and B-scan
        start/end points in mm (``ev.meta`` scale ``x`` = A-scan pitch,
        ``y`` = axial); ``scan_pattern`` from ``meta["scan_pattern"]`` (files
        written by :func:`write_eye`) or E2E B-scan meta, else 1 (one
        B-scan) or 3 (volume); circle geometry (end point = centre) for
        pattern 2; ``laterality`` from the volume or localizer meta;
        ``slo`` the localizer as uint8 with its pixel size in mm (``None``
        for the blank stand-in :func:`to_eyepy` writes);
        ``device_layers`` every eyepy layer ``{name: (N, W) float32}``
        (HEYEX importers name them as :data:`~retinaseg.conventions.DEVICE_LINE_NAMES`),
        values above 1e30 as NaN. ``metadata``: ``reader``,
        ``intensity_transform``, ``header_distance_mm`` (eyepy's B-scan
        distance), ``slo_field_size_deg`` when known, and ``layer_origin``
        ``{name: "retinaseg" | "file"}``. Patient data are not copied.

    Raises
    ------
    InputError
        No B-scans; more than :func:`retinaseg.io.limits.check_oct_size`
        allows; B-scan meta missing or not one per B-scan; scales or
        positions without a physical unit; implausible scales, B-scan
        distance, scan pattern or geometry (:mod:`retinaseg.volume`
        checks); laterality other than right/left; then values that fit no
        intensity convention (module notes); OCT angiography; no signal
        (:func:`retinaseg.volume.check_signal`); layers of the wrong shape.
    """
    where = source or "EyeVolume"
    meta = ev.meta
    raw = np.asarray(ev.raw_data)
    if raw.ndim != 3 or 0 in raw.shape:
        raise InputError(where, f"holds no B-scans (data shape {raw.shape})")
    n, height, width = raw.shape
    check_oct_size(n, height, width, where)

    # Geometry first: implausible meta is refused before the B-scans are converted.
    bscan_meta = list(meta.get("bscan_meta") or [])
    if len(bscan_meta) != n:
        raise InputError(where, f"{len(bscan_meta)} B-scan meta entries for {n} B-scans")
    localizer_scale = _localizer_scale_mm(ev.localizer.meta)
    start, end = (
        _positions_mm(np.array([b[key] for b in bscan_meta], dtype=np.float64), bscan_meta[0]["pos_unit"], localizer_scale, where)
        for key in ("start_pos", "end_pos")
    )
    if start.shape != (n, 2) or not (np.isfinite(start).all() and np.isfinite(end).all()):
        raise InputError(where, "B-scan start/end positions are not finite (x, y) pairs")
    length_mm = np.linalg.norm(end - start, axis=1)
    pattern = meta.get("scan_pattern", bscan_meta[0].get("scan_pattern"))
    scan_pattern = check_scan_pattern(pattern, where) if pattern is not None else (1 if n == 1 else 3)
    circle = scan_pattern == CIRCLE_PATTERN
    # A circle B-scan's A-scans run along its circumference; start to end is its radius.
    path_mm = 2.0 * np.pi * length_mm if circle else length_mm
    scale_x_mm, scale_z_mm = _scales_mm(meta, path_mm, width, where)
    geometry = [
        BScanGeometry(
            start_xy_mm=(float(s[0]), float(s[1])),
            end_xy_mm=(float(e[0]), float(e[1])),
            quality=_quality(b.get("quality")),
            circle_centre_xy_mm=(float(e[0]), float(e[1])) if circle else None,
            circle_radius_mm=float(r) if circle else None,
            shift_ascans=int(b.get("shift") or 0),
        )
        for s, e, r, b in zip(start, end, length_mm, bscan_meta)
    ]
    check_geometry(geometry, width, scale_x_mm, scan_pattern, where)

    laterality = _laterality(meta.get("laterality")) or _laterality(ev.localizer.meta.get("laterality"))
    if laterality is None:
        raise InputError(where, f"laterality {meta.get('laterality')!r} is neither right (OD) nor left (OS)")
    distance_factor = _mm_per_unit(meta.get("scale_unit"))
    header_distance_mm = float(meta["scale_z"]) * distance_factor if distance_factor else None
    if header_distance_mm:  # 0 for one B-scan
        check_scale(header_distance_mm, "bscan_spacing_mm", where, "B-scan distance scale_z")

    reflectance = _reflectance_from_eyepy(raw, str(meta.get("intensity_transform", "default")), where)
    check_signal(reflectance, where)
    slo = None
    if not ev.localizer.meta.get(_BLANK_LOCALIZER_KEY, False) and localizer_scale is not None:
        slo = _slo_uint8(ev.localizer.raw_data)

    layers: dict[str, np.ndarray] = {}
    for name, layer in ev.layers.items():
        rows = np.asarray(layer.data, dtype=np.float32)
        if rows.shape != (n, width):
            raise InputError(where, f"layer {name!r} has shape {rows.shape}, expected {(n, width)}")
        layers[name] = np.where(rows > VOL_INVALID_ABOVE, np.float32(np.nan), rows)

    metadata: dict[str, Any] = {
        "reader": f"eyepy {eyepy.__version__}",
        "intensity_transform": meta.get("intensity_transform", "default"),
        "header_distance_mm": header_distance_mm,
        "layer_origin": {name: str(ev.layers[name].meta.get("origin", "file")) for name in layers},
    }
    if isinstance(ev.localizer.meta.get("field_size"), (int, float)):
        metadata["slo_field_size_deg"] = ev.localizer.meta["field_size"]
    return OctVolume(
        reflectance=reflectance,
        scale_x_mm=scale_x_mm,
        scale_z_mm=scale_z_mm,
        bscan_geometry=geometry,
        scan_pattern=scan_pattern,
        laterality=laterality,
        slo=slo,
        slo_scale_xy_mm=localizer_scale if slo is not None else None,
        device_layers=layers,
        metadata=metadata,
        source=source,
    )


# --- OctVolume -> eyepy -----------------------------------------------------------------------


def _localizer(volume: OctVolume) -> EyeEnface:
    """The SLO as eyepy localizer, or a blank one (A-scan pitch pixels) covering every A-scan."""
    meta: dict[str, Any] = {"laterality": volume.laterality}
    if "slo_field_size_deg" in volume.metadata:
        meta["field_size"] = volume.metadata["slo_field_size_deg"]
    if volume.slo is not None and volume.slo_scale_xy_mm is not None:
        scale_x, scale_y = volume.slo_scale_xy_mm
        return EyeEnface(volume.slo, EyeEnfaceMeta(scale_x=scale_x, scale_y=scale_y, scale_unit="mm", **meta))
    pixel_mm = volume.scale_x_mm
    points = np.concatenate(
        [
            volume.ascan_positions_mm().reshape(-1, 2),
            [g.start_xy_mm for g in volume.bscan_geometry],
            [g.end_xy_mm for g in volume.bscan_geometry],
        ]
    )
    cols, rows = (np.ceil(np.maximum(points.max(axis=0), 0.0) / pixel_mm).astype(int) + 1).tolist()
    meta[_BLANK_LOCALIZER_KEY] = True
    return EyeEnface(
        np.zeros((rows, cols), dtype=np.uint8),
        EyeEnfaceMeta(scale_x=pixel_mm, scale_y=pixel_mm, scale_unit="mm", **meta),
    )


def _localizer_transform(meta: EyeVolumeMeta, localizer_meta: EyeEnfaceMeta, shape: tuple[int, int, int]) -> AffineTransform:
    """eyepy's map from B-scan A-scans to localizer pixels, also where eyepy's own fit has no answer.

    eyepy maps ``(x, y) = (A-scan c, r)``, ``r = N - 1 - i`` for B-scan ``i``
    (its en-face projection is upside down), to localizer pixels ``(x, y)``
    by fitting an affine map to four corners: the start and end points of the
    last (``r = 0``) and the first B-scan, A-scans spread over ``W - 1``
    steps. The fit's linear part is the mean step along the B-scans and the
    mean step between them; when these are parallel (one B-scan, a circle
    scan, B-scans on one line) there is no answer: scikit-image >= 0.26
    returns a failed estimation whose ``params`` raise, older versions a
    singular or NaN matrix. There the map is built here instead: A-scans
    where eyepy places them along the last B-scan, rows perpendicular to it
    (clockwise on screen, like a Heidelberg raster) one A-scan step apart, so
    the map stays invertible (unless all A-scans share one point).

    Parameters
    ----------
    meta
        Volume meta as :func:`to_eyepy` writes it (positions in mm).
    localizer_meta
        Localizer meta, ``scale_x`` / ``scale_y`` in mm per pixel.
    shape
        ``(N, H, W)`` of the B-scan data.

    Returns
    -------
    skimage.transform.AffineTransform
        ``(A-scan index, row) -> localizer pixel (x, y)``.
    """
    n, _, width = shape
    scale = np.array([localizer_meta["scale_x"], localizer_meta["scale_y"]], dtype=np.float64)
    # ends[k, j]: start (j = 0) / end (j = 1) in pixels of the last (k = 0) and first (k = 1) B-scan
    ends = (
        np.array([[b["start_pos"], b["end_pos"]] for b in (meta["bscan_meta"][-1], meta["bscan_meta"][0])], dtype=np.float64)
        / scale
    )
    along = (ends[:, 1] - ends[:, 0]).mean(axis=0) / max(width - 1, 1)  # pixels per A-scan
    across = (ends[1] - ends[0]).mean(axis=0) / max(n - 1, 1)  # pixels per row
    # |sine| of the angle between the two steps: 0 where eyepy's fit is singular
    if abs(along[0] * across[1] - along[1] * across[0]) > 1e-6 * np.linalg.norm(along) * np.linalg.norm(across):
        return _compute_localizer_oct_transform(meta, localizer_meta, shape)
    return AffineTransform(
        matrix=np.array(
            [
                [along[0], -along[1], ends[0, 0, 0]],
                [along[1], along[0], ends[0, 0, 1]],
                [0.0, 0.0, 1.0],
            ]
        )
    )


def to_eyepy(volume: OctVolume, layers_px: Mapping[str, np.ndarray]) -> EyeVolume:
    """Our volume and layer boundaries as an ``eyepy.EyeVolume``.

    Parameters
    ----------
    volume
        The volume (any reader).
    layers_px
        Our boundaries ``{name: (N, W)}`` row positions in pixels (row 0 =
        top of the B-scan), NaN where unknown; stored as eyepy layer
        annotations with meta ``origin="retinaseg"``. The volume's own
        ``device_layers`` are not written.

    Returns
    -------
    eyepy.EyeVolume
        ``raw_data`` the reflectance as float32 with NaN as FLT_MAX and
        ``intensity_transform="vol"``, exactly like eyepy's HEYEX ``.vol``
        importer (so eyepy shows its usual HEYEX-like contrast); ``scale_x``
        A-scan pitch, ``scale_y`` axial pixel size, ``scale_z`` mean B-scan
        spacing (0 for one B-scan), all in mm; per B-scan ``start_pos`` /
        ``end_pos`` in mm as stored in the volume (eyepy spreads the A-scans
        over ``W - 1`` steps, we over ``W``: see :mod:`retinaseg.volume`),
        ``quality`` (None if unknown) and ``shift``; ``laterality``;
        ``scan_pattern``; the SLO as localizer, or a blank uint8 one of
        A-scan-pitch pixels covering every A-scan (marked so
        :func:`from_eyepy` drops it again), registered with the B-scans as
        eyepy's importers do, also for one B-scan and circle scans
        (:func:`_localizer_transform`).

    Raises
    ------
    ValueError
        A layer that is not ``(N, W)``.
    """
    n, _, width = volume.shape
    for name, rows in layers_px.items():
        if np.shape(rows) != (n, width):
            raise ValueError(f"layer {name!r} has shape {np.shape(rows)}, expected {(n, width)}")
    raw = np.where(np.isnan(volume.reflectance), VOL_INVALID_MARKER, volume.reflectance).astype(np.float32, copy=False)
    bscan_meta = [
        EyeBscanMeta(
            start_pos=g.start_xy_mm,
            end_pos=g.end_xy_mm,
            pos_unit="mm",
            quality=None if math.isnan(g.quality) else g.quality,
            shift=g.shift_ascans,  # not an eyepy key: read back by from_eyepy
        )
        for g in volume.bscan_geometry
    ]
    spacing = volume.bscan_spacing_mm()
    meta = EyeVolumeMeta(
        scale_x=volume.scale_x_mm,
        scale_y=volume.scale_z_mm,
        scale_z=float(spacing.mean()) if spacing.size else 0.0,
        scale_unit="mm",
        bscan_meta=bscan_meta,
        laterality=volume.laterality,
        intensity_transform="vol",
        scan_pattern=int(volume.scan_pattern),  # not an eyepy key: read back by from_eyepy
    )
    localizer = _localizer(volume)
    ev = EyeVolume(
        data=raw,
        meta=meta,
        localizer=localizer,
        transformation=_localizer_transform(meta, localizer.meta, raw.shape),
    )
    for name, rows in layers_px.items():
        ev.add_layer_annotation(np.asarray(rows, dtype=np.float32), name=name, origin=_LAYER_ORIGIN)
    return ev


def write_eye(
    volume: OctVolume,
    layers_px: Mapping[str, np.ndarray],
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Write :func:`to_eyepy` of the volume as an eyepy ``.eye`` file, atomically.

    The file is written to a temporary file in the same folder and moved into
    place with :func:`os.replace`, so no half-written ``.eye`` is ever seen.

    Parameters
    ----------
    volume, layers_px
        As for :func:`to_eyepy`.
    path
        Destination ending in ``.eye``; its folder must exist.
    overwrite
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        ``path`` does not end in ``.eye``, its folder is missing, it is a
        folder, or it exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.suffix.lower() != ".eye":
        raise InputError(path, "eyepy files must end in .eye")
    if not path.parent.is_dir():
        raise InputError(path.parent, "folder not found")
    if path.is_dir():
        raise InputError(path, "is a folder, not a file")
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; pass overwrite=True to replace it")
    ev = to_eyepy(volume, layers_px)
    with atomic_path(path) as tmp:
        ev.save(tmp)
    return path


# --- reading eyepy files ---------------------------------------------------------------------


_MAX_EYE_UNPACKED_BYTES = 8 * MAX_OCT_VOXELS
"""Most bytes an ``.eye`` archive may unpack to: float64 B-scans at the voxel limit, or float32
ones with a voxel annotation of the same size. eyepy unpacks every member into memory."""


def _check_eye_archive(path: Path) -> None:
    """Refuse an eyepy ``.eye`` archive that unpacks to more than the limits, from its directory and npy header.

    A small archive can unpack to any size; ``zipfile`` never unpacks more
    than a member's declared size, so the declared sizes bound the memory.
    Archives that are not readable zip files are left to eyepy to report.
    """
    headers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            with archive.open("raw_volume.npy") as member:
                read_header = headers.get(np.lib.format.read_magic(member))
                shape = read_header(member)[0] if read_header else None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return
    if unpacked > _MAX_EYE_UNPACKED_BYTES:
        raise InputError(path, f"eyepy archive unpacks to {unpacked} bytes; at most {_MAX_EYE_UNPACKED_BYTES} are read")
    if shape is not None and len(shape) == 3:
        check_oct_size(*shape, path)


def _load_with_eyepy(path: Path, suffix: str) -> EyeVolume:
    what, loader = _EYEPY_LOADERS[suffix]
    if suffix == ".xml" and path.suffix != ".xml":
        raise InputError(path, "eyepy reads HEYEX XML exports only with a lower-case .xml suffix; rename the file")
    if suffix == ".eye":
        _check_eye_archive(path)
    try:
        return loader(path)
    except Exception as exc:  # eyepy's parsers (construct, zipfile, ElementTree, imageio) raise any type
        raise InputError(path, f"cannot read {what} ({describe_exception(exc)})") from exc


def read_eyepy_file(path: str | os.PathLike[str]) -> OctVolume:
    """Read an ``.e2e``, HEYEX ``.xml`` or ``.eye`` file with eyepy and convert it.

    Parameters
    ----------
    path
        The file; its suffix (any case; ``.xml`` must be lower case for
        eyepy) picks eyepy's importer.

    Returns
    -------
    OctVolume
        :func:`from_eyepy` of eyepy's volume; ``source`` is ``path``.

    Raises
    ------
    InputError
        Another suffix; anything eyepy cannot parse (truncated, corrupt or
        foreign files); an ``.eye`` archive that unpacks to more than the OCT
        limits (from its directory, before eyepy unpacks it); eyepy meta of
        unexpected form; whatever :func:`from_eyepy` refuses.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _EYEPY_LOADERS:
        raise InputError(path, f"eyepy files read here end in {', '.join(_EYEPY_LOADERS)}")
    ev = _load_with_eyepy(path, suffix)
    try:
        return from_eyepy(ev, source=str(path))
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        # Loaded by eyepy but with meta of unexpected form (hand-edited or foreign .eye files).
        raise InputError(path, f"unusable eyepy meta data ({describe_exception(exc)})") from exc

"""Read Heidelberg Spectralis raw-export ``.vol`` files (``HSF-OCT-1xx``).

Layout (little-endian; field names and offsets as in the Heidelberg
"raw data export" description, eyepy's ``vol_reader`` and RETIMAT's
``read_vol.m``)::

    file header        2048 bytes (magic, sizes, scales, laterality, ...)
    SLO image          SizeYSlo x SizeXSlo uint8
    NumBScans times:
        B-scan header  BScanHdrSize bytes: 256 fixed bytes (magic, start/end
                       point, NumSeg, OffSeg, quality, ...), then NumSeg x
                       SizeX float32 segmentation lines at OffSeg
        B-scan pixels  SizeZ x SizeX float32 linear reflectance

Values above 1e30 (the device writes FLT_MAX) mark invalid pixels and
unsegmented line positions; they become NaN. Bytes after the last B-scan are
ignored (some genuine exports carry a few).

The file is read in this order, and refused with
:class:`~retinaseg.errors.InputError` at the first problem: the file header
(sizes against the file size and the limits of :mod:`retinaseg.io.limits`,
scales, scan pattern and laterality against the plausible values of
:mod:`retinaseg.volume`); the fixed B-scan headers (magic, sizes, positions
and circle geometry); the segmentation lines; then the pixels, B-scan by
B-scan straight into the result. So a corrupt or hostile header fails at
once, before any large allocation, and memory holds the volume once.

Patient name, id and birth date are not read into the result.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from retinaseg.conventions import device_line_name
from retinaseg.errors import InputError
from retinaseg.io.limits import (
    MAX_OCT_VOXELS,
    check_image_size,
    check_oct_size,
    check_regular_file,
)
from retinaseg.volume import (
    CIRCLE_PATTERN,
    BScanGeometry,
    OctVolume,
    check_geometry,
    check_reflectance_range,
    check_scale,
    check_scan_pattern,
    check_signal,
)

FILE_HEADER_BYTES = 2048
BSCAN_FIXED_HEADER_BYTES = 256
MAX_SEGMENTATION_LINES = 64
"""More lines than any known export (19 with OCTA); larger counts mean a corrupt header."""

VOL_INVALID_MARKER = np.finfo(np.float32).max
"""What ``.vol`` files store for invalid pixels, lines and qualities (FLT_MAX)."""

VOL_INVALID_ABOVE = 1e30
"""Stored values above this are the invalid marker (tolerant of rounding)."""
_FILE_MAGIC = b"HSF-OCT-"
_BSCAN_MAGIC = b"HSF-BS-"


def _struct(fields: list[tuple[str, str, int]], itemsize: int) -> np.dtype:
    names, formats, offsets = zip(*fields)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


_FILE_HEADER = _struct(
    [
        ("version", "S12", 0),
        ("size_x", "<i4", 12),
        ("num_bscans", "<i4", 16),
        ("size_z", "<i4", 20),
        ("scale_x", "<f8", 24),
        ("distance", "<f8", 32),
        ("scale_z", "<f8", 40),
        ("size_x_slo", "<i4", 48),
        ("size_y_slo", "<i4", 52),
        ("scale_x_slo", "<f8", 56),
        ("scale_y_slo", "<f8", 64),
        ("field_size_slo", "<i4", 72),
        ("scan_focus", "<f8", 76),
        ("scan_position", "S4", 84),
        ("exam_time", "<u8", 88),
        ("scan_pattern", "<i4", 96),
        ("bscan_hdr_size", "<i4", 100),
        ("id", "S16", 104),
        ("reference_id", "S16", 120),
        ("visit_id", "S24", 176),
        ("visit_date", "<f8", 200),
        ("grid_type", "<i4", 208),
        ("grid_offset", "<i4", 212),
        ("grid_type1", "<i4", 216),
        ("grid_offset1", "<i4", 220),
        ("prog_id", "S34", 224),
    ],
    FILE_HEADER_BYTES,
)

_BSCAN_HEADER = _struct(
    [
        ("version", "S12", 0),
        ("bscan_hdr_size", "<i4", 12),
        ("start_x", "<f8", 16),
        ("start_y", "<f8", 24),
        ("end_x", "<f8", 32),
        ("end_y", "<f8", 40),
        ("num_seg", "<i4", 48),
        ("off_seg", "<i4", 52),
        ("quality", "<f4", 56),
        ("shift", "<i4", 60),
    ],
    BSCAN_FIXED_HEADER_BYTES,
)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _exam_time(ticks: int) -> str | None:
    """ExamTime: 100 ns ticks since 1601-01-01 UTC (Windows FILETIME), as ISO time in UTC; None if 0 or out of range."""
    try:
        return (datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=ticks // 10)).isoformat() if ticks else None
    except OverflowError:
        return None


def _visit_date(days: float) -> str | None:
    """VisitDate: days since 1899-12-30 (OLE date); None if 0 or not a representable date."""
    try:
        return (date(1899, 12, 30) + timedelta(days=days)).isoformat() if days else None
    except (OverflowError, ValueError):
        return None


def _check_file_header(path: Path, head: np.void, file_bytes: int) -> None:
    """Refuse a header whose sizes do not fit the file or the limits, or whose scales are implausible."""
    size_x, size_z, num_bscans = int(head["size_x"]), int(head["size_z"]), int(head["num_bscans"])
    slo_x, slo_y, hdr_size = int(head["size_x_slo"]), int(head["size_y_slo"]), int(head["bscan_hdr_size"])
    if num_bscans == 0:
        raise InputError(path, "holds no B-scans (NumBScans = 0)")
    for name, value in (("NumBScans", num_bscans), ("SizeX", size_x), ("SizeZ", size_z)):
        if value < 1:
            raise InputError(path, f"header {name} = {value} must be positive")
    for name, value in (("SizeXSlo", slo_x), ("SizeYSlo", slo_y)):
        if value < 0:
            raise InputError(path, f"header {name} = {value} is negative")
    if hdr_size < BSCAN_FIXED_HEADER_BYTES:
        raise InputError(path, f"header BScanHdrSize = {hdr_size} is below the {BSCAN_FIXED_HEADER_BYTES}-byte minimum")
    # Python integers: no overflow however large the claimed sizes are.
    needed = FILE_HEADER_BYTES + slo_x * slo_y + num_bscans * (hdr_size + 4 * size_x * size_z)
    if needed > file_bytes:
        raise InputError(
            path,
            f"file has {file_bytes} bytes but its header needs {needed} (NumBScans={num_bscans}, "
            f"SizeX={size_x}, SizeZ={size_z}, SLO {slo_x}x{slo_y}, BScanHdrSize={hdr_size}): "
            "truncated file or corrupt header",
        )
    # A sparse file can be as large as its header claims: the limits bound what is allocated.
    check_oct_size(num_bscans, size_z, size_x, path)
    if slo_x * slo_y:
        check_image_size(slo_y, slo_x, path)
        check_scale(head["scale_x_slo"], "slo_pixel_mm", path, "header ScaleXSlo")
        check_scale(head["scale_y_slo"], "slo_pixel_mm", path, "header ScaleYSlo")
    check_scale(head["scale_x"], "scale_x_mm", path, "header ScaleX")
    check_scale(head["scale_z"], "scale_z_mm", path, "header ScaleZ")
    if head["distance"] != 0:  # 0: single B-scans
        check_scale(head["distance"], "bscan_spacing_mm", path, "header Distance")
    laterality = _text(bytes(head["scan_position"]))
    if laterality not in ("OD", "OS"):
        raise InputError(path, f"ScanPosition {laterality!r} is neither 'OD' nor 'OS'")
    check_scan_pattern(int(head["scan_pattern"]), path)


def _read_exactly(stream: io.BufferedIOBase, offset: int, out: np.ndarray, path: Path) -> None:
    """Fill the contiguous array ``out`` with the bytes of the file at ``offset``."""
    stream.seek(offset)
    if stream.readinto(out.data.cast("B")) != out.nbytes:
        raise InputError(path, f"file shrank while reading (no {out.nbytes} bytes at offset {offset})")


class _Layout:
    """Where the parts of a checked ``.vol`` file lie."""

    def __init__(self, head: np.void) -> None:
        self.size_x, self.size_z = int(head["size_x"]), int(head["size_z"])
        self.num_bscans, self.hdr_size = int(head["num_bscans"]), int(head["bscan_hdr_size"])
        self.slo_shape = (int(head["size_y_slo"]), int(head["size_x_slo"]))
        self.stride = self.hdr_size + 4 * self.size_x * self.size_z
        self.first_bscan = FILE_HEADER_BYTES + self.slo_shape[0] * self.slo_shape[1]

    def bscan(self, index: int) -> int:
        """File offset of B-scan ``index``'s header."""
        return self.first_bscan + index * self.stride


def _bscan_headers(path: Path, stream: io.BufferedIOBase, layout: _Layout) -> np.ndarray:
    """The fixed 256-byte B-scan headers, checked (magic, size, NumSeg)."""
    headers = np.empty(layout.num_bscans, dtype=_BSCAN_HEADER)
    for i in range(layout.num_bscans):
        _read_exactly(stream, layout.bscan(i), headers[i : i + 1], path)
    bad_magic = ~np.char.startswith(headers["version"], _BSCAN_MAGIC)
    if bad_magic.any():
        i = int(np.argmax(bad_magic))
        magic = bytes(headers["version"][i])
        raise InputError(path, f"B-scan {i}: magic {magic!r} is not HSF-BS-1xx (corrupt layout)")
    bad_size = headers["bscan_hdr_size"] != layout.hdr_size
    if bad_size.any():
        i = int(np.argmax(bad_size))
        raise InputError(
            path,
            f"B-scan {i}: BScanHdrSize {headers['bscan_hdr_size'][i]} differs from the file header's {layout.hdr_size}",
        )
    num_seg = headers["num_seg"]
    if num_seg.min() < 0 or num_seg.max() > MAX_SEGMENTATION_LINES:
        raise InputError(path, f"B-scan NumSeg values {num_seg.min()}..{num_seg.max()} outside 0..{MAX_SEGMENTATION_LINES}")
    return headers


def _segmentation_lines(path: Path, stream: io.BufferedIOBase, layout: _Layout, headers: np.ndarray) -> np.ndarray:
    """Raw segmentation lines ``(N, max NumSeg, W)`` float32; NaN past a B-scan's own NumSeg."""
    num_seg = headers["num_seg"]
    max_seg = int(num_seg.max())
    if max_seg == 0:
        return np.empty((layout.num_bscans, 0, layout.size_x), dtype=np.float32)
    offsets = np.unique(headers["off_seg"][num_seg > 0])
    if offsets.size > 1:
        raise InputError(path, f"B-scans disagree on the segmentation offset OffSeg ({offsets.tolist()})")
    off_seg = int(offsets[0])
    if off_seg < BSCAN_FIXED_HEADER_BYTES or off_seg + 4 * max_seg * layout.size_x > layout.hdr_size:
        raise InputError(
            path,
            f"segmentation lines (OffSeg={off_seg}, NumSeg={max_seg}, SizeX={layout.size_x}) "
            f"do not fit the {layout.hdr_size}-byte B-scan header",
        )
    count = layout.num_bscans * max_seg * layout.size_x
    if count > MAX_OCT_VOXELS:
        raise InputError(path, f"{count} segmentation line values (NumSeg={max_seg}); at most {MAX_OCT_VOXELS} are read")
    lines = np.empty((layout.num_bscans, max_seg, layout.size_x), dtype="<f4")
    for i in range(layout.num_bscans):
        _read_exactly(stream, layout.bscan(i) + off_seg, lines[i], path)
    # B-scans with fewer lines than the most: the rest of their block is not segmentation.
    lines[np.arange(max_seg)[None, :] >= num_seg[:, None]] = VOL_INVALID_MARKER
    return _invalid_to_nan(path, lines, "segmentation line")


def _invalid_to_nan(path: Path, values: np.ndarray, what: str, index: tuple[int, ...] = ()) -> np.ndarray:
    """Set values > 1e30 (the invalid marker) to NaN in place and return them as float32.

    Non-finite values are corrupt: the format marks invalid values with FLT_MAX.
    ``index`` is prepended to the position in the message (the B-scan of a slice).
    """
    non_finite = ~np.isfinite(values)
    if non_finite.any():
        n, where = int(non_finite.sum()), [*index, *np.argwhere(non_finite)[0].tolist()]
        raise InputError(path, f"{n} {what} values are NaN or infinite (first at index {where}); the invalid marker is FLT_MAX")
    values[values > VOL_INVALID_ABOVE] = np.nan
    return values.astype(np.float32, copy=False)


def _pixels(path: Path, stream: io.BufferedIOBase, layout: _Layout) -> np.ndarray:
    """Reflectance ``(N, SizeZ, SizeX)`` float32 in [0, 1], NaN invalid; read and checked B-scan by B-scan."""
    # Read straight into the result and convert in place: the volume is held in memory once.
    reflectance = np.empty((layout.num_bscans, layout.size_z, layout.size_x), dtype="<f4")
    for i, bscan in enumerate(reflectance):
        _read_exactly(stream, layout.bscan(i) + layout.hdr_size, bscan, path)
        _invalid_to_nan(path, bscan, "pixel", (i,))
        check_reflectance_range(bscan, path, f"B-scan {i}: ")
    return reflectance.astype(np.float32, copy=False)


def _geometry(blocks: np.ndarray, circle: bool) -> list[BScanGeometry]:
    points = np.stack([blocks["start_x"], blocks["start_y"], blocks["end_x"], blocks["end_y"]], axis=1)
    radius = np.hypot(points[:, 0] - points[:, 2], points[:, 1] - points[:, 3])
    quality = np.where(blocks["quality"] > VOL_INVALID_ABOVE, np.nan, blocks["quality"])
    return [
        BScanGeometry(
            start_xy_mm=(float(sx), float(sy)),
            end_xy_mm=(float(ex), float(ey)),
            quality=float(q),
            circle_centre_xy_mm=(float(ex), float(ey)) if circle else None,
            circle_radius_mm=float(r) if circle else None,
            shift_ascans=int(shift),
        )
        for (sx, sy, ex, ey), q, r, shift in zip(points, quality, radius, blocks["shift"])
    ]


def read_vol(path: str | os.PathLike[str]) -> OctVolume:
    """Read a Heidelberg Spectralis raw-export ``.vol`` file.

    Parameters
    ----------
    path
        ``.vol`` file with magic ``HSF-OCT-1xx`` (any scan pattern: line,
        circle, volume, radial).

    Returns
    -------
    OctVolume
        ``reflectance`` ``(NumBScans, SizeZ, SizeX)`` float32 in ``[0, 1]``
        with NaN for invalid pixels; ``scale_x_mm`` / ``scale_z_mm`` from
        ScaleX / ScaleZ; one :class:`~retinaseg.volume.BScanGeometry` per
        B-scan (circle centre and radius for scan pattern 2); ``slo``
        ``(SizeYSlo, SizeXSlo)`` uint8 or ``None`` when the file has none;
        ``device_layers`` ``{name: (N, SizeX) float32}`` rows in pixels with
        NaN where not segmented (or outside the B-scan, see
        :class:`~retinaseg.volume.OctVolume`); ``metadata`` with ``version``,
        ``exam_time`` / ``visit_date`` (ISO strings or ``None``),
        ``scan_id``, ``reference_id``, ``visit_id``, ``progression_id``,
        ``slo_field_size_deg``, ``scan_focus_dpt``, ``header_distance_mm``
        (nominal B-scan pitch; use
        :meth:`~retinaseg.volume.OctVolume.bscan_spacing_mm` for the real
        one), ``grid_types``.

    Raises
    ------
    InputError
        Missing file, folder, pipe or device; wrong magic; truncated file
        or header sizes that do not fit the file size (NumBScans, SizeX,
        SizeZ, SLO size, BScanHdrSize); sizes above
        :func:`retinaseg.io.limits.check_oct_size` or the SLO above
        :func:`retinaseg.io.limits.check_image_size`; zero B-scans;
        implausible scales (:func:`retinaseg.volume.check_scale`); unknown
        scan pattern; laterality other than OD/OS; corrupt B-scan headers
        (magic, size, NumSeg above :data:`MAX_SEGMENTATION_LINES`, lines
        outside the header); implausible positions or circle geometry
        (:func:`retinaseg.volume.check_geometry`); NaN/infinite pixels or
        line values; pixels outside ``[0, 1]`` other than the invalid
        marker; no signal (:func:`retinaseg.volume.check_signal`). All but
        the last three are found before any pixel is read.
    """
    path = check_regular_file(path, ".vol file")
    try:
        with path.open("rb") as stream:
            file_bytes = os.fstat(stream.fileno()).st_size
            head_bytes = stream.read(FILE_HEADER_BYTES)
            if not head_bytes.startswith(_FILE_MAGIC):
                raise InputError(path, f"not a Heidelberg .vol file (magic {head_bytes[:12]!r}, expected HSF-OCT-1xx)")
            if len(head_bytes) < FILE_HEADER_BYTES:
                raise InputError(path, f"truncated: {file_bytes} bytes, shorter than the {FILE_HEADER_BYTES}-byte .vol header")
            head = np.frombuffer(head_bytes, dtype=_FILE_HEADER)[0]
            _check_file_header(path, head, file_bytes)
            layout = _Layout(head)
            scan_pattern = int(head["scan_pattern"])
            headers = _bscan_headers(path, stream, layout)
            geometry = _geometry(headers, circle=scan_pattern == CIRCLE_PATTERN)
            check_geometry(geometry, layout.size_x, float(head["scale_x"]), scan_pattern, path)
            lines = _segmentation_lines(path, stream, layout, headers)
            slo = None
            if layout.slo_shape[0] * layout.slo_shape[1]:
                slo = np.empty(layout.slo_shape, dtype=np.uint8)
                _read_exactly(stream, FILE_HEADER_BYTES, slo, path)
            reflectance = _pixels(path, stream, layout)
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from exc
    check_signal(reflectance, path)

    metadata: dict[str, Any] = {
        "version": _text(bytes(head["version"])),
        "exam_time": _exam_time(int(head["exam_time"])),
        "visit_date": _visit_date(float(head["visit_date"])),
        "scan_id": _text(bytes(head["id"])),
        "reference_id": _text(bytes(head["reference_id"])),
        "visit_id": _text(bytes(head["visit_id"])),
        "progression_id": _text(bytes(head["prog_id"])),
        "slo_field_size_deg": int(head["field_size_slo"]),
        "scan_focus_dpt": float(head["scan_focus"]),
        "header_distance_mm": float(head["distance"]),
        "grid_types": (int(head["grid_type"]), int(head["grid_type1"])),
    }
    return OctVolume(
        reflectance=reflectance,
        scale_x_mm=float(head["scale_x"]),
        scale_z_mm=float(head["scale_z"]),
        bscan_geometry=geometry,
        scan_pattern=scan_pattern,
        laterality=_text(bytes(head["scan_position"])),  # type: ignore[arg-type]  # OD/OS, checked
        slo=slo,
        slo_scale_xy_mm=(float(head["scale_x_slo"]), float(head["scale_y_slo"])) if slo is not None else None,
        device_layers={device_line_name(i): np.ascontiguousarray(lines[:, i]) for i in range(lines.shape[1])},
        metadata=metadata,
        source=str(path),
    )

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

Everything the sizes imply is checked against the file size before the
B-scans are read, so a corrupt header fails at once without a large
allocation. Other problems (wrong magic, non-finite or out-of-range pixels,
inconsistent B-scan headers, implausible segmentation counts, laterality other
than OD/OS) raise :class:`~retinaseg.errors.InputError`. An unrecognised scan
pattern code is kept with a logged warning: its B-scans are placed as straight
lines.

Patient name, id and birth date are not read into the result.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from retinaseg.errors import InputError
from retinaseg.volume import (
    CIRCLE_PATTERN,
    SCAN_PATTERN_NAMES,
    BScanGeometry,
    OctVolume,
    device_line_name,
)

logger = logging.getLogger(__name__)

FILE_HEADER_BYTES = 2048
BSCAN_FIXED_HEADER_BYTES = 256
MAX_SEGMENTATION_LINES = 64
"""More lines than any known export (19 with OCTA); larger counts mean a corrupt header."""

_INVALID_ABOVE = 1e30
_FIELD_NAMES = {"scale_x": "ScaleX", "scale_z": "ScaleZ", "scale_x_slo": "ScaleXSlo", "scale_y_slo": "ScaleYSlo"}
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

_BSCAN_HEADER_FIELDS = [
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
]


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _exam_time(ticks: int) -> str | None:
    """ExamTime: 100 ns ticks since 1601-01-01 UTC (Windows FILETIME); None if 0 or out of range."""
    try:
        return (datetime(1601, 1, 1) + timedelta(microseconds=ticks // 10)).isoformat() if ticks else None
    except OverflowError:
        return None


def _visit_date(days: float) -> str | None:
    """VisitDate: days since 1899-12-30 (OLE date); None if 0 or not a representable date."""
    try:
        return (datetime(1899, 12, 30) + timedelta(days=days)).date().isoformat() if days else None
    except (OverflowError, ValueError):
        return None


def _check_file_header(path: Path, head: np.void, file_bytes: int) -> int:
    """Validate the header and its sizes against the file size; return the bytes needed."""
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
    scales = ["scale_x", "scale_z"] + (["scale_x_slo", "scale_y_slo"] if slo_x * slo_y else [])
    for name in scales:
        if not (np.isfinite(head[name]) and head[name] > 0):
            raise InputError(path, f"header {_FIELD_NAMES[name]} = {head[name]} mm is not a positive number")
    laterality = _text(bytes(head["scan_position"]))
    if laterality not in ("OD", "OS"):
        raise InputError(path, f"ScanPosition {laterality!r} is neither 'OD' nor 'OS'")
    # Python integers: no overflow however large the claimed sizes are.
    needed = FILE_HEADER_BYTES + slo_x * slo_y + num_bscans * (hdr_size + 4 * size_x * size_z)
    if needed > file_bytes:
        raise InputError(
            path,
            f"file has {file_bytes} bytes but its header needs {needed} (NumBScans={num_bscans}, "
            f"SizeX={size_x}, SizeZ={size_z}, SLO {slo_x}x{slo_y}, BScanHdrSize={hdr_size}): "
            "truncated file or corrupt header",
        )
    return needed


def _read_checked(path: Path) -> tuple[np.void, bytes]:
    """File header and the bytes it describes, checked before the bulk read."""
    try:
        with path.open("rb") as stream:
            file_bytes = os.fstat(stream.fileno()).st_size
            head_bytes = stream.read(FILE_HEADER_BYTES)
            if not head_bytes.startswith(_FILE_MAGIC):
                raise InputError(path, f"not a Heidelberg .vol file (magic {head_bytes[:12]!r}, expected HSF-OCT-1xx)")
            if len(head_bytes) < FILE_HEADER_BYTES:
                raise InputError(
                    path, f"truncated: {file_bytes} bytes, shorter than the {FILE_HEADER_BYTES}-byte .vol header"
                )
            head = np.frombuffer(head_bytes, dtype=_FILE_HEADER)[0]
            needed = _check_file_header(path, head, file_bytes)
            stream.seek(0)
            buffer = stream.read(needed)
    except OSError as exc:
        raise InputError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if len(buffer) != needed:
        raise InputError(path, f"file shrank while reading ({len(buffer)} of {needed} bytes)")
    return head, buffer


def _bscan_blocks(path: Path, head: np.void, buffer: bytes) -> tuple[np.ndarray, np.ndarray]:
    """B-scan headers with pixels (views into ``buffer``), and raw lines ``(N, max NumSeg, W)``."""
    size_x, size_z = int(head["size_x"]), int(head["size_z"])
    num_bscans, hdr_size = int(head["num_bscans"]), int(head["bscan_hdr_size"])
    stride = hdr_size + 4 * size_x * size_z
    start = FILE_HEADER_BYTES + int(head["size_x_slo"]) * int(head["size_y_slo"])
    block = _struct(_BSCAN_HEADER_FIELDS + [("pixels", ("<f4", (size_z, size_x)), hdr_size)], stride)
    blocks = np.frombuffer(buffer, dtype=block, count=num_bscans, offset=start)

    bad_magic = ~np.char.startswith(blocks["version"], _BSCAN_MAGIC)
    if bad_magic.any():
        i = int(np.argmax(bad_magic))
        magic = bytes(blocks["version"][i])
        raise InputError(path, f"B-scan {i}: magic {magic!r} is not HSF-BS-1xx (corrupt layout)")
    bad_size = blocks["bscan_hdr_size"] != hdr_size
    if bad_size.any():
        i = int(np.argmax(bad_size))
        raise InputError(
            path, f"B-scan {i}: BScanHdrSize {blocks['bscan_hdr_size'][i]} differs from the file header's {hdr_size}"
        )

    num_seg = blocks["num_seg"]
    if num_seg.min() < 0 or num_seg.max() > MAX_SEGMENTATION_LINES:
        raise InputError(
            path, f"B-scan NumSeg values {num_seg.min()}..{num_seg.max()} outside 0..{MAX_SEGMENTATION_LINES}"
        )
    max_seg = int(num_seg.max())
    if max_seg == 0:
        return blocks, np.empty((num_bscans, 0, size_x), dtype=np.float32)
    offsets = np.unique(blocks["off_seg"][num_seg > 0])
    if offsets.size > 1:
        raise InputError(path, f"B-scans disagree on the segmentation offset OffSeg ({offsets.tolist()})")
    off_seg = int(offsets[0])
    if off_seg < BSCAN_FIXED_HEADER_BYTES or off_seg + 4 * max_seg * size_x > hdr_size:
        raise InputError(
            path,
            f"segmentation lines (OffSeg={off_seg}, NumSeg={max_seg}, SizeX={size_x}) "
            f"do not fit the {hdr_size}-byte B-scan header",
        )
    lines = np.frombuffer(
        buffer, dtype=_struct([("lines", ("<f4", (max_seg, size_x)), off_seg)], stride), count=num_bscans, offset=start
    )["lines"]
    # B-scans with fewer lines than the most: the rest of their block is not segmentation.
    absent = np.arange(max_seg)[None, :, None] >= num_seg[:, None, None]
    return blocks, np.where(absent, np.float32(np.nan), lines).astype(np.float32, copy=False)


def _invalid_to_nan(path: Path, values: np.ndarray, what: str) -> np.ndarray:
    """float32 copy with values > 1e30 (the invalid marker) as NaN; non-finite values are corrupt."""
    non_finite = ~np.isfinite(values)
    if non_finite.any():
        n, where = int(non_finite.sum()), np.argwhere(non_finite)[0].tolist()
        raise InputError(
            path, f"{n} {what} values are NaN or infinite (first at index {where}); the invalid marker is FLT_MAX"
        )
    return np.where(values > _INVALID_ABOVE, np.float32(np.nan), values).astype(np.float32, copy=False)


def _geometry(path: Path, blocks: np.ndarray, circle: bool) -> list[BScanGeometry]:
    points = np.stack([blocks["start_x"], blocks["start_y"], blocks["end_x"], blocks["end_y"]], axis=1)
    if not np.isfinite(points).all():
        raise InputError(path, "B-scan start/end positions are not finite")
    radius = np.hypot(points[:, 0] - points[:, 2], points[:, 1] - points[:, 3])
    if circle and (radius <= 0).any():
        raise InputError(path, "circle scan with zero radius (start point equals centre)")
    quality = np.where(blocks["quality"] > _INVALID_ABOVE, np.nan, blocks["quality"])
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
        NaN where not segmented; ``metadata`` with ``version``,
        ``exam_time`` / ``visit_date`` (ISO strings or ``None``),
        ``scan_id``, ``reference_id``, ``visit_id``, ``progression_id``,
        ``slo_field_size_deg``, ``scan_focus_dpt``, ``header_distance_mm``
        (nominal B-scan pitch; use
        :meth:`~retinaseg.volume.OctVolume.bscan_spacing_mm` for the real
        one), ``grid_types``.

    Raises
    ------
    InputError
        Missing or unreadable file; wrong magic; truncated file or header
        sizes that do not fit the file size (NumBScans, SizeX, SizeZ, SLO
        size, BScanHdrSize); zero B-scans; corrupt B-scan headers (magic,
        size, NumSeg above :data:`MAX_SEGMENTATION_LINES`, lines outside the
        header); NaN/infinite pixels or line values; pixels outside
        ``[0, 1]`` other than the invalid marker; non-positive scales;
        laterality other than OD/OS.
    """
    path = Path(path)
    head, buffer = _read_checked(path)
    scan_pattern = int(head["scan_pattern"])
    if scan_pattern not in SCAN_PATTERN_NAMES:
        logger.warning("%s: unknown scan pattern %d; B-scans are placed as straight lines", path, scan_pattern)

    blocks, lines = _bscan_blocks(path, head, buffer)
    reflectance = _invalid_to_nan(path, blocks["pixels"], "pixel")
    outside = (reflectance < 0) | (reflectance > 1)  # NaN compares False
    if outside.any():
        raise InputError(
            path,
            f"{int(outside.sum())} pixel values outside [0, 1] "
            f"(min {np.nanmin(reflectance):.4g}, max {np.nanmax(reflectance):.4g}); not raw reflectance",
        )
    lines = _invalid_to_nan(path, lines, "segmentation line")

    slo_x, slo_y = int(head["size_x_slo"]), int(head["size_y_slo"])
    slo, slo_scale = None, None
    if slo_x * slo_y:
        slo = np.frombuffer(buffer, dtype=np.uint8, count=slo_x * slo_y, offset=FILE_HEADER_BYTES)
        slo = slo.reshape(slo_y, slo_x).copy()
        slo_scale = (float(head["scale_x_slo"]), float(head["scale_y_slo"]))

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
        bscan_geometry=_geometry(path, blocks, circle=scan_pattern == CIRCLE_PATTERN),
        scan_pattern=scan_pattern,
        laterality=_text(bytes(head["scan_position"])),  # type: ignore[arg-type]  # OD/OS, checked
        slo=slo,
        slo_scale_xy_mm=slo_scale,
        device_layers={device_line_name(i): np.ascontiguousarray(lines[:, i]) for i in range(lines.shape[1])},
        metadata=metadata,
        source=str(path),
    )

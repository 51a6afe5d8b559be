"""Write the benchmark volume: a Spectralis-like 496x768 raster ``.vol`` built from real Duke DME B-scans.

    python benchmarks/make_bench_volume.py OUT.vol [--bscans 61] [--subject 06] [--seed 0]

Source: ``duke_dme_volumes/Subject_XX.vol`` (``$RETINASEG_DATA`` or ``../shared/data``; its
SOURCE.md): 11 real Duke B-scans of one subject, their positions on the original 61-B-scan
raster, grader 1's layer boundaries as segmentation lines.

- Pixels: each raster B-scan takes the source B-scan nearest to its position (the source
  spans the middle 4.8 mm, so the outer B-scans repeat the first and last source B-scan). Its
  8-bit display (``round(255 r ** 0.25)``, the Duke image) is resampled linearly to 768
  A-scans, shifted by a random -2..2 source columns per B-scan (``--seed``) so that repeated
  B-scans differ as neighbouring B-scans of a real raster do, and turned back into linear
  reflectance with :func:`retinaseg.io.display.reflectance_from_display`, as the tool reads
  display images. Invalid pixels (the white wedges, and their neighbours in the resampling)
  are FLT_MAX. The source crop (500-548 A-scans, 5.8-6.3 mm) is stretched to 768 A-scans at
  0.0115 mm (8.83 mm): lateral distances are ~1.4x the eye's, axial ones (thickness) are not.
- Lines: the source's stored lines (Duke boundaries, SOURCE.md), resampled the same way, so
  ``retinaseg analyze`` reports agreement with them; lines without a Duke boundary are invalid.
- Geometry: 768 A-scans from x = 0 to 8.832 mm (the whole 30° localizer), B-scans over
  7.2 mm centred on the localizer (pitch 7.2 / (N - 1) mm: 0.12 mm for 61, 0.0375 mm for 193),
  the first one inferior; axial 0.00387 mm; scan pattern 3; the source's laterality
  (Subject 06: OD); ExamTime and dates 0; quality invalid.
- Localizer: a **placeholder**, not an SLO image: the mean display value of each A-scan
  inside the scanned rectangle (nearest B-scan per row), 0 elsewhere; 768x768 at 0.0115 mm.

Refuses to overwrite OUT. The same arguments give a byte-identical file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from retinaseg.conventions import DEVICE_LINE_NAMES, DUKE_TO_DEVICE_LINES
from retinaseg.io.display import reflectance_from_display
from retinaseg.io.oct_files import read_oct
from retinaseg.io.paths import find_dataset

WIDTH, SCALE_X_MM, SCALE_Z_MM = 768, 0.0115, 0.00387
RASTER_MM = 7.2  # first to last B-scan; 60 pitches of 0.12 mm
SLO_PX, N_LINES, MAX_JITTER = 768, 17, 2.0
FLT_MAX = np.finfo(np.float32).max
BSCAN_HDR = 256 + N_LINES * 4 * WIDTH

# Heidelberg HSF-OCT-103 headers (offsets as in retinaseg.io.heidelberg and the format description)
FILE_HEADER = np.dtype(
    {
        "names": ["version", "size_x", "num_bscans", "size_z", "scale_x", "distance", "scale_z", "size_x_slo", "size_y_slo"]
        + ["scale_x_slo", "scale_y_slo", "field_size_slo", "scan_position", "scan_pattern", "bscan_hdr_size", "id", "pid"]
        + ["patient_id"],
        "formats": ["S12", "<i4", "<i4", "<i4", "<f8", "<f8", "<f8", "<i4", "<i4", "<f8", "<f8", "<i4", "S4", "<i4", "<i4"]
        + ["S16", "<i4", "S21"],
        "offsets": [0, 12, 16, 20, 24, 32, 40, 48, 52, 56, 64, 72, 84, 96, 100, 104, 136, 140],
        "itemsize": 2048,
    }
)
BSCAN_HEADER = np.dtype(
    {
        "names": ["version", "bscan_hdr_size", "start_x", "start_y", "end_x", "end_y", "num_seg", "off_seg", "quality"],
        "formats": ["S12", "<i4", "<f8", "<f8", "<f8", "<f8", "<i4", "<i4", "<f4"],
        "offsets": [0, 12, 16, 24, 32, 40, 48, 52, 56],
        "itemsize": 256,
    }
)


def _resample(width: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source columns left/right of each of the WIDTH output columns and the right one's weight (pixel centres aligned)."""
    x = np.clip((np.arange(WIDTH) + 0.5) * width / WIDTH - 0.5 + shift, 0, width - 1)
    left = np.minimum(np.floor(x).astype(int), width - 2)
    return left, left + 1, x - left


def build(subject: str, n_bscans: int, seed: int) -> dict:
    """Everything the file holds: display B-scans, invalid masks, lines, positions, localizer, header values."""
    root = find_dataset("duke_dme_volumes")
    if root is None:
        raise SystemExit("duke_dme_volumes not found in $RETINASEG_DATA or ../shared/data")
    source = read_oct(root / f"Subject_{subject}.vol")
    display, invalid = source.display_bscans(), np.isnan(source.reflectance)
    src_y = np.array([g.start_xy_mm[1] for g in source.bscan_geometry])
    centre = SLO_PX / 2 * SCALE_X_MM
    pitch = RASTER_MM / (n_bscans - 1) if n_bscans > 1 else 0.0
    y_mm = centre + ((n_bscans - 1) / 2 - np.arange(n_bscans)) * pitch  # first B-scan inferior (largest y)
    nearest = np.abs(y_mm[:, None] - src_y[None, :]).argmin(axis=1)
    shifts = np.random.default_rng(seed).uniform(-MAX_JITTER, MAX_JITTER, n_bscans)
    out_display = np.empty((n_bscans, source.shape[1], WIDTH), np.uint8)
    out_invalid = np.empty(out_display.shape, bool)
    lines = np.full((n_bscans, N_LINES, WIDTH), np.nan, np.float32)
    for k, (i, shift) in enumerate(zip(nearest, shifts)):
        left, right, t = _resample(source.shape[2], float(shift))
        image = display[i].astype(np.float32)
        out_display[k] = np.round(image[:, left] * (1 - t) + image[:, right] * t)
        out_invalid[k] = invalid[i][:, left] | invalid[i][:, right]
        for name in DUKE_TO_DEVICE_LINES.values():
            row = source.device_layers[name][i]  # NaN where not annotated: stays NaN
            lines[k, DEVICE_LINE_NAMES.index(name)] = row[left] * (1 - t) + row[right] * t
    # placeholder localizer: mean display value per A-scan, nearest B-scan per SLO row
    valid = np.where(out_invalid, np.nan, out_display.astype(np.float32))
    projection = np.nan_to_num(np.nanmean(valid, axis=1), nan=0.0)
    projection = 255 * (projection - projection.min()) / max(float(np.ptp(projection)), 1e-6)
    slo = np.zeros((SLO_PX, SLO_PX), np.uint8)
    rows = np.arange(int(np.ceil(y_mm.min() / SCALE_X_MM)), int(np.floor(y_mm.max() / SCALE_X_MM)) + 1)
    slo[rows] = np.round(projection[np.abs(rows[:, None] * SCALE_X_MM - y_mm[None, :]).argmin(axis=1)])
    return {
        "display": out_display,
        "invalid": out_invalid,
        "lines": lines,
        "y_mm": y_mm,
        "pitch": pitch,
        "slo": slo,
        "nearest": nearest,
        "laterality": source.laterality,
        "source": root / f"Subject_{subject}.vol",
    }


def write_vol(path: Path, parts: dict, subject: str) -> None:
    """Write ``parts`` as HSF-OCT-103; refuses an existing ``path``, removes a partial file on failure."""
    display, invalid, lines = parts["display"], parts["invalid"], parts["lines"]
    n, height, width = display.shape
    head = np.zeros(1, FILE_HEADER)
    head[0] = (
        b"HSF-OCT-103",
        width,
        n,
        height,
        SCALE_X_MM,
        parts["pitch"],
        SCALE_Z_MM,
        SLO_PX,
        SLO_PX,
        SCALE_X_MM,
        SCALE_X_MM,
        30,
        parts["laterality"].encode(),
        3,
        BSCAN_HDR,
        f"bench{n}".encode(),
        int(subject),
        f"Duke_DME_{subject}".encode(),
    )
    try:
        with path.open("xb") as stream:
            stream.write(head.tobytes())
            stream.write(np.ascontiguousarray(parts["slo"]).tobytes())
            for k in range(n):
                bscan = np.zeros(1, BSCAN_HEADER)
                y = parts["y_mm"][k]
                bscan[0] = (b"HSF-BS-103", BSCAN_HDR, 0.0, y, width * SCALE_X_MM, y, N_LINES, 256, FLT_MAX)
                stream.write(bscan.tobytes())
                stream.write(np.where(np.isnan(lines[k]), FLT_MAX, lines[k]).astype("<f4").tobytes())
                pixels = np.where(invalid[k], FLT_MAX, reflectance_from_display(display[k]))
                stream.write(pixels.astype("<f4").tobytes())
    except FileExistsError:
        raise SystemExit(f"{path} exists: not overwritten") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .vol file to write (must not exist)")
    parser.add_argument("--bscans", type=int, default=61, help="B-scans, 1..193 (default 61)")
    parser.add_argument("--subject", default="06", help="Duke DME subject 01..10 (default 06, a right eye)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-B-scan lateral jitter (default 0)")
    args = parser.parse_args()
    if not 1 <= args.bscans <= 193:
        parser.error(f"--bscans must be 1..193, got {args.bscans}")
    subject = f"{int(args.subject):02d}"
    if args.out.exists():
        raise SystemExit(f"{args.out} exists: not overwritten")
    start = time.perf_counter()
    parts = build(subject, args.bscans, args.seed)
    write_vol(args.out, parts, subject)
    seconds = time.perf_counter() - start

    volume = read_oct(args.out)  # verify: the tool reads it back
    spacing = volume.bscan_spacing_mm()
    lines = {name: float(np.isfinite(v).mean()) for name, v in volume.device_layers.items() if np.isfinite(v).any()}
    counts = np.bincount(parts["nearest"], minlength=11)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB) in {seconds:.1f} s from {parts['source']}")
    print(f"read back: shape {volume.shape}, scale_x {volume.scale_x_mm} mm, axial {volume.scale_z_mm} mm, ", end="")
    print(
        f"B-scan spacing {spacing.mean() if spacing.size else 0:.4f} mm, {volume.scan_pattern_name}, {volume.laterality}, ",
        end="",
    )
    print(f"SLO {None if volume.slo is None else volume.slo.shape}")
    print(f"x {0:.3f}..{WIDTH * SCALE_X_MM:.3f} mm, y {parts['y_mm'].max():.3f}..{parts['y_mm'].min():.3f} mm (first inferior)")
    print("stored lines (finite fraction): " + ", ".join(f"{name} {f:.3f}" for name, f in lines.items()))
    print(f"raster B-scans per source B-scan (ordinal 0..10): {counts.tolist()}; seed {args.seed}")


if __name__ == "__main__":
    main()

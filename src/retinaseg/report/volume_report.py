"""The report of ``retinaseg analyze``: figures and tables of one analysed scan.

:func:`write_volume_report` draws the figures as PNGs into ``figures/`` and
assembles them with the tables into one self-contained ``report.html``:

- B-scans: one viewer with a slider through every B-scan (up to
  :data:`MAX_VIEWER_BSCANS`), its class colours, boundaries and reference
  lines drawn straight into the pictures (:mod:`retinaseg.report.bscan_render`),
  and the fundus beside it showing where the B-scan lies
  (:mod:`retinaseg.report.bscan_viewer`). The B-scan pictures are in the page
  only, not in ``figures/`` (the boundary rows are in ``boundaries.npz``, the
  scan with our segmentation in the ``.eye`` file);
- thickness maps (``figures/thickness_NN_<layer>.png``), one figure redrawn
  per map (:class:`~retinaseg.report.map_figures.ThicknessMapFigure`), and in
  the page as JPEG (the SLO's texture makes PNGs 2-3 times larger);
- 3D surfaces (``figures/surfaces_3d.png`` and an interactive plotly view),
  the ETDRS tables, the circle-scan profile (``figures/circle_profile.png``) and
  the agreement with a reference (``figures/thickness_difference.png``).

Size of the page: plotly.js ~2 MB (compressed), the figures ~0.8 MB, each
B-scan 30-60 kB (768 A-scans; more for noisier scans): ~3.5 MB for 11
B-scans, ~6 MB for 61.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from PIL import Image

from retinaseg.analysis.enface import enface_maps
from retinaseg.analysis.etdrs import ETDRS_SECTOR_DESCRIPTIONS, ETDRS_SECTORS
from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.conventions import SPECTRALIS_DISPLAY_GAMMA
from retinaseg.report.bscan_render import bscan_pictures, display_rows, stretch_and_note
from retinaseg.report.bscan_viewer import LOCATOR_WIDTH_PX, Locator, bscan_viewer_html
from retinaseg.report.circle_figures import plot_circle_profile
from retinaseg.report.encoding import jpeg_bytes, png_bytes, write_bytes_atomic
from retinaseg.report.html import EmbeddedImage, ReportSection, Table, render_report
from retinaseg.report.map_figures import ThicknessMapFigure
from retinaseg.report.palette import boundary_palette, palette_for, to_rgb8
from retinaseg.report.surface_figures import plot_surfaces_png, surface_figure_html

if TYPE_CHECKING:
    from retinaseg.analyze import (
        AnalysisResult,
        CircleMeasures,
        LayerSegmentation,
        RasterMeasures,
        ReferenceAgreement,
    )
    from retinaseg.volume import OctVolume

#: At most this many B-scans in the viewer, spread evenly over the volume (all of them in usual scans).
MAX_VIEWER_BSCANS = 256

#: JPEG quality of the figures embedded as JPEG (maps over the SLO; colour not subsampled): the
#: maps of a 61-B-scan volume take 23 % less room than at 85, with no difference visible at 2x zoom.
FIGURE_JPEG_QUALITY = 75

#: Points drawn of a circular B-scan's line on the fundus.
_CIRCLE_POINTS = 64

#: At most this many grid points along each axis of the 3D surfaces.
MAX_SURFACE_POINTS = 120

#: Rows kept above the highest ILM and below the deepest BM in the overlays.
_OVERLAY_MARGIN_ABOVE_PX, _OVERLAY_MARGIN_BELOW_PX = 40, 80


def write_volume_report(result: AnalysisResult, folder: str | Path) -> Path:
    """Write ``figures/*.png`` and ``report.html`` for ``result`` into ``folder``."""
    folder = Path(folder)
    figures = folder / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    volume, segmentation, raster, reference = result.volume, result.segmentation, result.raster, result.reference
    sections = [_bscan_section(volume, segmentation, reference, raster)]
    maps = None
    if raster is not None:
        maps = ThicknessMapFigure(
            raster.grid.extent_mm,
            slo=volume.slo,
            slo_scale_xy_mm=volume.slo_scale_xy_mm,
            etdrs_centre_xy_mm=raster.fovea_xy_mm,
            laterality=volume.laterality,
        )
        sections += [_maps_section(volume, raster, maps, figures), _surface_section(volume, segmentation, raster, figures)]
        if raster.etdrs:
            sections.append(_etdrs_section(raster))
    if result.circle is not None:
        sections.append(_circle_section(volume, segmentation, result.circle, reference, figures))
    if reference is not None:
        sections.append(_agreement_section(reference, raster, maps, figures))

    n, height, width = volume.shape
    spacing = volume.bscan_spacing_mm()
    metadata = {
        "file": volume.source,
        "scan pattern": f"{volume.scan_pattern_name} ({volume.scan_pattern})",
        "eye": volume.laterality,
        "B-scans x rows x A-scans": f"{n} x {height} x {width}",
        "axial pixel size": f"{volume.axial_um:.2f} µm",
        "A-scan spacing": f"{volume.scale_x_mm * 1000:.2f} µm",
        "B-scan spacing": "–" if spacing.size == 0 else f"{spacing.min():.3f}–{spacing.max():.3f} mm (from the B-scan positions)",
        "model": result.model_name,
        "display transform before segmentation": f"255 · r^{SPECTRALIS_DISPLAY_GAMMA:g} of the linear reflectance r; invalid pixels white",
        "A-scans with a measured retina": f"{100 * result.valid_ascan_fraction:.1f} %",
    }
    for k, note in enumerate(result.notes, 1):
        metadata[f"note {k}"] = note
    if raster is not None and raster.fovea_xy_mm is not None:
        metadata["ETDRS centre (fovea)"] = (
            f"x {raster.fovea_xy_mm[0]:.3f} mm, y {raster.fovea_xy_mm[1]:.3f} mm ({raster.fovea_source})"
        )
    return render_report(
        folder / "report.html", title=f"retinaseg analysis: {Path(volume.source).name}", metadata=metadata, sections=sections
    )


def _viewer_indices(n: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(n, MAX_VIEWER_BSCANS)).round().astype(int).tolist()))


def _bscan_section(
    volume: OctVolume, segmentation: LayerSegmentation, reference: ReferenceAgreement | None, raster: RasterMeasures | None
) -> ReportSection:
    n, height, width = volume.shape
    indices = _viewer_indices(n)
    top, bottom = _retina_rows(segmentation.boundaries_px, height)
    reference_rows = None
    if reference is not None:
        names = [name for name in segmentation.boundary_names if name in reference.boundaries_px]
        if names:
            reference_rows = np.stack([reference.boundaries_px[name] for name in names], axis=1)
    palette = palette_for(segmentation.class_names)
    line_colours = boundary_palette(segmentation.boundary_names, segmentation.class_names, palette)
    frames = []
    counts = np.zeros(len(segmentation.class_names), dtype=np.int64)  # pixels of each class, for the legend
    for index in indices:  # one B-scan at a time: little memory, whatever the volume's size
        labels = segmentation.labels[index, top:bottom]
        counts += np.bincount(labels.ravel(), minlength=len(counts))[: len(counts)]
        frames.append(
            bscan_pictures(
                display_rows(volume.reflectance[index, top:bottom], SPECTRALIS_DISPLAY_GAMMA),
                labels,
                segmentation.boundaries_px[index] - top,
                line_colours,
                palette=palette,
                reference_px=None if reference_rows is None else reference_rows[index] - top,
            )
        )
    lateral_um = volume.scale_x_mm * 1000
    stretch, aspect_note = stretch_and_note(bottom - top, width, volume.axial_um, lateral_um)
    ratio = width / (bottom - top) if stretch is None else (width * lateral_um) / ((bottom - top) * volume.axial_um * stretch)
    classes = [(name, palette[k]) for k, name in enumerate(segmentation.class_names) if k > 0 and counts[k] > 0]
    positions = volume.ascan_positions_mm()[indices]
    locator = _locator(volume, positions, indices, raster)
    viewer = bscan_viewer_html(
        "bscan-viewer",
        frames,
        [f"B-scan {index + 1} of {n}" for index in indices],
        display_ratio=ratio,
        start=_start_frame(positions, raster),
        classes=classes,
        boundaries=list(zip(segmentation.boundary_names, line_colours)),
        reference_label="reference" if reference is None else f"{reference.name} segmentation",
        locator=locator,
    )
    shown = "every B-scan" if len(indices) == n else f"{len(indices)} of the {n} B-scans, evenly spread"
    text = (
        f"Segmented layers (colours) and the boundaries derived from them (lines) on {shown}, cropped in depth to "
        f"the rows that hold the retina (rows {top}–{bottom - 1}; {aspect_note}). Boundaries are ordered top to "
        "bottom without crossings; A-scans where the retina is not visible are left out (gaps). Move the slider, "
        "use the arrow keys or click the fundus to change B-scan; the tick boxes hide colours or lines."
    )
    if locator.background is not None:
        fundus = "SLO image" if volume.slo is not None else "total retinal thickness map"
        text += f" On the {fundus}: the line of every B-scan, the one shown in yellow"
        text += "; red cross: the ETDRS centre." if locator.marker_xy_mm is not None else "."
    if reference is not None:
        text += f" Dashed lines: {reference.name} segmentation."
    return ReportSection("B-scans", text=text, html_fragments=[viewer])


def _start_frame(positions: np.ndarray, raster: RasterMeasures | None) -> int:
    """The B-scan through the fovea (nearest to it) when it is known, else the middle one."""
    if raster is None or raster.fovea_xy_mm is None:
        return (len(positions) - 1) // 2
    distance = np.hypot(*(positions - np.asarray(raster.fovea_xy_mm)).transpose(2, 0, 1)).min(axis=1)
    return int(np.argmin(distance))


def _locator(volume: OctVolume, positions: np.ndarray, indices: list[int], raster: RasterMeasures | None) -> Locator:
    """The fundus beside the viewer: the SLO, else the total thickness map, with the B-scan lines."""
    lines = []
    for points, index in zip(positions, indices):
        if volume.bscan_geometry[index].is_circle:
            step = max(1, len(points) // _CIRCLE_POINTS)
            lines.append(np.concatenate([points[::step], points[:1]]))
        else:
            lines.append(points[[0, -1]])
    background = None
    if volume.slo is not None and volume.slo_scale_xy_mm is not None:
        sx, sy = volume.slo_scale_xy_mm
        slo = Image.fromarray(to_rgb8(volume.slo))
        # twice the locator's width is sharp on high-density screens
        factor = max(1, -(-slo.width // (2 * LOCATOR_WIDTH_PX)))
        picture = jpeg_bytes(np.asarray(slo.reduce(factor) if factor > 1 else slo), quality=FIGURE_JPEG_QUALITY)
        view = (0.0, 0.0, volume.slo.shape[1] * sx, volume.slo.shape[0] * sy)
        background = (picture, "image/jpeg", view)
    else:
        xs, ys = positions[..., 0], positions[..., 1]
        left, right, bottom, top = (
            raster.grid.extent_mm if raster is not None else (float(xs.min()), float(xs.max()), float(ys.max()), float(ys.min()))
        )
        margin = 0.05 * max(right - left, bottom - top, 1.0)
        view = (left - margin, top - margin, right - left + 2 * margin, bottom - top + 2 * margin)
        if raster is not None:
            background = (_map_picture(raster.maps_um[TOTAL_RETINA]), "image/png", (left, top, right - left, bottom - top))
    marker = None if raster is None else raster.fovea_xy_mm
    return Locator(view_mm=view, scan_lines_mm=lines, background=background, marker_xy_mm=marker)


def _map_picture(map_um: np.ndarray) -> bytes:
    """PNG of a thickness map in viridis (as in the thickness-map figures), NaN transparent."""
    values = np.asarray(map_um, dtype=np.float64)
    finite = np.isfinite(values)
    low, high = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    rgba = matplotlib.colormaps["viridis"](np.where(finite, scaled, 0.0), bytes=True)
    rgba[..., 3] = np.where(finite, 255, 0)
    return png_bytes(rgba)


def _retina_rows(boundaries_px: np.ndarray, height: int) -> tuple[int, int]:
    """Rows ``top:bottom`` of B-scans ``height`` rows high that hold the retina in every B-scan, with margins.

    ``boundaries_px`` are the ``(N, B, W)`` boundary rows, ILM first and BM
    last; all rows when neither is found anywhere.
    """
    ilm, bm = boundaries_px[:, 0], boundaries_px[:, -1]
    if not np.isfinite(ilm).any() or not np.isfinite(bm).any():
        return 0, height
    top = max(0, int(np.nanmin(ilm)) - _OVERLAY_MARGIN_ABOVE_PX)
    bottom = min(height, int(np.nanmax(bm)) + _OVERLAY_MARGIN_BELOW_PX)
    return top, bottom


def _map_figure(rgb: np.ndarray, path: Path) -> EmbeddedImage:
    """Write the picture of a map to ``path`` as PNG; the page gets it as JPEG, under the PNG's name."""
    write_bytes_atomic(path, png_bytes(rgb))
    return EmbeddedImage(jpeg_bytes(rgb, quality=FIGURE_JPEG_QUALITY), "image/jpeg", path.name)


def _maps_section(volume: OctVolume, raster: RasterMeasures, maps: ThicknessMapFigure, figures: Path) -> ReportSection:
    grid = raster.grid
    images = [
        _map_figure(maps.render(values, title=f"{name} thickness (µm)"), figures / f"thickness_{k:02d}_{_slug(name)}.png")
        for k, (name, values) in enumerate(raster.maps_um.items())
    ]
    text = (
        "Thickness maps over the fundus image, interpolated linearly along and between the B-scans at their "
        f"stored positions ({grid.spacing_mm * 1000:.0f} µm grid); blank outside the scanned area and where an "
        f"A-scan had no measurement. ETDRS circles 1, 3 and 6 mm. {_sparse_note(volume)}"
    )
    return ReportSection("Thickness maps", text=text, images=images)


def _surfaces_mm(volume: OctVolume, segmentation: LayerSegmentation, raster: RasterMeasures) -> dict[str, np.ndarray]:
    """Depth in mm of the top and bottom boundary on the en-face grid."""
    ends = segmentation.boundaries_px[:, [0, -1]].transpose(0, 2, 1)  # (N, W, 2)
    depth = enface_maps(ends * volume.scale_z_mm, volume.ascan_positions_mm(), raster.grid)
    return {segmentation.boundary_names[0]: depth[0], segmentation.boundary_names[-1]: depth[1]}


def _surface_section(volume: OctVolume, segmentation: LayerSegmentation, raster: RasterMeasures, figures: Path) -> ReportSection:
    grid = raster.grid
    # every few grid cells is plenty for a 3D view and keeps the page small
    step = max(1, -(-max(grid.shape) // MAX_SURFACE_POINTS))
    x_mm, y_mm = grid.x_mm[::step], grid.y_mm[::step]
    surfaces = {name: depth[::step, ::step] for name, depth in _surfaces_mm(volume, segmentation, raster).items()}
    colour = raster.maps_um[TOTAL_RETINA][::step, ::step]
    fragment = surface_figure_html(surfaces, x_mm, y_mm, colour_by_um=colour, title="layer surfaces")
    png = plot_surfaces_png(surfaces, x_mm, y_mm, figures / "surfaces_3d.png", colour_by_um=colour)
    text = (
        f"{' and '.join(surfaces)} as surfaces in the fundus frame (depth in mm below the top of the scan, "
        "exaggerated), the upper one coloured by total retinal thickness. Drag to rotate."
    )
    return ReportSection("3D surfaces", text=text, images=[png], html_fragments=[fragment])


def _etdrs_section(raster: RasterMeasures) -> ReportSection:
    by_key = {(row.layer, row.sector): row for row in raster.etdrs}
    mean_rows = [[layer, *[by_key[(layer, s)].mean_um for s in ETDRS_SECTORS]] for layer in raster.maps_um]
    total = [by_key[(TOTAL_RETINA, s)] for s in ETDRS_SECTORS]
    total_rows = [
        [ETDRS_SECTOR_DESCRIPTIONS[row.sector], row.sector, row.mean_um, row.volume_mm3, 100 * row.coverage] for row in total
    ]
    return ReportSection(
        "ETDRS grid",
        text=(
            "Mean thickness (µm) per ETDRS sector (C0 centre 1 mm; inner ring 1–3 mm, outer ring 3–6 mm; S superior, "
            "N nasal, I inferior, T temporal for this eye). Volume = mean thickness × sector area; coverage = share of "
            "the sector inside the scanned area. Also in etdrs.csv."
        ),
        tables=[
            Table(["layer", *ETDRS_SECTORS], mean_rows, caption="mean thickness (µm)"),
            Table(["sector", "", "mean (µm)", "volume (mm³)", "coverage (%)"], total_rows, caption=TOTAL_RETINA),
        ],
    )


def _circle_section(
    volume: OctVolume,
    segmentation: LayerSegmentation,
    circle: CircleMeasures,
    reference: ReferenceAgreement | None,
    figures: Path,
) -> ReportSection:
    profile, reference_profile = circle.profile, circle.reference
    # a reference profile exists only with a reference
    reference_name = "reference" if reference is None else reference.name
    layer = segmentation.layer_names[0]
    png = plot_circle_profile(
        profile.angle_deg,
        profile.thickness_um,
        figures / "circle_profile.png",
        reference_um=None if reference_profile is None else reference_profile.thickness_um,
        sectors=profile.sectors,
        title=f"{layer} thickness along the circle",
        reference_label=reference_name,
    )
    names = list(profile.sectors)
    rows = [["retinaseg", *[profile.sectors[s] for s in names]]]
    if reference_profile is not None:
        rows.append([reference_name, *[reference_profile.sectors[s] for s in names]])
    clock = [["retinaseg", *profile.clock_hours.tolist()]]
    if reference_profile is not None:
        clock.append([reference_name, *reference_profile.clock_hours.tolist()])
    radius = volume.bscan_geometry[0].circle_radius_mm
    return ReportSection(
        "Circle scan: RNFL profile",
        text=f"{layer} thickness (µm) along the circle (radius {radius:.2f} mm) in TSNIT order.",
        images=[png],
        tables=[
            Table(["", *names], rows, caption="sector means (µm)"),
            Table(
                ["", *[str(h) for h in range(1, 13)]],
                clock,
                caption="clock hours (µm; 12 superior, 3 on the right of the fundus image)",
            ),
        ],
    )


def _agreement_section(
    reference: ReferenceAgreement, raster: RasterMeasures | None, maps: ThicknessMapFigure | None, figures: Path
) -> ReportSection:
    name = reference.name
    boundary_rows = [[r.boundary, r.mad_um, r.bias_um, r.p95_abs_um, r.n_ascans] for r in reference.boundary_agreement]
    tables = [
        Table(
            ["boundary", "MAD (µm)", "bias (µm, + = ours deeper)", "95th pct |diff| (µm)", "A-scans"],
            boundary_rows,
            caption=f"boundaries: retinaseg vs {name}",
        )
    ]
    images: list[EmbeddedImage] = []
    if raster is not None and maps is not None and raster.sector_agreement:
        rows = [
            [r.layer, r.sector, r.ours_um, r.reference_um, r.difference_um]
            for r in raster.sector_agreement
            if r.layer == TOTAL_RETINA
        ]
        tables.append(
            Table(
                ["layer", "sector", "retinaseg (µm)", f"{name} (µm)", "difference (µm)"],
                rows,
                caption=f"ETDRS {TOTAL_RETINA} thickness",
            )
        )
        if TOTAL_RETINA in raster.reference_maps_um:
            difference = maps.render(
                raster.maps_um[TOTAL_RETINA] - raster.reference_maps_um[TOTAL_RETINA],
                title=f"{TOTAL_RETINA}: retinaseg − {name} (µm)",
                cmap="RdBu_r",
                colorbar_label="Difference (µm)",
                vmin=-30.0,
                vmax=30.0,
            )
            images.append(_map_figure(difference, figures / "thickness_difference.png"))
    source = (
        "the segmentation lines stored in the scan file (a device export's own segmentation, or whatever layers were saved into it)"
        if name == "stored"
        else f"the {name} segmentation"
    )
    text = f"Agreement of our boundaries with {source}, over the A-scans where both exist."
    return ReportSection(f"Agreement with the {name} segmentation", text=text, images=images, tables=tables)


def _sparse_note(volume: OctVolume) -> str:
    spacing = volume.bscan_spacing_mm()
    if spacing.size and spacing.max() > 0.15:
        return f"B-scans are up to {spacing.max():.2f} mm apart: between them the maps are interpolated, not measured."
    return ""


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")

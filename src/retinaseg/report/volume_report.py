"""The report of ``retinaseg analyze``: figures and tables of one analysed scan.

:func:`write_volume_report` draws every figure as a PNG into ``figures/`` and
assembles them with the tables into one self-contained ``report.html``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retinaseg.analysis.enface import enface_maps
from retinaseg.analysis.etdrs import ETDRS_SECTOR_DESCRIPTIONS, ETDRS_SECTORS
from retinaseg.analysis.thickness import TOTAL_RETINA
from retinaseg.conventions import SPECTRALIS_DISPLAY_GAMMA
from retinaseg.inference.volume import network_images
from retinaseg.report.bscan_figures import plot_bscan_overlay
from retinaseg.report.circle_figures import plot_circle_profile
from retinaseg.report.html import ReportSection, Table, render_report
from retinaseg.report.map_figures import plot_thickness_map
from retinaseg.report.palette import palette_for
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

#: At most this many B-scan overlays, spread evenly over the volume.
MAX_OVERLAYS = 12

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
    sections = [_bscan_section(volume, segmentation, reference, figures)]
    if raster is not None:
        sections += [_maps_section(volume, raster, figures), _surface_section(volume, segmentation, raster, figures)]
        if raster.etdrs:
            sections.append(_etdrs_section(raster))
    if result.circle is not None:
        sections.append(_circle_section(volume, segmentation, result.circle, reference, figures))
    if reference is not None:
        sections.append(_agreement_section(volume, reference, raster, figures))

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


def _overlay_indices(n: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(n, MAX_OVERLAYS)).round().astype(int).tolist()))


def _bscan_section(
    volume: OctVolume, segmentation: LayerSegmentation, reference: ReferenceAgreement | None, figures: Path
) -> ReportSection:
    images = network_images(volume)
    reference_rows = None
    if reference is not None:
        reference_rows = np.stack(
            [reference.boundaries_px[name] for name in segmentation.boundary_names if name in reference.boundaries_px], axis=1
        )
    top, bottom = _retina_rows(segmentation.boundaries_px, volume.shape[1])
    paths = []
    for index in _overlay_indices(volume.shape[0]):
        paths.append(
            plot_bscan_overlay(
                images[index, top:bottom],
                segmentation.labels[index, top:bottom],
                segmentation.boundaries_px[index] - top,
                segmentation.boundary_names,
                figures / f"bscan_{index:03d}.png",
                reference_px=None if reference_rows is None else reference_rows[index] - top,
                reference_label="reference" if reference is None else reference.name,
                title=f"B-scan {index + 1} of {volume.shape[0]}, rows {top}-{bottom - 1}",
                axial_um=volume.axial_um,
                lateral_um=volume.scale_x_mm * 1000,
                class_names=segmentation.class_names,
                palette=palette_for(segmentation.class_names),
            )
        )
    text = (
        "Segmented layers (colours) and the boundaries derived from them (lines), cropped in depth to the rows that "
        "hold the retina. Boundaries are ordered top to bottom without crossings; A-scans where the retina is not "
        "visible are left out (gaps)."
    )
    if reference is not None:
        text += f" Dashed lines: {reference.name} segmentation."
    return ReportSection("B-scans", text=text, images=paths)


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


def _maps_section(volume: OctVolume, raster: RasterMeasures, figures: Path) -> ReportSection:
    grid = raster.grid
    paths = []
    for k, (name, values) in enumerate(raster.maps_um.items()):
        paths.append(
            plot_thickness_map(
                values,
                grid.extent_mm,
                figures / f"thickness_{k:02d}_{_slug(name)}.png",
                slo=volume.slo,
                slo_scale_xy_mm=volume.slo_scale_xy_mm,
                etdrs_centre_xy_mm=raster.fovea_xy_mm,
                laterality=volume.laterality,
                title=f"{name} thickness (µm)",
            )
        )
    text = (
        "Thickness maps over the fundus image, interpolated linearly along and between the B-scans at their "
        f"stored positions ({grid.spacing_mm * 1000:.0f} µm grid); blank outside the scanned area and where an "
        f"A-scan had no measurement. ETDRS circles 1, 3 and 6 mm. {_sparse_note(volume)}"
    )
    return ReportSection("Thickness maps", text=text, images=paths)


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
    volume: OctVolume, reference: ReferenceAgreement, raster: RasterMeasures | None, figures: Path
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
    images = []
    if raster is not None and raster.sector_agreement:
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
            images.append(
                plot_thickness_map(
                    raster.maps_um[TOTAL_RETINA] - raster.reference_maps_um[TOTAL_RETINA],
                    raster.grid.extent_mm,
                    figures / "thickness_difference.png",
                    slo=volume.slo,
                    slo_scale_xy_mm=volume.slo_scale_xy_mm,
                    etdrs_centre_xy_mm=raster.fovea_xy_mm,
                    laterality=volume.laterality,
                    title=f"{TOTAL_RETINA}: retinaseg − {name} (µm)",
                    cmap="RdBu_r",
                    colorbar_label="Difference (µm)",
                    vmin=-30.0,
                    vmax=30.0,
                )
            )
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

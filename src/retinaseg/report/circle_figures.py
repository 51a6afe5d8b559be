"""Circle-scan figures: thickness along a peripapillary circle in TSNIT order.

Angles and sectors are those of :mod:`retinaseg.analysis.circle`. PNGs are
written with the helpers of :mod:`retinaseg.report.plots`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from retinaseg.analysis.circle import CIRCLE_SECTORS, finest_sectors, sector_segments
from retinaseg.errors import InputError
from retinaseg.report.plots import REPORT_DPI, new_figure, save_figure


def plot_circle_profile(
    angle_deg: np.ndarray,
    thickness_um: np.ndarray,
    path: str | os.PathLike[str],
    *,
    reference_um: np.ndarray | None = None,
    sectors: Mapping[str, float] | None = None,
    title: str = "",
    label: str = "retinaseg",
    reference_label: str = "device",
) -> Path:
    """Thickness along a circle scan in TSNIT order.

    Parameters
    ----------
    angle_deg
        ``(n,)`` position of each A-scan on the circle, degrees on the
        TSNIT axis: 0 = temporal, 90 = superior, 180 = nasal,
        270 = inferior (any value; taken modulo 360 and sorted).
    thickness_um
        ``(n,)`` thickness in µm; NaN = unknown (a gap in the curve).
    path
        Output PNG file.
    reference_um
        ``(n,)`` reference thickness (e.g. the device's) at the same angles.
    sectors
        ``{name: mean thickness in µm}`` with names of
        :data:`retinaseg.analysis.circle.CIRCLE_SECTORS`. The finest sectors
        given (those containing no other given sector, e.g. the six
        Spectralis sectors) are drawn as a level over their angular range
        with the value written above it; the others (``"global"``, the S and
        I quadrants when TS/NS/NI/TI are given, unknown names) are listed
        under the title. NaN shows as "–".
    title
        Figure title.
    label, reference_label
        Legend entries of the two curves.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    angle = np.asarray(angle_deg, dtype=np.float64)
    thickness = np.asarray(thickness_um, dtype=np.float64)
    if angle.ndim != 1 or thickness.shape != angle.shape:
        raise InputError("thickness_um", f"shape {thickness.shape} must be 1-D and match angle_deg {angle.shape}")
    reference = None if reference_um is None else np.asarray(reference_um, dtype=np.float64)
    if reference is not None and reference.shape != angle.shape:
        raise InputError("reference_um", f"shape {reference.shape} must match angle_deg {angle.shape}")
    sectors = dict(sectors or {})
    wrapped = np.mod(angle, 360.0)
    order = np.argsort(wrapped, kind="stable")

    fig = new_figure(8.5, 4.2, dpi=REPORT_DPI)
    ax = fig.add_subplot()
    ax.plot(wrapped[order], thickness[order], color="#0072B2", linewidth=1.6, label=label)
    if reference is not None:
        ax.plot(wrapped[order], reference[order], color="0.25", linewidth=1.2, linestyle="--", label=reference_label)
    drawn = finest_sectors(list(sectors))
    for name in drawn:
        value = float(sectors[name])
        pieces = sector_segments(*CIRCLE_SECTORS[name])
        if np.isfinite(value):
            for lo, hi in pieces:
                ax.plot([lo, hi], [value, value], color="#D55E00", linewidth=2.0, alpha=0.8)
        # the label goes on the widest piece, above the level (at the bottom when unknown)
        lo, hi = max(pieces, key=lambda piece: piece[1] - piece[0])
        ax.annotate(
            f"{name} {value:.0f}" if np.isfinite(value) else f"{name} –",
            xy=((lo + hi) / 2, value if np.isfinite(value) else 0.0),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            color="#A04000",
        )
    listed = [
        f"{name} {value:.0f} µm" if np.isfinite(value) else f"{name} –" for name, value in sectors.items() if name not in drawn
    ]
    levels = np.concatenate(
        [thickness, [] if reference is None else reference, np.asarray(list(sectors.values()), dtype=np.float64)]
    )
    top = float(np.nanmax(levels)) if np.isfinite(levels).any() else 0.0
    ax.set_ylim(0.0, 1.15 * top if top > 0 else 1.0)  # room for the sector labels above their levels
    for boundary in (45.0, 135.0, 225.0, 315.0):
        ax.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
    ax.set_xlim(0.0, 360.0)
    ax.set_xticks([0, 90, 180, 270, 360], labels=["T", "S", "N", "I", "T"])
    ax.set_xlabel("Position on the circle (TSNIT)")
    ax.set_ylabel("Thickness (µm)")
    ax.grid(True, axis="y", linewidth=0.4, alpha=0.5)
    ax.legend(loc="lower left", fontsize=8)
    heading = "\n".join(part for part in (title, "   ".join(listed)) if part)
    if heading:
        ax.set_title(heading, fontsize=10)
    return save_figure(fig, path)

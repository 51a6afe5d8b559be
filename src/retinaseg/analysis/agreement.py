"""Agreement of two segmentations of the same volume.

Compares our layer boundaries with a reference (e.g. the device's own
segmentation or a grader's) A-scan by A-scan, and our ETDRS sector
thickness with the reference's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from retinaseg.analysis.boundaries import boundary_mad
from retinaseg.analysis.etdrs import EtdrsRow
from retinaseg.analysis.table_rows import TableRow
from retinaseg.errors import InputError
from retinaseg.numeric import finite_mean


@dataclass(frozen=True)
class BoundaryAgreementRow(TableRow):
    """Agreement of one boundary: a row of :func:`boundary_agreement` (and ``boundary_agreement.csv``).

    Attributes
    ----------
    boundary
        Boundary name.
    mad_um
        Mean absolute difference in µm.
    bias_um
        Mean of ours - reference in µm (positive = ours deeper, since rows
        grow downwards).
    p95_abs_um
        95th percentile of the absolute difference in µm (linear
        interpolation between order statistics).
    n_ascans
        Number of A-scans where both are known; the statistics are NaN when
        it is 0.
    """

    boundary: str
    mad_um: float
    bias_um: float
    p95_abs_um: float
    n_ascans: int


@dataclass(frozen=True)
class SectorDifferenceRow(TableRow):
    """Our and the reference's mean thickness in one ETDRS sector: a row of :func:`sector_differences`.

    Attributes
    ----------
    layer, sector
        As in :class:`~retinaseg.analysis.etdrs.EtdrsRow`.
    ours_um, reference_um
        The two mean thicknesses in µm.
    difference_um
        ``ours_um - reference_um`` in µm; NaN if either is NaN.
    """

    layer: str
    sector: str
    ours_um: float
    reference_um: float
    difference_um: float


def boundary_agreement(
    ours_px: Mapping[str, np.ndarray],
    reference_px: Mapping[str, np.ndarray],
    axial_um: float,
) -> list[BoundaryAgreementRow]:
    """Per-boundary differences between two segmentations.

    Parameters
    ----------
    ours_px, reference_px
        ``{boundary name: row positions in pixels}``, arrays of one shape per
        name (e.g. ``(N, W)`` for ``N`` B-scans), NaN where unknown.
    axial_um
        Axial pixel size in micrometres.

    Returns
    -------
    list of BoundaryAgreementRow
        One row per name present in both, in ``ours_px`` order, over the
        A-scans where both are known.
    """
    if not (np.isfinite(axial_um) and axial_um > 0):
        raise InputError("axial_um", f"must be a positive number of micrometres, got {axial_um}")
    rows = []
    for name, ours in ours_px.items():
        if name not in reference_px:
            continue
        ours_row = np.asarray(ours, dtype=np.float64)
        reference_row = np.asarray(reference_px[name], dtype=np.float64)
        if ours_row.shape != reference_row.shape:
            raise InputError(
                f"reference_px[{name!r}]",
                f"shape {reference_row.shape} does not match ours {ours_row.shape}",
            )
        mad = boundary_mad(ours_row.reshape(1, -1), reference_row.reshape(1, -1), axial_um)
        difference_um = (ours_row - reference_row).ravel() * axial_um
        difference_um = difference_um[np.isfinite(difference_um)]
        known = difference_um.size > 0
        rows.append(
            BoundaryAgreementRow(
                boundary=name,
                mad_um=float(mad["mad_um"][0]),
                bias_um=finite_mean(difference_um),
                p95_abs_um=float(np.percentile(np.abs(difference_um), 95)) if known else math.nan,
                n_ascans=int(mad["n_columns"][0]),
            )
        )
    return rows


def sector_differences(ours: Sequence[EtdrsRow], reference: Sequence[EtdrsRow]) -> list[SectorDifferenceRow]:
    """Join two ETDRS tables on (layer, sector) and subtract the means.

    Parameters
    ----------
    ours, reference
        Rows of :func:`retinaseg.analysis.etdrs.etdrs_table`.

    Returns
    -------
    list of SectorDifferenceRow
        One row per (layer, sector) present in both, in ``ours`` order, of
        the two ``mean_um`` values and their difference.
    """
    reference_um = {(row.layer, row.sector): row.mean_um for row in reference}
    return [
        SectorDifferenceRow(
            layer=row.layer,
            sector=row.sector,
            ours_um=row.mean_um,
            reference_um=reference_um[key],
            difference_um=row.mean_um - reference_um[key],
        )
        for row in ours
        if (key := (row.layer, row.sector)) in reference_um
    ]

"""The synthetic OCT phantom: anatomy, labels, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from retinaseg.conventions import DUKE_AXIAL_UM, DUKE_CLASS_NAMES, DUKE_FLUID_CLASS
from retinaseg.data.phantom import (
    labels_from_boundaries,
    make_phantom_bscan,
    make_phantom_set,
    make_phantom_volume,
)
from retinaseg.errors import InputError

# Plausible healthy macular thickness ranges (um) of classes 1..7 away from the fovea.
THICKNESS_RANGE_UM = {
    1: (5, 60),  # RNFL, thinner temporally, thicker nasally
    2: (45, 115),  # GCL+IPL
    3: (20, 60),  # INL
    4: (12, 45),  # OPL
    5: (60, 130),  # ONL-ISM
    6: (10, 30),  # ISE
    7: (20, 50),  # OS-RPE
}


def _thickness_um(label: np.ndarray, cls: int) -> np.ndarray:
    """Per-column thickness of one class in micrometres."""
    return (label == cls).sum(axis=0) * DUKE_AXIAL_UM


def test_labels_from_boundaries_hand_example():
    boundaries = np.array([[2.0, 0.0, 2.5], [4.0, 3.0, 2.5]])
    label = labels_from_boundaries(boundaries, 6)
    assert label.dtype == np.uint8
    assert label[:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert label[:, 1].tolist() == [1, 1, 1, 2, 2, 2]
    # Row y is below boundary b when y >= b: a zero-thickness layer at 2.5.
    assert label[:, 2].tolist() == [0, 0, 0, 2, 2, 2]


def test_labels_from_boundaries_rejects_bad_input():
    with pytest.raises(InputError, match="boundary_rows"):
        labels_from_boundaries(np.zeros(5), 10)
    with pytest.raises(InputError, match="height"):
        labels_from_boundaries(np.zeros((8, 5)), 0)


def test_bscan_layers_are_ordered_and_complete():
    image, label = make_phantom_bscan(np.random.default_rng(0))
    assert image.shape == label.shape == (496, 512)
    assert image.dtype == label.dtype == np.uint8
    assert set(np.unique(label)) == set(range(9))
    assert np.all(np.diff(label.astype(int), axis=0) >= 0)  # monotone top to bottom


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fluid_only_when_asked_and_layers_stay_ordered(seed):
    _, dry = make_phantom_bscan(np.random.default_rng(seed))
    assert not (dry == DUKE_FLUID_CLASS).any()
    _, wet = make_phantom_bscan(np.random.default_rng(seed), with_fluid=True)
    fluid = wet == DUKE_FLUID_CLASS
    assert fluid.sum() > 50
    # Ignoring fluid, classes never decrease downwards in any column.
    layers = np.where(fluid, 0, wet).astype(int)
    running_max = np.maximum.accumulate(layers, axis=0)
    assert np.array_equal(running_max[~fluid], layers[~fluid])
    # Fluid sits inside INL, OPL or ONL: the first layer below it is one of them.
    first_below = np.minimum.accumulate(np.where(fluid, 99, wet)[::-1], axis=0)[::-1]
    assert set(np.unique(first_below[fluid])) <= {3, 4, 5}


def test_layer_thickness_in_micrometres():
    width, fovea_col = 512, 255.5
    _, label = make_phantom_bscan(np.random.default_rng(3), fovea_col=fovea_col)
    far = np.abs(np.arange(width) - fovea_col) * 11.5 > 1500  # > 1.5 mm from the fovea
    for cls, (low, high) in THICKNESS_RANGE_UM.items():
        median = np.median(_thickness_um(label, cls)[far])
        assert low <= median <= high, (DUKE_CLASS_NAMES[cls], median)
    centre = int(fovea_col)
    inner_um = sum(_thickness_um(label, cls)[centre] for cls in (1, 2, 3, 4))
    assert inner_um < 15  # the inner layers vanish in the foveal pit
    assert _thickness_um(label, 5)[centre] > 110  # ONL thickens at the fovea


def test_rnfl_is_thicker_on_the_nasal_side():
    differences = []
    for seed in range(4):
        _, label = make_phantom_bscan(np.random.default_rng(seed), fovea_col=255.5)
        rnfl = _thickness_um(label, 1)
        differences.append(abs(np.median(rnfl[:60]) - np.median(rnfl[-60:])))
    assert min(differences) > 10


def test_bscan_far_from_fovea_has_no_pit():
    _, label = make_phantom_bscan(np.random.default_rng(4), fovea_col=255.5, fovea_offset_um=2000)
    inner_um = sum(_thickness_um(label, cls)[255] for cls in (1, 2, 3, 4))
    assert inner_um > 100


def test_determinism():
    a = make_phantom_bscan(np.random.default_rng(11), with_fluid=True)
    b = make_phantom_bscan(np.random.default_rng(11), with_fluid=True)
    c = make_phantom_bscan(np.random.default_rng(12), with_fluid=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_appearance_matches_oct_reflectivity_order():
    image, label = make_phantom_bscan(np.random.default_rng(5))
    mean = {cls: image[label == cls].mean() for cls in range(9)}
    assert mean[0] < 40  # vitreous near black
    assert mean[7] > mean[1] > mean[2] > mean[3]  # RPE > RNFL > GCL+IPL > INL
    assert mean[4] > mean[3] and mean[4] > mean[5]  # OPL brighter than its neighbours
    assert mean[5] < 70 and mean[6] > 120  # ONL dark, ISE bright


def test_too_shallow_a_bscan_is_rejected():
    with pytest.raises(InputError, match="1 mm"):
        make_phantom_bscan(np.random.default_rng(0), height=128)


def test_volume_fovea_is_a_2d_pit():
    volume = make_phantom_volume(np.random.default_rng(1), n_bscans=9, bscan_spacing_um=150.0)
    assert volume.images.shape == volume.labels.shape == (9, 496, 512)
    assert volume.boundary_rows.shape == (9, 8, 512)
    assert volume.bscan_spacing_um == 150.0 and volume.axial_um == DUKE_AXIAL_UM
    col = round(volume.fovea_col)
    inner_um = np.array([sum(_thickness_um(lab, cls)[col] for cls in (1, 2, 3, 4)) for lab in volume.labels])
    centre = round(volume.fovea_bscan)
    assert inner_um.argmin() == centre
    assert inner_um[0] > inner_um[centre] + 30 and inner_um[-1] > inner_um[centre] + 30
    # The stored boundaries reproduce the label maps.
    for boundaries, label in zip(volume.boundary_rows, volume.labels):
        assert np.array_equal(labels_from_boundaries(boundaries, 496), label)


def test_phantom_set():
    kwargs = {"bscans_per_subject": 2, "height": 256, "width": 128, "axial_um": 7.74, "lateral_um": 46.0, "seed": 3}
    data = make_phantom_set(n_subjects=4, **kwargs)
    assert data.subjects() == ["phantom_01", "phantom_02", "phantom_03", "phantom_04"]
    assert [s.id for s in data.samples[:2]] == ["phantom_01_00", "phantom_01_01"]
    assert data.class_names == DUKE_CLASS_NAMES and data.modality == "oct" and data.task == "multiclass"
    assert all(s.spacing_um == (7.74, 46.0) and s.image.shape == (256, 128) for s in data.samples)
    fluid_subjects = {s.subject for s in data.samples if (s.label == DUKE_FLUID_CLASS).any()}
    has_fluid = [subject in fluid_subjects for subject in data.subjects()]
    assert has_fluid == [False, True, False, True]  # fluid_fraction 0.5, spread evenly
    # A subject does not depend on how many others are generated.
    fewer = make_phantom_set(n_subjects=2, **kwargs)
    assert np.array_equal(fewer.samples[3].image, data.samples[3].image)

"""The shared conventions agree with each other."""

from __future__ import annotations

from retinaseg.conventions import (
    DEVICE_LINE_NAMES,
    DUKE_BOUNDARY_NAMES,
    DUKE_CLASS_NAMES,
    DUKE_FLUID_CLASS,
    DUKE_LAYER_CLASSES,
    DUKE_TO_DEVICE_LINES,
    SPECTRALIS_DISPLAY_GAMMA,
    device_line_name,
)


def test_duke_classes_and_boundaries() -> None:
    assert len(DUKE_CLASS_NAMES) == 10 and DUKE_CLASS_NAMES[DUKE_FLUID_CLASS] == "fluid"
    assert [DUKE_CLASS_NAMES[c] for c in DUKE_LAYER_CLASSES] == DUKE_CLASS_NAMES[1:9]
    assert len(DUKE_BOUNDARY_NAMES) == len(DUKE_LAYER_CLASSES)


def test_every_duke_boundary_has_a_device_line() -> None:
    assert list(DUKE_TO_DEVICE_LINES) == DUKE_BOUNDARY_NAMES
    assert set(DUKE_TO_DEVICE_LINES.values()) <= set(DEVICE_LINE_NAMES)


def test_device_line_names_by_index() -> None:
    assert device_line_name(0) == "ILM" and device_line_name(1) == "BM" and device_line_name(15) == "PR2"
    assert device_line_name(len(DEVICE_LINE_NAMES)) == f"LINE{len(DEVICE_LINE_NAMES)}"


def test_display_gamma_is_the_fourth_root() -> None:
    # The shipped model saw Duke exports under this display; changing it changes its input.
    assert SPECTRALIS_DISPLAY_GAMMA == 0.25

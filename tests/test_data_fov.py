"""Field-of-view estimation on synthetic discs and real CHASE_DB1 photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from retinaseg.data.fov import estimate_fov
from retinaseg.errors import InputError


def _disc_photo(radius: float, shape=(200, 240), centre=(100.0, 120.0), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    rgb = np.zeros((*shape, 3), dtype=np.uint8)
    rgb[inside] = (rng.normal([160, 70, 20], 15, (inside.sum(), 3))).clip(30, 255).astype(np.uint8)
    return rgb


def test_disc_area_matches_geometry():
    photo = _disc_photo(70)
    fov = estimate_fov(photo, erode_px=0)
    assert fov.dtype == np.bool_ and fov.shape == (200, 240)
    assert fov.sum() == pytest.approx(np.pi * 70**2, rel=0.01)
    eroded = estimate_fov(photo, erode_px=3)
    assert eroded.sum() == pytest.approx(np.pi * 67**2, rel=0.02)
    assert not (eroded & ~fov).any()


def test_holes_are_filled_and_specks_dropped():
    photo = _disc_photo(70)
    photo[95:105, 115:125] = 0  # a dark lesion inside the field
    photo[5:8, 5:8] = 200  # a bright speck outside it
    fov = estimate_fov(photo, erode_px=0)
    assert fov[95:105, 115:125].all()
    assert not fov[5:8, 5:8].any()


def test_grey_input_and_explicit_threshold():
    grey = _disc_photo(50)[..., 0]
    assert estimate_fov(grey, erode_px=0).sum() == pytest.approx(np.pi * 50**2, rel=0.02)
    # A threshold above every pixel finds nothing.
    with pytest.raises(InputError, match="no field of view"):
        estimate_fov(grey, threshold=255)


def test_bad_inputs():
    with pytest.raises(InputError, match="no field of view"):
        estimate_fov(np.zeros((20, 20, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="shape"):
        estimate_fov(np.zeros((20, 20, 2)))
    with pytest.raises(InputError, match="erode_px"):
        estimate_fov(_disc_photo(50), erode_px=-1)


@pytest.mark.parametrize("name", ["Image_01L", "Image_06L", "Image_08L", "Image_14R"])
def test_chase_fov_covers_the_vessels(chase_root: Path, name: str):
    photo = np.asarray(Image.open(chase_root / f"{name}.jpg").convert("RGB"))
    vessels = np.asarray(Image.open(chase_root / f"{name}_1stHO.png").convert("L")) > 0
    fov = estimate_fov(photo)
    assert 0.60 <= fov.mean() <= 0.90
    # The graders drew a few vessel ends on the dark rim, outside any FOV.
    assert vessels[fov].sum() / vessels.sum() > 0.99

"""Class maps rebuilt from their ordered layer surfaces: hand-made maps, the model setting, the config checks."""

from __future__ import annotations

import numpy as np
import pytest

from retinaseg.analysis.boundaries import boundaries_from_labels, layer_surfaces
from retinaseg.analysis.layer_order import model_class_map, ordered_layer_map
from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError
from retinaseg.models import build_model
from retinaseg.models.trained import TrainedModel
from retinaseg.training.config import load_config, validate_against_data

# Columns of 16 rows: vitreous (0) rows 0-3, layer 1 rows 4-7, layer 2 rows 8-11, layer 3 (reaches the bottom) 12-15.
LAYERS, FLUID = [1, 2, 3], [4]
REQUIRED = ["name=run", "data.source=retinaseg", "data.root=somewhere"]


def _clean(width: int = 12, band_rows: int = 4) -> np.ndarray:
    return np.repeat(np.repeat([0, 1, 2, 3], band_rows)[:, None], width, axis=1).astype(np.uint8)


def test_a_clean_map_is_unchanged() -> None:
    clean = _clean()
    np.testing.assert_array_equal(ordered_layer_map(clean, LAYERS, FLUID, min_retina_px=1), clean)


def test_islands_and_out_of_order_pixels_are_replaced_by_the_ordered_layers() -> None:
    noisy = _clean()
    noisy[1, 2:4] = 3  # a piece of the deepest layer in the vitreous
    noisy[10, 6] = 1  # a pixel of layer 1 inside layer 2
    ordered = ordered_layer_map(noisy, LAYERS, FLUID, min_retina_px=1)
    np.testing.assert_array_equal(ordered, _clean())
    # read literally, the rebuilt map gives the ordered surfaces (the island no longer pulls every boundary up)
    np.testing.assert_array_equal(boundaries_from_labels(ordered, LAYERS, FLUID), np.repeat([[4], [8], [12]], 12, axis=1))
    assert boundaries_from_labels(noisy, LAYERS, FLUID)[0, 2] == 1


def test_fluid_inside_the_retina_stays_and_fluid_outside_goes() -> None:
    classes = _clean()
    classes[5:10, 3:6] = 4  # a pocket across layers 1 and 2
    classes[1, 9] = 4  # "fluid" in the vitreous
    ordered = ordered_layer_map(classes, LAYERS, FLUID, min_retina_px=1)
    np.testing.assert_array_equal(ordered[5:10, 3:6], 4)
    assert ordered[1, 9] == 0
    np.testing.assert_array_equal(np.delete(ordered, np.s_[3:6], axis=1), np.delete(_clean(), np.s_[3:6], axis=1))


def test_columns_without_retina_keep_their_classes_and_stacks_equal_single_maps() -> None:
    classes = _clean()
    classes[:, 7] = 0  # no retina in this column: its surfaces are unknown
    classes[2, 7] = 2
    stack = np.stack([classes, _clean()])
    ordered = ordered_layer_map(stack, LAYERS, FLUID, min_retina_px=2)
    np.testing.assert_array_equal(ordered[0, :, 7], classes[:, 7])
    assert np.isnan(layer_surfaces(classes, LAYERS, FLUID, min_retina_px=2)[:, 7]).all()
    np.testing.assert_array_equal(ordered[0], ordered_layer_map(classes, LAYERS, FLUID, min_retina_px=2))
    assert ordered.dtype == stack.dtype


def _model(ordered: bool) -> TrainedModel:
    config = load_config(
        None,
        [
            *REQUIRED,
            "model.options={depth: 2, base_channels: 2}",
            f"evaluation.boundary_classes={LAYERS}",
            f"evaluation.fluid_classes={FLUID}",
            f"evaluation.ordered_layers={str(ordered).lower()}",
        ],
    )
    network = build_model("unet", 1, 5, config["model"]["options"])
    return TrainedModel(network, config, ["vitreous", "a", "b", "c", "fluid"], "multiclass", Preprocessing())


def test_the_model_setting_decides_which_map_predict_and_evaluate_get() -> None:
    noisy = _clean(band_rows=8)  # the retina 16 rows thick: more than the 10 px a column needs to count
    noisy[1, 2] = 3
    probabilities = np.zeros((5, *noisy.shape), dtype=np.float32)
    np.put_along_axis(probabilities, noisy[None].astype(np.int64), 1.0, axis=0)
    np.testing.assert_array_equal(model_class_map(_model(False), probabilities), noisy)
    np.testing.assert_array_equal(model_class_map(_model(True), probabilities), _clean(band_rows=8))


@pytest.mark.parametrize(
    ("overrides", "classes", "problem"),
    [
        ([], ["a", "b", "c"], "needs two or more layer classes"),
        (["evaluation.boundary_classes=[1]"], ["background", "retina"], "needs two or more layer classes"),
        (["evaluation.boundary_classes=[0, 1]"], ["a", "b"], "needs a class that is neither a layer nor fluid"),
    ],
    ids=["no layers", "one layer", "no class above"],
)
def test_ordered_layers_need_two_layers_and_a_class_above_the_retina(
    overrides: list[str], classes: list[str], problem: str
) -> None:
    config = load_config(None, [*REQUIRED, *overrides, "evaluation.ordered_layers=true"])
    with pytest.raises(InputError, match=f"evaluation.ordered_layers: {problem}"):
        validate_against_data(config, classes, [(64, 64)])

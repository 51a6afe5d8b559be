"""VGG16 networks (fcn8s, vgg16_fcn): torchvision's parameter layout, ImageNet weight loading, sizes, parameter counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from retinaseg.data.preprocess import Preprocessing
from retinaseg.errors import InputError
from retinaseg.models import build_model, count_parameters
from retinaseg.models.trained import TrainedModel
from retinaseg.models.vgg_fcn import VGG16Features
from retinaseg.training.config import load_config

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_vgg16_keys.txt"


def torchvision_shapes() -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of torchvision's ``vgg16().features`` state dict, in its order, from the fixture."""
    lines = (line.split() for line in FIXTURE.read_text().splitlines() if line.strip())
    return {f"{name}": tuple(int(n) for n in shape.split("x")) for name, shape in lines}


def vgg16_state_dict() -> dict[str, torch.Tensor]:
    """Synthetic weights in torchvision's VGG16 layout: a random first convolution, a constant per other tensor.

    The constants are expanded views of one number, so the saved file stays a few kilobytes.
    """
    state = {key: torch.full((1,), float(index)).expand(shape) for index, (key, shape) in enumerate(torchvision_shapes().items())}
    state["features.0.weight"] = torch.randn(64, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    state["classifier.6.weight"] = torch.zeros(1).expand(1000, 4096)  # torchvision's head: ignored
    return state


def save(state: dict[str, torch.Tensor], path: Path) -> str:
    torch.save(state, path)
    return str(path)


def test_backbone_has_torchvision_vgg16_keys_and_shapes() -> None:
    with torch.device("meta"):
        backbone = VGG16Features(3)
    assert {key: tuple(value.shape) for key, value in backbone.state_dict().items()} == torchvision_shapes()
    assert list(backbone.state_dict()) == list(torchvision_shapes())  # same order too


@pytest.mark.parametrize(("name", "options", "expected"), [("fcn8s", {}, 134_376_863), ("vgg16_fcn", {}, 17_518_069)])
def test_parameter_counts_for_3_channels_and_21_classes(name: str, options: dict, expected: int) -> None:
    # Long et al. report ~134 M for FCN-8s; the VGG16 features alone are 14.71 M.
    with torch.device("meta"):
        model = build_model(name, 3, 21, options)
    assert count_parameters(model) == expected
    assert count_parameters(model.backbone) == 14_714_688


def test_fcn8s_fc_channels_shrink_only_fc6_and_fc7() -> None:
    with torch.device("meta"):
        full, small = build_model("fcn8s", 3, 21), build_model("fcn8s", 3, 21, {"fc_channels": 64})
    changed = {"fc.0.weight", "fc.0.bias", "fc.3.weight", "fc.3.bias", "score_fr.weight"}
    full_shapes = {key: value.shape for key, value in full.state_dict().items()}
    small_shapes = {key: value.shape for key, value in small.state_dict().items()}
    assert list(full_shapes) == list(small_shapes)
    assert {key for key in full_shapes if full_shapes[key] != small_shapes[key]} == changed
    assert small_shapes["fc.0.weight"] == (64, 512, 7, 7) and small_shapes["fc.3.weight"] == (64, 64, 1, 1)


@pytest.mark.parametrize("name", ["fcn8s", "vgg16_fcn"])
def test_output_keeps_the_input_size_for_multiples_of_32(name: str) -> None:
    model = build_model(name, 1, 3, {"fc_channels": 8, "dropout": 0.0} if name == "fcn8s" else {}).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 96, 32)).shape == (1, 3, 96, 32)


def test_rgb_weights_load_into_the_backbone_and_the_classifier_is_ignored(tmp_path: Path) -> None:
    state = vgg16_state_dict()
    path = save(state, tmp_path / "vgg16.pth")
    model = build_model("fcn8s", 3, 2, {"fc_channels": 8, "backbone_weights": path})
    loaded = model.backbone.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in torchvision_shapes())
    assert all(p.requires_grad for p in model.parameters())


def test_grey_input_gets_the_sum_of_the_rgb_filters(tmp_path: Path) -> None:
    state = vgg16_state_dict()
    model = build_model("vgg16_fcn", 1, 2, {"backbone_weights": save(state, tmp_path / "vgg16.pth")})
    conv1 = model.backbone.features[0]
    torch.testing.assert_close(conv1.weight, state["features.0.weight"].sum(dim=1, keepdim=True))
    # What the sum is for: a grey image gives what the RGB filters give on it copied into 3 channels.
    grey = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(
            conv1(grey), F.conv2d(grey.expand(-1, 3, -1, -1), state["features.0.weight"], conv1.bias, padding=1)
        )


def test_weights_are_checked_on_the_meta_device_too(tmp_path: Path) -> None:
    # check_model_options builds on the meta device: a good file must pass there, a bad one must fail.
    path = save(vgg16_state_dict(), tmp_path / "vgg16.pth")
    with torch.device("meta"):
        build_model("vgg16_fcn", 1, 2, {"backbone_weights": path})
        with pytest.raises(InputError, match="missing keys features.0.bias"):
            build_model("vgg16_fcn", 1, 2, {"backbone_weights": save({}, tmp_path / "empty.pth")})


def test_freeze_backbone_leaves_only_the_head_trainable(tmp_path: Path) -> None:
    path = save(vgg16_state_dict(), tmp_path / "vgg16.pth")
    model = build_model("fcn8s", 1, 2, {"fc_channels": 8, "backbone_weights": path, "freeze_backbone": True})
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert count_parameters(model) == sum(p.numel() for name, p in model.named_parameters() if not name.startswith("backbone."))
    model(torch.rand(1, 1, 32, 32)).sum().backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.fc[0].weight.grad is not None


def test_freezing_random_weights_is_refused() -> None:
    with pytest.raises(InputError, match="model.options.freeze_backbone: .*model.options.backbone_weights"):
        build_model("vgg16_fcn", 1, 2, {"freeze_backbone": True})


def test_weights_for_other_than_1_or_3_channels_are_refused(tmp_path: Path) -> None:
    path = save(vgg16_state_dict(), tmp_path / "vgg16.pth")
    with pytest.raises(InputError, match="need 1 or 3 input channels, got 2") as error:
        build_model("vgg16_fcn", 2, 2, {"backbone_weights": path})
    assert error.value.where == "model.options.backbone_weights"


def _without_last(state: dict) -> dict:
    return {key: value for key, value in state.items() if key != "features.28.bias"}


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (_without_last, "missing keys features.28.bias$"),
        (lambda state: {**state, "features.1.running_mean": torch.zeros(64)}, "unexpected keys features.1.running_mean$"),
        (
            lambda state: {**state, "features.5.weight": torch.zeros(1).expand(128, 64, 1, 1)},
            r"features.5.weight is \(128, 64, 1, 1\), the backbone needs \(128, 64, 3, 3\)",
        ),
        (
            lambda state: {**state, "features.0.weight": torch.zeros(64, 1, 3, 3)},
            r"features.0.weight is \(64, 1, 3, 3\), the backbone needs \(64, 3, 3, 3\)",
        ),
        (lambda state: {**state, "features.0.bias": [0.0] * 64}, "features.0.bias is list"),
    ],
)
def test_a_mismatched_file_is_one_input_error_naming_it(tmp_path: Path, edit, problem: str) -> None:
    path = save(edit(vgg16_state_dict()), tmp_path / "other.pth")
    with pytest.raises(InputError, match=f"not torchvision VGG16 weights.*{problem}") as error:
        build_model("fcn8s", 3, 2, {"fc_channels": 8, "backbone_weights": path})
    assert error.value.where == path


def test_a_file_that_is_no_pytorch_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "vgg16.pth"
    path.write_text("not weights")
    with pytest.raises(InputError, match="not a retinaseg backbone weight file") as error:
        build_model("vgg16_fcn", 3, 2, {"backbone_weights": str(path)})
    assert error.value.where == str(path)


def test_fcn8s_2x_upsamplings_start_bilinear() -> None:
    model = build_model("fcn8s", 1, 3, {"fc_channels": 8})
    scores = torch.rand(1, 3, 4, 5)
    with torch.no_grad():
        up = model.upscore2(scores)
    expected = F.interpolate(scores, scale_factor=2, mode="bilinear", align_corners=False)
    # Equal away from the border, where the transposed convolution sees zeros beyond the map.
    torch.testing.assert_close(up[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1])


@pytest.mark.parametrize("name", ["fcn8s", "vgg16_fcn"])
def test_weights_for_another_width_are_refused(tmp_path: Path, name: str) -> None:
    path = save(vgg16_state_dict(), tmp_path / "vgg16.pth")
    with pytest.raises(InputError, match="need width 64, got 8") as error:
        build_model(name, 1, 2, {"width": 8, "backbone_weights": path})
    assert error.value.where == "model.options.backbone_weights"


def test_width_scales_every_stage() -> None:
    with torch.device("meta"):
        backbone = VGG16Features(1, width=8)
    shapes = {key: tuple(value.shape) for key, value in backbone.state_dict().items()}
    assert list(shapes) == list(torchvision_shapes())
    assert shapes["features.0.weight"] == (8, 1, 3, 3) and shapes["features.28.weight"] == (64, 64, 3, 3)


def test_a_saved_model_loads_without_its_initial_weight_file(tmp_path: Path) -> None:
    """The ImageNet file only starts training; the saved model's own weights are what it is."""
    imagenet = tmp_path / "vgg16.pth"
    # Each filter averages its inputs (1 / fan-in), so activations stay finite through the 13 layers.
    averaging = {
        key: torch.full((1,), 1.0 / (shape[1] * shape[2] * shape[3]) if len(shape) == 4 else 0.0).expand(shape)
        for key, shape in torchvision_shapes().items()
    }
    options = {"width": 64, "backbone_weights": save(averaging, imagenet), "freeze_backbone": True}
    config = load_config(
        None, ["name=t", "data.source=retinaseg", "data.root=unused", "model.name=vgg16_fcn", f"model.options={options}"]
    )
    model = TrainedModel.from_config(config, ["background", "vessel"], "binary", Preprocessing()).eval()
    saved = model.save_pretrained(tmp_path / "model.pt", half=False)
    imagenet.unlink()
    loaded = TrainedModel.from_pretrained(saved)
    assert loaded.config["model"]["options"]["backbone_weights"] == str(imagenet)  # provenance kept
    image = torch.rand(1, 1, 32, 32)
    assert torch.equal(loaded.predict(image), model.predict(image))

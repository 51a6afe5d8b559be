"""FCN and DeepLabV3 on a dilated ResNet: torchvision's layout and parameter counts, ImageNet weights, freezing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from retinaseg.errors import InputError
from retinaseg.models import build_model
from retinaseg.models.registry import check_model_options
from retinaseg.models.resnet import DilatedResNet

FIXTURE = Path(__file__).parent / "fixtures" / "torchvision_resnet50_keys.txt"

MODELS = ["fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101"]

#: torchvision's documented ``num_params`` (21 classes, 3 channels, auxiliary head on).
TORCHVISION_PARAMETERS = {
    "fcn_resnet50": 35_322_218,
    "fcn_resnet101": 54_314_346,
    "deeplabv3_resnet50": 42_004_074,
    "deeplabv3_resnet101": 60_996_202,
}

#: The auxiliary FCN head on layer3 for 21 classes: 3x3 conv 1024->256, BN, 1x1 conv 256->21 with bias.
AUX_PARAMETERS = 1024 * 256 * 9 + 2 * 256 + 256 * 21 + 21


def torchvision_resnet50_layout() -> dict[str, tuple[int, ...]]:
    """The fixture: torchvision ResNet-50 state-dict names and shapes, without ``fc.*``."""
    layout = {}
    for line in FIXTURE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split()
            layout[name] = () if shape == "-" else tuple(int(size) for size in shape.split("x"))
    return layout


def parameter_count(name: str, aux_head: bool) -> int:
    with torch.device("meta"):
        model = build_model(name, 3, 21, {"aux_head": aux_head})
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_parameter_counts_are_torchvisions(name: str) -> None:
    assert parameter_count(name, aux_head=True) == TORCHVISION_PARAMETERS[name]
    assert parameter_count(name, aux_head=False) == TORCHVISION_PARAMETERS[name] - AUX_PARAMETERS


def test_backbone_state_dict_is_torchvisions_resnet50() -> None:
    with torch.device("meta"):
        backbone = build_model("deeplabv3_resnet50", 3, 2).backbone
    assert {key: tuple(value.shape) for key, value in backbone.state_dict().items()} == torchvision_resnet50_layout()


def test_output_stride_is_8_and_logits_have_the_input_size() -> None:
    model = build_model("deeplabv3_resnet50", 1, 3, {"width": 2}).eval()
    x = torch.rand(1, 1, 40, 56)
    with torch.no_grad():
        layer3, layer4 = model.backbone(x)
        logits = model(x)
    assert layer3.shape == (1, 32, 5, 7) and layer4.shape == (1, 64, 5, 7)
    assert logits.shape == (1, 3, 40, 56)
    assert model.backbone.layer4[1].conv2.dilation == (4, 4) and model.backbone.layer3[0].conv2.dilation == (1, 1)


def synthetic_tensor(name: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Random values of a plausible scale, so activations stay finite through 16 blocks."""
    if not shape:
        return torch.tensor(7)  # num_batches_tracked
    if name.endswith("running_var"):
        return torch.rand(shape, generator=generator) + 0.5
    if len(shape) == 4:
        return torch.randn(shape, generator=generator) / math.prod(shape[1:]) ** 0.5
    return torch.randn(shape, generator=generator) / 10


@pytest.fixture(scope="module")
def resnet50_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A synthetic ImageNet ResNet-50 file in torchvision's layout (random values, with ``fc.*``)."""
    generator = torch.Generator().manual_seed(0)
    state = {name: synthetic_tensor(name, shape, generator) for name, shape in torchvision_resnet50_layout().items()}
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 2048), torch.zeros(1000)
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.save(state, path)
    return path, state


def test_imagenet_weights_load_and_grey_input_sums_the_rgb_filters(resnet50_weights) -> None:
    path, state = resnet50_weights
    rgb = build_model("fcn_resnet50", 3, 2, {"backbone_weights": str(path)}).backbone.eval()
    grey = build_model("fcn_resnet50", 1, 2, {"backbone_weights": str(path)}).backbone.eval()
    for key, value in rgb.state_dict().items():
        assert torch.equal(value, state[key]), key
    torch.testing.assert_close(grey.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))
    # A grey image answers as the RGB backbone answers it repeated in R, G and B.
    image = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(grey(image)[1], rgb(image.expand(1, 3, 16, 16))[1], rtol=1e-4, atol=1e-3)


def test_a_trial_build_on_the_meta_device_checks_the_file(resnet50_weights, tmp_path: Path) -> None:
    path, _ = resnet50_weights
    assert check_model_options("deeplabv3_resnet50", {"backbone_weights": str(path)})["backbone_weights"] == str(path)
    with pytest.raises(InputError, match="backbone weight file not found"):
        check_model_options("deeplabv3_resnet50", {"backbone_weights": str(tmp_path / "absent.pth")})


def one_line_error(name: str, in_channels: int, options: dict) -> InputError:
    """The error building ``name`` on the meta device (files are checked there too, at no cost in memory or time)."""
    with pytest.raises(InputError) as error, torch.device("meta"):
        build_model(name, in_channels, 2, options)
    assert "\n" not in str(error.value)
    return error.value


def test_unusable_weight_files_are_refused_naming_them(resnet50_weights, tmp_path: Path) -> None:
    path, state = resnet50_weights
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3), **{k: v for k, v in state.items() if k != "bn1.bias"}}, other)
    error = one_line_error("fcn_resnet50", 3, {"backbone_weights": str(other)})
    assert error.where == str(other)
    assert error.problem == "not torchvision ResNet-50 weights: missing keys bn1.bias; unexpected keys encoder.weight"
    # ResNet-50 weights in a ResNet-101: the extra blocks are missing.
    error = one_line_error("fcn_resnet101", 3, {"backbone_weights": str(path)})
    assert error.where == str(path) and "missing keys layer3.10.bn1.bias" in error.problem
    torch.save({**state, "conv1.weight": torch.zeros(64, 4, 7, 7)}, other)
    error = one_line_error("deeplabv3_resnet50", 3, {"backbone_weights": str(other)})
    assert error.where == str(other)
    assert error.problem == "not torchvision ResNet-50 weights: conv1.weight is (64, 4, 7, 7), the backbone needs (64, 3, 7, 7)"
    other.write_bytes(b"not a zip archive")
    assert one_line_error("fcn_resnet50", 3, {"backbone_weights": str(other)}).where == str(other)


def test_weights_need_1_or_3_channels_and_torchvisions_width(resnet50_weights) -> None:
    path, _ = resnet50_weights
    error = one_line_error("fcn_resnet50", 2, {"backbone_weights": str(path)})
    assert error.where == "model.options.backbone_weights" and "1 or 3 input channels, got 2" in error.problem
    error = one_line_error("fcn_resnet50", 3, {"backbone_weights": str(path), "width": 32})
    assert error.where == "model.options.width"


@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_resnet101"])
def test_freeze_backbone_keeps_its_parameters_and_batch_norm_statistics(name: str) -> None:
    model = build_model(name, 1, 2, {"width": 2, "freeze_backbone": True, "aux_head": True}).train()
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert not model.backbone.training and model.classifier.training
    before = {key: value.clone() for key, value in model.backbone.state_dict().items()}
    model(torch.rand(2, 1, 16, 16)).mean().backward()
    assert all(torch.equal(value, before[key]) for key, value in model.backbone.state_dict().items())
    assert isinstance(model.backbone, DilatedResNet)

"""Tests for retinaseg.training.precision: what ``trainer.precision: auto`` chooses on a CPU."""

from __future__ import annotations

import math

import pytest
import torch

from retinaseg.models.unet import UNet
from retinaseg.training import precision
from retinaseg.training.losses import build_loss
from retinaseg.training.precision import choose_cpu_precision

LOSS = build_loss("dice_ce", None)
SHAPE = (2, 1, 32, 32)


def tiny_unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return UNet(1, 3, depth=2, base_channels=4)


def fake_steps(monkeypatch: pytest.MonkeyPatch, seconds_32: float, seconds_bf16: float) -> list[bool]:
    """Step times as given, whatever the CPU; returns the precisions stepped, in order (True: bf16)."""
    calls: list[bool] = []

    def step_seconds(*args: object, bf16: bool, channels_last: bool) -> float:
        calls.append(bf16)
        return seconds_bf16 if bf16 else seconds_32

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision, "step_seconds", step_seconds)
    return calls


def test_without_native_bf16_float32_is_kept_untimed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    choice = choose_cpu_precision(tiny_unet(), LOSS, SHAPE, 3)
    assert choice.precision == "32-true" and math.isnan(choice.seconds_32) and math.isnan(choice.seconds_bf16)


@pytest.mark.parametrize(("seconds_bf16", "expected"), [(0.2, "bf16-mixed"), (0.27, "32-true"), (0.4, "32-true")])
def test_bf16_only_when_clearly_faster(monkeypatch: pytest.MonkeyPatch, seconds_bf16: float, expected: str) -> None:
    calls = fake_steps(monkeypatch, 0.3, seconds_bf16)
    choice = choose_cpu_precision(tiny_unet(), LOSS, SHAPE, 3, steps=2)
    assert choice.precision == expected and (choice.seconds_32, choice.seconds_bf16) == (0.3, seconds_bf16)
    # Two float32 warm-ups, one bf16 warm-up, then the two take turns.
    assert calls == [False, False, True, False, True, False, True]
    assert f"{0.3 / seconds_bf16:.2f}x" in choice.describe()


def test_steps_too_short_to_compare_keep_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_steps(monkeypatch, 0.01, 0.001)
    choice = choose_cpu_precision(tiny_unet(), LOSS, SHAPE, 3)
    assert choice.precision == "32-true" and calls == [False, False]


def test_timing_leaves_the_network_and_the_random_stream_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Real steps in both precisions (bfloat16 is emulated where the CPU lacks it), dropout drawing random numbers.
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision, "MIN_STEP_SECONDS", 0.0)
    torch.manual_seed(0)
    network = UNet(1, 3, depth=2, base_channels=4, dropout=0.5).train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    choice = choose_cpu_precision(network, LOSS, SHAPE, 3, channels_last=True)
    assert torch.equal(torch.rand(3), expected_draw)  # a seeded run trains alike, timed or not
    assert choice.precision in ("32-true", "bf16-mixed") and choice.seconds_bf16 > 0
    assert all(torch.equal(value, before[key]) for key, value in network.state_dict().items())
    assert all(p.grad is None for p in network.parameters())


def test_a_failing_bf16_step_keeps_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    def step_seconds(*args: object, bf16: bool, channels_last: bool) -> float:
        if bf16:
            raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'BFloat16'")
        return 0.3

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(precision, "step_seconds", step_seconds)
    assert choose_cpu_precision(tiny_unet(), LOSS, SHAPE, 3).precision == "32-true"

"""Which precision training runs in on which hardware."""

from __future__ import annotations

import pytest
import torch

from training import checkpoints
from training.checkpoints import Precision, choose_precision


@pytest.mark.parametrize(
    ("device_type", "bf16_native", "expected"),
    [
        # A CUDA GPU without bf16 (T4, V100): fp16, whose small gradients underflow unscaled.
        ("cuda", False, Precision(torch.float16, scale_gradients=True)),
        ("cuda", True, Precision(torch.bfloat16, scale_gradients=False)),
        ("cpu", True, Precision(torch.bfloat16, scale_gradients=False)),
        ("cpu", False, Precision(None, scale_gradients=False)),  # bf16 emulation is 25x slower
    ],
)
def test_fp16_autocast_always_comes_with_gradient_scaling(device_type, bf16_native, expected):
    precision = choose_precision(device_type, bf16_native=bf16_native)
    assert precision == expected
    assert precision.scale_gradients == (precision.autocast == torch.float16)


@pytest.mark.parametrize("bf16_native", [True, False])
def test_scoring_and_serving_load_bf16_weights_only_where_bf16_is_native(
    tiny_model_dir, monkeypatch, bf16_native
):
    """Inference weights are bf16 where the hardware runs bf16 natively (twice as fast on an
    AMX CPU) and fp32 elsewhere; training always gets fp32 weights for its optimizer."""
    monkeypatch.setattr(checkpoints, "_bf16_native", lambda device: bf16_native)
    cpu = torch.device("cpu")
    served = checkpoints.load_model(tiny_model_dir, cpu, inference=True)
    trained = checkpoints.load_model(tiny_model_dir, cpu)
    assert next(served.parameters()).dtype == (torch.bfloat16 if bf16_native else torch.float32)
    assert next(trained.parameters()).dtype == torch.float32

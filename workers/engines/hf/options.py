"""The hf engine's options (``--engine-option``): names, defaults, and their checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boundary.api.errors import ConfigError
from boundary.workers.engines.cpu import has_fast_bf16

BATCH_SIZE = 32
"""Rows (samples) decoded together by default (figures in docs/engines.md)."""

OPTIONS: tuple[str, ...] = ("dtype", "device", "batch_size", "max_model_len", "threads")
"""Engine options (``--engine-option``) this engine accepts."""

DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "float32")
"""``auto``: bfloat16 on CUDA and on CPUs with AVX512-BF16, float16 on Apple MPS (untested),
float32 on other CPUs, whose bfloat16 matrix products are emulated (docs/engines.md)."""


@dataclass(frozen=True)
class HfOptions:
    """Parsed engine options; ``dtype`` and ``device`` are already resolved from ``auto``."""

    dtype: str
    device: str
    batch_size: int
    max_model_len: int | None
    threads: int | None


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ConfigError(f"engine option {name} must be a positive integer, got {value!r}")
    number = int(value)
    if number < 1:
        raise ConfigError(f"engine option {name} must be a positive integer, got {value!r}")
    return number


def resolve_device(value: Any) -> str:
    import torch

    if value in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        return str(torch.device(str(value)))
    except (RuntimeError, ValueError):
        raise ConfigError(f"engine option device: unknown device {value!r} (cpu, cuda, cuda:1, mps)") from None


def resolve_dtype(value: Any, device: str) -> str:
    if value not in DTYPES:
        raise ConfigError(f"engine option dtype must be one of {', '.join(DTYPES)}, got {value!r}")
    if value != "auto":
        return str(value)
    if device.startswith("cuda"):
        return "bfloat16"
    if device.startswith("mps"):
        return "float16"
    return "bfloat16" if has_fast_bf16() else "float32"


def parse_options(options: Mapping[str, Any]) -> HfOptions:
    """Checked options with defaults filled in; ``ConfigError`` for unknown names or bad values."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown option(s) for the hf engine: {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    device = resolve_device(options.get("device", "auto"))
    max_len, threads = options.get("max_model_len"), options.get("threads")
    return HfOptions(
        dtype=resolve_dtype(options.get("dtype", "auto"), device),
        device=device,
        batch_size=_positive_int("batch_size", options.get("batch_size", BATCH_SIZE)),
        max_model_len=None if max_len is None else _positive_int("max_model_len", max_len),
        threads=None if threads is None else _positive_int("threads", threads),
    )

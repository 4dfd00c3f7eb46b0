"""Which implementation runs `selective_scan`: chosen by device, overridable by env var or context manager.

Priority: `use_backend(...)` context manager > `VSSM_SCAN_BACKEND` environment variable > automatic choice
(float64 -> reference; CUDA -> triton; CPU -> cpu).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import os
import warnings
from collections.abc import Iterator

import torch

ENV_VAR = "VSSM_SCAN_BACKEND"


class Backend(str, enum.Enum):
    """An implementation of the selective scan."""

    REFERENCE = "reference"  # sequential over L in PyTorch; any dtype incl. float64; the ground truth
    CPU = "cpu"  # compiled CPU loop (float32 state), see kernels/cpu.py
    TRITON = "triton"  # Triton kernels for CUDA tensors (or CPU tensors under TRITON_INTERPRET=1)

    @classmethod
    def parse(cls, value: Backend | str) -> Backend:
        if isinstance(value, Backend):
            return value
        if not isinstance(value, str):
            raise TypeError(f"backend: expected a Backend or one of {_names()}, got {type(value).__name__}")
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValueError(f"backend: expected one of {_names()}, got {value!r}") from None


def _names() -> list[str]:
    return [b.value for b in Backend]


_override: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("vssm_scan_backend", default=None)


@contextlib.contextmanager
def use_backend(backend: Backend | str) -> Iterator[Backend]:
    """Run every `selective_scan` inside the block on `backend` (e.g. `with use_backend("reference"): ...`)."""
    token = _override.set(Backend.parse(backend))
    try:
        yield _override.get()
    finally:
        _override.reset(token)


def requested_backend() -> Backend | None:
    """The backend asked for by `use_backend` or `VSSM_SCAN_BACKEND`, or None for the automatic choice."""
    override = _override.get()
    if override is not None:
        return override
    env = os.environ.get(ENV_VAR, "").strip()
    if not env or env.lower() == "auto":
        return None
    try:
        return Backend.parse(env)
    except ValueError:
        raise ValueError(f"{ENV_VAR}: expected one of {[*_names(), 'auto']}, got {env!r}") from None


def triton_interpret() -> bool:
    """True under TRITON_INTERPRET=1, where Triton kernels run on CPU tensors (slowly; for tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def supports(backend: Backend, device: torch.device, dtype: torch.dtype) -> str | None:
    """None if `backend` can run tensors of `device`/`dtype`, else the reason why not."""
    if backend is Backend.REFERENCE:
        return None
    if dtype == torch.float64:
        return f"backend {backend.value!r} computes in float32; float64 inputs need backend 'reference'"
    if backend is Backend.CPU:
        if device.type != "cpu":
            return f"backend 'cpu' needs CPU tensors, got device {device}"
        from . import cpu

        return cpu.unavailable_reason()
    if not triton_available():
        return "backend 'triton' needs the triton package"
    if device.type == "cuda" or (device.type == "cpu" and triton_interpret()):
        return None
    return f"backend 'triton' needs CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), got device {device}"


def select_backend(device: torch.device, dtype: torch.dtype) -> Backend:
    """The backend that runs a scan on `device`/`dtype` now; raises ValueError if the requested one cannot."""
    requested = requested_backend()
    if requested is not None:
        reason = supports(requested, device, dtype)
        if reason is not None:
            raise ValueError(f"selective_scan: {reason}")
        return requested
    if dtype == torch.float64:
        return Backend.REFERENCE
    preferred = Backend.TRITON if device.type == "cuda" else Backend.CPU
    reason = supports(preferred, device, dtype)
    if reason is None:
        return preferred
    if device.type in ("cpu", "cuda"):
        _warn_fallback(reason)
    return Backend.REFERENCE


@functools.cache
def _warn_fallback(reason: str) -> None:
    warnings.warn(f"selective_scan falls back to the slow 'reference' backend: {reason}", RuntimeWarning,
                  stacklevel=3)

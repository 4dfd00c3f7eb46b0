"""Which implementation runs `selective_scan`: chosen by device, overridable by env var or context manager; and
what each backend runs, one row per backend in `IMPLEMENTATIONS`.

Priority: `use_backend(...)` context manager > `VSSM_SCAN_BACKEND` environment variable > automatic choice
(float64 -> reference; CUDA -> triton; CPU -> cpu).

The `cpu` row builds its C loop on first use (checking whether the backend can run does), the `triton` row imports
kernels.triton_scan (kernels.triton_scan_state1 at d_state 1), and with it triton, only when the backend runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import torch

from . import cpu
from .reference import selective_scan_ref_bwd, selective_scan_ref_fwd
from .scan_tensors import ScanShape, ScanTensors
from .switches import parse_option, switched

ENV_VAR = "VSSM_SCAN_BACKEND"


class Backend(str, enum.Enum):
    """An implementation of the selective scan."""

    REFERENCE = "reference"  # sequential over L in PyTorch; any dtype incl. float64; the ground truth
    CPU = "cpu"  # compiled CPU loop (float32 state), see kernels/cpu.py
    TRITON = "triton"  # Triton kernels for CUDA tensors (or CPU tensors under TRITON_INTERPRET=1)

    @classmethod
    def parse(cls, value: Backend | str) -> Backend:
        return parse_option(cls, value, "backend")


_override: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("vssm_scan_backend", default=None)


def use_backend(backend: Backend | str) -> contextlib.AbstractContextManager[Backend]:
    """Run every `selective_scan` inside the block on `backend` (e.g. `with use_backend("reference"): ...`)."""
    return switched(_override, Backend.parse(backend))


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
        raise ValueError(f"{ENV_VAR}: expected one of {[*(b.value for b in Backend), 'auto']}, got {env!r}") from None


def triton_interpret() -> bool:
    """True under TRITON_INTERPRET=1, where Triton kernels run on CPU tensors (slowly; for tests)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_refusal(device: torch.device) -> str | None:
    if not triton_available():
        return "backend 'triton' needs the triton package"
    if device.type == "cuda" or (device.type == "cpu" and triton_interpret()):
        return None
    return f"backend 'triton' needs CUDA tensors (or CPU tensors under TRITON_INTERPRET=1), got device {device}"


@functools.cache
def _triton_scan() -> ModuleType:
    from . import triton_scan  # imports triton, which may be absent: only once the backend runs

    return triton_scan


def _from_triton_scan(name: str) -> Callable:
    def call(*args: object) -> object:
        return getattr(_triton_scan(), name)(*args)

    return call


@functools.cache
def _triton_scan_state1() -> ModuleType:
    from . import triton_scan_state1

    return triton_scan_state1


def _triton_forward(scan: ScanTensors, delta_softplus: bool, out_float32: bool,
                    fold: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # d_state 1 (VMamba-T, MSVMamba) has its own first-order kernels, with the same saved-state layout
    if scan.A.shape[1] == 1:
        return _triton_scan_state1().selective_scan_state1_fwd(scan, delta_softplus, out_float32, fold)
    return _triton_scan().selective_scan_triton_fwd(scan, delta_softplus, out_float32, fold)


def _triton_backward(grad_out: torch.Tensor, scan: ScanTensors, saved: torch.Tensor, delta_softplus: bool,
                     fold: int) -> Sequence[torch.Tensor | None]:
    if scan.A.shape[1] == 1:
        return _triton_scan_state1().selective_scan_state1_bwd(grad_out, scan, saved, delta_softplus, fold)
    return _triton_scan().selective_scan_triton_bwd(grad_out, scan, saved, delta_softplus, fold)


Forward = Callable[[ScanTensors, bool, bool, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
Backward = Callable[[torch.Tensor, ScanTensors, torch.Tensor, bool, int], Sequence[torch.Tensor | None]]


@dataclass(frozen=True)
class Implementation:
    """One backend's functions, called below the op boundary (kernels.op, kernels.eager) with B, C as
    (batch, G, N, L), and what the code above them needs to know of it.

    * `forward(scan, delta_softplus, out_float32, fold)` -> (y, last_state, saved): y (batch, KD/fold, L), channel d
      added into y[:, d % (KD/fold)] in float32 and rounded once; `saved` is the float32 tensor the backend keeps
      for its backward (chunk-start states; empty for `reference`), of shape `saved_shape(scan.sizes())`, which the
      op's fake kernel allocates;
    * `backward(grad_out, scan, saved, delta_softplus, fold)` -> the gradients in `ScanTensors` order (None for an
      absent input), channel d reading grad_out[:, d % (KD/fold)]; du has u's shape, also for a shared u;
    * `refusal(device)`: None when the backend runs tensors on `device`, else why not; only a `float64` backend
      takes float64 inputs (the others compute in float32);
    * `traced`: it launches Triton kernels through `wrap_triton`, so the public op calls it directly and
      torch.compile sees the kernels (the others run inside an opaque op);
    * `gathers_scattered_routes`: it reads a route whose steps mostly jump slowly, so eager calls gather such a
      route's inputs into route order first (kernels.route_order).
    """

    forward: Forward
    backward: Backward
    saved_shape: Callable[[ScanShape], tuple[int, ...]]
    refusal: Callable[[torch.device], str | None]
    float64: bool = False
    traced: bool = False
    gathers_scattered_routes: bool = False


# Keyed by Backend, a str enum: the backend's name, which the custom op's schema carries, finds its row too.
IMPLEMENTATIONS: dict[Backend, Implementation] = {
    Backend.REFERENCE: Implementation(selective_scan_ref_fwd, selective_scan_ref_bwd, saved_shape=lambda shape: (0,),
                                      refusal=lambda device: None, float64=True),
    Backend.CPU: Implementation(cpu.selective_scan_cpu_fwd, cpu.selective_scan_cpu_bwd, cpu.saved_shape, cpu.refusal),
    Backend.TRITON: Implementation(_triton_forward, _triton_backward, _from_triton_scan("saved_shape"),
                                   _triton_refusal, traced=True, gathers_scattered_routes=True),
}


def supports(backend: Backend, device: torch.device, dtype: torch.dtype) -> str | None:
    """None if `backend` can run tensors of `device`/`dtype`, else the reason why not."""
    implementation = IMPLEMENTATIONS[backend]
    if dtype == torch.float64 and not implementation.float64:
        return f"backend {backend.value!r} computes in float32; float64 inputs need backend 'reference'"
    return implementation.refusal(device)


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

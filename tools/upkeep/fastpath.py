"""Check a model's fast path against the reference path: the same weights and input through the automatic scan
backend, the reference backend in the same dtype, and the reference in float64 (`kernels.tolerances`' rule)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from vssm import kernels
from vssm.kernels.backends import select_backend
from vssm.kernels.tolerances import three_way_error


@dataclass(frozen=True)
class FastPathCheck:
    """Worst output error of the fast path against the float64 reference, the bound the tolerance rule allows it
    (2x the same-dtype reference's own error + atol), and the backend that ran as the fast path."""

    backend: str
    input_size: tuple[int, int, int]
    error: float
    bound: float

    @property
    def ok(self) -> bool:
        return self.error <= self.bound


def small_input_size(stride: int, in_chans: int = 3, side: int = 64) -> tuple[int, int, int]:
    """The smallest square input of at least `side` pixels and two strides, a multiple of the stride."""
    size = max(side, 2 * stride)
    return in_chans, -(-size // stride) * stride, -(-size // stride) * stride


def _outputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    with torch.no_grad():
        return [t for t in tree_leaves(model(x)) if isinstance(t, Tensor) and t.is_floating_point()]


def check_fast_path(model: nn.Module, input_size: tuple[int, int, int], seed: int = 0) -> FastPathCheck:
    """Run `model` (eval, float32) on one random input three ways and compare every floating output.

    The model is converted to float64 for the last run and back to float32 afterwards (an exact round trip).
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, *input_size, generator=generator).to(device)
    model = model.eval().float()
    backend = select_backend(device, torch.float32).value
    fast = _outputs(model, x)
    with kernels.use_backend("reference"):
        reference = _outputs(model, x)
        try:
            reference64 = _outputs(model.double(), x.double())
        finally:
            model.float()
    errors = [three_way_error(f, r, r64, torch.float32) for f, r, r64 in zip(fast, reference, reference64, strict=True)]
    worst = max(errors, key=lambda e: e.fast / e.bound if e.bound else float("inf"))
    return FastPathCheck(backend=backend, input_size=tuple(input_size), error=worst.fast,  # type: ignore[arg-type]
                         bound=worst.bound)

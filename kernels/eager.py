"""The eager path of `kernels.selective_scan`: the backends called from a plain `torch.autograd.Function`.

The custom op `vssm::selective_scan` is what torch.compile, jit tracing (fvcore), FlopCounterMode, FakeTensorMode,
functorch transforms and tensor subclasses need to see. Plain eager calls do not need the dispatcher, and paid
for it: torch.library's Python layers (the autograd wrapper, the redispatch, default filling, the dynamo guard)
cost about 170 to 240 µs per forward + backward on a 2-core CPU, two to three times the launchers' own host time
(benchmarks/host_overhead.md), while a whole forward + backward at MambaVision's shapes took 1.34 ms on an H100
(benchmarks/h100). So eager calls take this Function whenever nothing watches the dispatcher
(`direct_call_allowed`) and `use_custom_op` is off, and the op otherwise; both run the same functions of
`kernels.backends.IMPLEMENTATIONS`.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .backends import IMPLEMENTATIONS, Backend
from .scan_tensors import ScanTensors
from .switches import switched

_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)

_custom_op_only: contextvars.ContextVar[bool] = contextvars.ContextVar("vssm_scan_custom_op_only", default=False)


def use_custom_op() -> contextlib.AbstractContextManager[bool]:
    """Make every `selective_scan` inside the block call `torch.ops.vssm.selective_scan`, also where its eager
    Function would run: what compiled graphs, FlopCounterMode and fvcore get, in eager mode."""
    return switched(_custom_op_only, True)


def direct_call_allowed(*tensors: torch.Tensor | None) -> bool:
    """True when the scan may skip the dispatcher: not compiling or jit tracing, no dispatch mode, no functorch
    transform, `use_custom_op` off, and every tensor a plain `torch.Tensor` (or Parameter)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or _get_current_dispatch_mode() is not None:
        return False
    if torch._C._functorch.peek_interpreter_stack() is not None or _custom_op_only.get():
        return False
    return all(t is None or type(t) in _PLAIN_TENSORS for t in tensors)


class SelectiveScanFunction(torch.autograd.Function):
    """(backend, delta_softplus, out_float32, fold, *ScanTensors) -> (y, last_state); B, C: (batch, G, N, L). Only y
    carries a gradient; none is materialised for last_state. (`forward` takes the ctx rather than a
    `setup_context`: with one, every `apply` binds the arguments through `inspect.signature`.)"""

    @staticmethod
    def forward(ctx: Any, backend: Backend, delta_softplus: bool, out_float32: bool, fold: int,
                *tensors: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        y, last_state, saved = IMPLEMENTATIONS[backend].forward(ScanTensors(*tensors), delta_softplus, out_float32,
                                                                fold)
        ctx.save_for_backward(*tensors, saved)
        ctx.backend, ctx.delta_softplus, ctx.fold = backend, delta_softplus, fold
        ctx.mark_non_differentiable(last_state)
        ctx.set_materialize_grads(False)
        return y, last_state

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor | None, _grad_last_state: None) -> tuple:
        if grad_out is None:
            return (None,) * 13
        *tensors, saved = ctx.saved_tensors
        grads = IMPLEMENTATIONS[ctx.backend].backward(grad_out, ScanTensors(*tensors), saved, ctx.delta_softplus,
                                                      ctx.fold)
        return (None, None, None, None, *grads, None)

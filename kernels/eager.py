"""The eager path of `kernels.selective_scan`: the backends called from a plain `torch.autograd.Function`.

The custom op `vssm::selective_scan` is what torch.compile, jit tracing (fvcore), FlopCounterMode, FakeTensorMode,
functorch transforms and tensor subclasses need to see. Plain eager calls do not need the dispatcher, and paid
for it: torch.library's Python layers (the autograd wrapper, the redispatch, default filling, the dynamo guard)
cost about 170 to 240 µs per forward + backward on a 2-core CPU, two to three times the launchers' own host time
(benchmarks/host_overhead.md), while a whole forward + backward at MambaVision's shapes took 1.34 ms on an H100
(benchmarks/h100). So eager calls take this Function whenever nothing watches the dispatcher
(`direct_call_allowed`), and the op otherwise; both run the same `kernels.run` functions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from .backends import Backend
from .run import run_backward, run_forward

_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def direct_call_allowed(*tensors: torch.Tensor | None) -> bool:
    """True when the scan may skip the dispatcher: not compiling or jit tracing, no dispatch mode, no functorch
    transform, and every tensor a plain `torch.Tensor` (or Parameter)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing() or _get_current_dispatch_mode() is not None:
        return False
    if torch._C._functorch.peek_interpreter_stack() is not None:
        return False
    return all(t is None or type(t) in _PLAIN_TENSORS for t in tensors)


class SelectiveScanFunction(torch.autograd.Function):
    """(backend, delta_softplus, out_float32, u, delta, A, B, C, D, z, delta_bias, route) -> (y, last_state);
    B, C: (batch, G, N, L). Only y carries a gradient; none is materialised for last_state. (`forward` takes the ctx
    rather than a `setup_context`: with one, every `apply` binds the arguments through `inspect.signature`.)"""

    @staticmethod
    def forward(ctx: Any, backend: Backend, delta_softplus: bool, out_float32: bool, u, delta, A, B, C, D, z,
                delta_bias, route) -> tuple[torch.Tensor, torch.Tensor]:
        y, last_state, saved = run_forward(backend, u, delta, A, B, C, D, z, delta_bias, route, delta_softplus,
                                           out_float32)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, route, saved)
        ctx.backend, ctx.delta_softplus = backend, delta_softplus
        ctx.mark_non_differentiable(last_state)
        ctx.set_materialize_grads(False)
        return y, last_state

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor | None, _grad_last_state: None) -> tuple:
        if grad_out is None:
            return (None,) * 12
        u, delta, A, B, C, D, z, delta_bias, route, saved = ctx.saved_tensors
        grads = run_backward(ctx.backend, grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                             ctx.delta_softplus)
        return (None, None, None, *grads, None)

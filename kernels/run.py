"""The backends' forward and backward, called by the custom op (kernels.op) and by the eager path (kernels.eager).

Both take B, C as (batch, G, N, L) and a `Backend`; the forward returns (y, last_state, saved), `saved` being what
the backend keeps for its backward (chunk-start states; an empty tensor for `reference`), the backward the
gradients of u, delta, A, B, C, D, z, delta_bias (None for an absent input).
"""

from __future__ import annotations

import torch

from . import cpu
from .backends import Backend
from .reference import selective_scan_ref


def run_forward(backend: Backend, u, delta, A, B, C, D, z, delta_bias, route, delta_softplus: bool,
                out_float32: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if backend is Backend.TRITON:
        from .triton_scan import selective_scan_triton_fwd

        return selective_scan_triton_fwd(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus, out_float32)
    if backend is Backend.CPU:
        return cpu.selective_scan_cpu_fwd(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus, out_float32)
    y, last_state = selective_scan_ref(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, True, out_float32, route
    )
    return y.contiguous(), last_state.contiguous(), u.new_empty(0, dtype=torch.float32)


def run_backward(backend: Backend, grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                 delta_softplus: bool) -> list[torch.Tensor | None]:
    if backend is Backend.TRITON:
        from .triton_scan import selective_scan_triton_bwd

        return list(selective_scan_triton_bwd(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                                              delta_softplus))
    if backend is Backend.CPU:
        return list(cpu.selective_scan_cpu_bwd(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                                               delta_softplus))
    return _reference_backward(grad_out, u, delta, A, B, C, D, z, delta_bias, route, delta_softplus)


def _reference_backward(grad_out, u, delta, A, B, C, D, z, delta_bias, route, delta_softplus):
    # torch.func.vjp, not torch.autograd.grad: inside the op, a kernel runs below the autograd dispatch key.
    inputs = [u, delta, A, B, C, D, z, delta_bias]
    present = [i for i, t in enumerate(inputs) if t is not None]

    def scan(*tensors: torch.Tensor) -> torch.Tensor:
        args = list(inputs)
        for i, t in zip(present, tensors, strict=True):
            args[i] = t
        return selective_scan_ref(*args[:5], D=args[5], z=args[6], delta_bias=args[7],
                                  delta_softplus=delta_softplus, route=route)

    y, vjp = torch.func.vjp(scan, *[inputs[i] for i in present])
    grads = iter(vjp(grad_out.to(y.dtype)))
    return [next(grads) if t is not None else None for t in inputs]

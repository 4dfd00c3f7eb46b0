"""`vssm::selective_scan` as a torch.library custom op: autograd, fake (meta) kernels, FLOP formula, fvcore handle.

The public op and its backward are `torch.library.triton_op`s:

    vssm::selective_scan(u, delta, A, B, C, D?, z?, delta_bias?, route?, delta_softplus, out_float32, backend)
        -> (out, last_state, saved)        B, C: (batch, G, N, L); `saved` is what the backend keeps for backward
    vssm::selective_scan_backward(grad_out, ..., saved, delta_softplus, backend) -> [du, ddelta, dA, dB, dC, dD, dz,
                                                                                    ddelta_bias]  (empty if absent)

With the triton backend they launch the kernels of `kernels.triton_scan` through `wrap_triton`, so torch.compile
sees the kernels. The reference and cpu backends run inside `vssm::selective_scan_opaque(_backward)`, plain
`custom_op`s that torch.compile and opcheck treat as opaque (a C loop and a Python loop cannot be traced).

`backend` is the value of a `kernels.Backend`, resolved by `kernels.selective_scan` before the call, so a compiled
graph keeps the backend it was traced with.

With a route of K rows, u may be (batch, KD/K, L), read by every route ("shared u"); du then has u's shape (the K
routes' contributions summed). KD is always delta's channel count.

FLOPs (FlopCounterMode and fvcore): 9·batch·L'·KD·N for the scan (L' = scanned steps, = L without a route) plus
batch·KD·L when D is given; the backward counts twice the forward (FlopCounterMode's convention for matmuls).
Use the fvcore handle as `FlopCountAnalysis(model, x).set_op_handle(**kernels.fvcore_handles())`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import register_flop_formula

from . import cpu
from .backends import Backend
from .reference import compute_dtype
from .run import run_backward, run_forward
from .validation import check_route_values

GRAD_COUNT = 8  # du, ddelta, dA, dB, dC, dD, dz, ddelta_bias


def saved_shape(backend: Backend, batch: int, channels: int, steps: int, state: int) -> tuple[int, ...]:
    """Shape of the float32 tensor a backend keeps for its backward (chunk-start states; nothing for reference)."""
    if backend is Backend.CPU:
        return (batch, channels, -(-steps // cpu.chunk_size(state)) - 1, state)
    if backend is Backend.TRITON:
        from .triton_scan import saved_shape as triton_saved_shape

        return triton_saved_shape(batch, channels, steps, state)
    return (0,)


def _steps(u: torch.Tensor, route: torch.Tensor | None) -> int:
    return u.shape[-1] if route is None else route.shape[1]


@torch.library.custom_op("vssm::selective_scan_opaque", mutates_args=())
def selective_scan_opaque(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    route: torch.Tensor | None,
    delta_softplus: bool,
    out_float32: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if route is not None:
        check_route_values(route, u.shape[-1])
    return run_forward(Backend(backend), u, delta, A, B, C, D, z, delta_bias, route, delta_softplus, out_float32)


@selective_scan_opaque.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus, out_float32, backend):
    batch, channels, _ = delta.shape  # KD: u may be shared by the routes (KD / K channels)
    cdt = compute_dtype(u.dtype)
    out = u.new_empty(delta.shape, dtype=cdt if out_float32 else u.dtype)
    last_state = u.new_empty(batch, channels, A.shape[1], dtype=cdt)
    saved = u.new_empty(saved_shape(Backend(backend), batch, channels, _steps(u, route), A.shape[1]),
                        dtype=torch.float32)
    return out, last_state, saved


@torch.library.custom_op("vssm::selective_scan_opaque_backward", mutates_args=())
def selective_scan_opaque_backward(
    grad_out: torch.Tensor,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    route: torch.Tensor | None,
    saved: torch.Tensor,
    delta_softplus: bool,
    backend: str,
) -> list[torch.Tensor]:
    grads = run_backward(Backend(backend), grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                         delta_softplus)
    return [u.new_empty(0) if g is None else g.contiguous() for g in grads]


@selective_scan_opaque_backward.register_fake
def _(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved, delta_softplus, backend):
    like = [u, delta, A, B, C, D, z, delta_bias]
    return [u.new_empty(0) if t is None else torch.empty_like(t, memory_format=torch.contiguous_format)
            for t in like]


@torch.library.triton_op("vssm::selective_scan", mutates_args=())
def selective_scan_op(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    route: torch.Tensor | None,
    delta_softplus: bool,
    out_float32: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one public op. Triton: kernels launched through wrap_triton (torch.compile sees them); otherwise the
    opaque op above. Also serves as the fake implementation (triton_op traces it with fake tensors)."""
    if Backend(backend) is Backend.TRITON:
        return run_forward(Backend.TRITON, u, delta, A, B, C, D, z, delta_bias, route, delta_softplus, out_float32)
    return torch.ops.vssm.selective_scan_opaque(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus,
                                                out_float32, backend)


@torch.library.triton_op("vssm::selective_scan_backward", mutates_args=())
def selective_scan_backward_op(
    grad_out: torch.Tensor,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    route: torch.Tensor | None,
    saved: torch.Tensor,
    delta_softplus: bool,
    backend: str,
) -> list[torch.Tensor]:
    if Backend(backend) is Backend.TRITON:
        grads = run_backward(Backend.TRITON, grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                             delta_softplus)
        return [u.new_empty(0) if g is None else g for g in grads]
    return torch.ops.vssm.selective_scan_opaque_backward(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                                                         delta_softplus, backend)


def _setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
    u, delta, A, B, C, D, z, delta_bias, route, delta_softplus, _, backend = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, route, output[2])
    ctx.delta_softplus, ctx.backend = delta_softplus, backend
    ctx.present = [t is not None for t in (D, z, delta_bias)]
    ctx.set_materialize_grads(False)  # no zero gradients for last_state and the saved states


def _backward(ctx: Any, grad_out: torch.Tensor | None, _grad_last: None, _grad_saved: None) -> tuple:
    if grad_out is None:
        return (None,) * 12
    u, delta, A, B, C, D, z, delta_bias, route, saved = ctx.saved_tensors
    grads = torch.ops.vssm.selective_scan_backward(
        grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved, ctx.delta_softplus, ctx.backend
    )
    du, ddelta, dA, dB, dC, dD, dz, ddelta_bias = grads
    has_D, has_z, has_bias = ctx.present
    return (du, ddelta, dA, dB, dC, dD if has_D else None, dz if has_z else None,
            ddelta_bias if has_bias else None, None, None, None, None)


selective_scan_op.register_autograd(_backward, setup_context=_setup_context)


def scan_flops(batch: int, channels: int, length: int, steps: int, state: int, has_D: bool) -> int:
    """9·batch·L'·KD·N for the recurrence and read-out, plus batch·KD·L for the D skip term."""
    return 9 * batch * steps * channels * state + (batch * channels * length if has_D else 0)


def _flops_from_shapes(delta: Sequence[int], A: Sequence[int], D: Sequence[int] | None,
                       route: Sequence[int] | None) -> int:
    batch, channels, length = delta  # delta, not u: a shared u has KD / K channels
    steps = length if route is None else route[1]
    return scan_flops(batch, channels, length, steps, A[1], D is not None)


@register_flop_formula(torch.ops.vssm.selective_scan)
def _forward_flops(u_shape, delta_shape, A_shape, B_shape, C_shape, D_shape, z_shape, bias_shape, route_shape,
                   *args, out_shape=None, **kwargs) -> int:
    return _flops_from_shapes(delta_shape, A_shape, D_shape, route_shape)


@register_flop_formula(torch.ops.vssm.selective_scan_backward)
def _backward_flops(grad_shape, u_shape, delta_shape, A_shape, B_shape, C_shape, D_shape, z_shape, bias_shape,
                    route_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * _flops_from_shapes(delta_shape, A_shape, D_shape, route_shape)


def selective_scan_fvcore_handle(inputs: list, outputs: list) -> int:
    """fvcore op handle for `vssm::selective_scan` (jit values in schema order); same count as the FLOP formula."""
    from fvcore.nn.jit_handles import get_shape

    def shape(i: int) -> list[int] | None:
        return None if inputs[i].type().kind() == "NoneType" else get_shape(inputs[i])

    return _flops_from_shapes(shape(1), shape(2), shape(5), shape(8))


def fvcore_handles() -> dict[str, Callable[[list, list], int]]:
    """`{op name: handle}` for fvcore: `FlopCountAnalysis(model, x).set_op_handle(**kernels.fvcore_handles())`."""
    return {"vssm::selective_scan": selective_scan_fvcore_handle}

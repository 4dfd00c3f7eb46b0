"""`vssm::selective_scan` as a torch.library custom op: autograd, fake (meta) kernels, FLOP formula, fvcore handle.

The public op and its backward are `torch.library.triton_op`s:

    vssm::selective_scan(u, delta, A, B, C, D?, z?, delta_bias?, route?, delta_softplus, out_float32, backend,
                         fold=1) -> (out, last_state, saved)
                         B, C: (batch, G, N, L); out: (batch, KD/fold, L); `saved` is what the backend keeps
    vssm::selective_scan_backward(grad_out, ..., saved, delta_softplus, backend, fold=1) -> [du, ddelta, dA, dB, dC,
                                                                                 dD, dz, ddelta_bias] (empty if absent)

With the triton backend they launch the kernels of `kernels.triton_scan` through `wrap_triton`, so torch.compile
sees the kernels. The reference and cpu backends run inside `vssm::selective_scan_opaque(_backward)`, plain
`custom_op`s that torch.compile and opcheck treat as opaque (a C loop and a Python loop cannot be traced).

`backend` is the value of a `kernels.Backend`, resolved by `kernels.selective_scan` before the call, so a compiled
graph keeps the backend it was traced with.

With a route of K rows, u may be (batch, KD/S, L) for S dividing K, channel d reading u[:, d % (KD/S)] ("shared
u"; S = K: every route reads the same u); du then has u's shape (the contributions of the channels reading a row
summed). KD is always delta's channel count. `fold` = F adds channel d's output into out[:, d % (KD/F)]
(`kernels.selective_scan`).

FLOPs (FlopCounterMode and fvcore): 9·batch·L'·KD·N for the scan (L' = scanned steps, = L without a route) plus
batch·KD·L when D is given; a fold's adds are not counted, so a model counts the same whether its routes are summed
by the scan or after it (neither counter counts an `aten.sum`: the published conventions of vssm.analysis.published
rest on that); the backward counts twice the forward (FlopCounterMode's convention for matmuls).
Use the fvcore handle as `FlopCountAnalysis(model, x).set_op_handle(**kernels.fvcore_handles())`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import register_flop_formula

from .backends import IMPLEMENTATIONS
from .reference import compute_dtype
from .scan_tensors import ScanTensors
from .validation import check_route_values

# Written out once for the public op and its opaque twin (and once for their backwards) rather than inferred from
# four annotated signatures; torch.library takes plain tensors, the functions below pass them on as `ScanTensors`.
_TENSORS = ("Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, Tensor? delta_bias, "
            "Tensor? route")
SCHEMA = f"({_TENSORS}, bool delta_softplus, bool out_float32, str backend, int fold=1) -> (Tensor, Tensor, Tensor)"
BACKWARD_SCHEMA = (f"(Tensor grad_out, {_TENSORS}, Tensor saved, bool delta_softplus, str backend, int fold=1) "
                   "-> Tensor[]")


@torch.library.custom_op("vssm::selective_scan_opaque", mutates_args=(), schema=SCHEMA)
def selective_scan_opaque(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus: bool, out_float32: bool,
                          backend: str, fold: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if route is not None:
        check_route_values(route, u.shape[-1])
    scan = ScanTensors(u, delta, A, B, C, D, z, delta_bias, route)
    return IMPLEMENTATIONS[backend].forward(scan, delta_softplus, out_float32, fold)


@selective_scan_opaque.register_fake
def _(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus, out_float32, backend, fold=1):
    shape = ScanTensors(u, delta, A, B, C, D, z, delta_bias, route).sizes()
    cdt = compute_dtype(u.dtype)
    out = u.new_empty(shape.batch, shape.channels // fold, shape.length, dtype=cdt if out_float32 else u.dtype)
    last_state = u.new_empty(shape.batch, shape.channels, shape.state, dtype=cdt)
    saved = u.new_empty(IMPLEMENTATIONS[backend].saved_shape(shape), dtype=torch.float32)
    return out, last_state, saved


def _gradients(grads: Sequence[torch.Tensor | None], u: torch.Tensor) -> list[torch.Tensor]:
    """A backend's gradients as the op returns them: an empty tensor for an absent input (`Tensor[]` holds no
    None), contiguous (the triton backend's already are)."""
    return [u.new_empty(0) if g is None else g.contiguous() for g in grads]


@torch.library.custom_op("vssm::selective_scan_opaque_backward", mutates_args=(), schema=BACKWARD_SCHEMA)
def selective_scan_opaque_backward(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved, delta_softplus: bool,
                                   backend: str, fold: int = 1) -> list[torch.Tensor]:
    scan = ScanTensors(u, delta, A, B, C, D, z, delta_bias, route)
    return _gradients(IMPLEMENTATIONS[backend].backward(grad_out, scan, saved, delta_softplus, fold), u)


@selective_scan_opaque_backward.register_fake
def _(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved, delta_softplus, backend, fold=1):
    like = [u, delta, A, B, C, D, z, delta_bias]
    return [u.new_empty(0) if t is None else torch.empty_like(t, memory_format=torch.contiguous_format)
            for t in like]


@torch.library.triton_op("vssm::selective_scan", mutates_args=(), schema=SCHEMA)
def selective_scan_op(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus: bool, out_float32: bool,
                      backend: str, fold: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one public op. A `traced` backend (triton): kernels launched through wrap_triton (torch.compile sees
    them); otherwise the opaque op above. Also serves as the fake implementation (triton_op traces it with fake
    tensors)."""
    implementation = IMPLEMENTATIONS[backend]
    if implementation.traced:
        return implementation.forward(ScanTensors(u, delta, A, B, C, D, z, delta_bias, route), delta_softplus,
                                      out_float32, fold)
    return torch.ops.vssm.selective_scan_opaque(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus,
                                                out_float32, backend, fold)


@torch.library.triton_op("vssm::selective_scan_backward", mutates_args=(), schema=BACKWARD_SCHEMA)
def selective_scan_backward_op(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved, delta_softplus: bool,
                               backend: str, fold: int = 1) -> list[torch.Tensor]:
    implementation = IMPLEMENTATIONS[backend]
    if implementation.traced:
        scan = ScanTensors(u, delta, A, B, C, D, z, delta_bias, route)
        return _gradients(implementation.backward(grad_out, scan, saved, delta_softplus, fold), u)
    return torch.ops.vssm.selective_scan_opaque_backward(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved,
                                                         delta_softplus, backend, fold)


def _setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
    *tensors, delta_softplus, _, backend, fold = inputs
    ctx.save_for_backward(*tensors, output[2])
    ctx.delta_softplus, ctx.backend, ctx.fold = delta_softplus, backend, fold
    ctx.present = [t is not None for t in tensors[5:8]]  # D, z, delta_bias
    ctx.set_materialize_grads(False)  # no zero gradients for last_state and the saved states


def _backward(ctx: Any, grad_out: torch.Tensor | None, _grad_last: None, _grad_saved: None) -> tuple:
    if grad_out is None:
        return (None,) * 13
    grads = torch.ops.vssm.selective_scan_backward(grad_out, *ctx.saved_tensors, ctx.delta_softplus, ctx.backend,
                                                   ctx.fold)
    du, ddelta, dA, dB, dC, dD, dz, ddelta_bias = grads
    has_D, has_z, has_bias = ctx.present
    return (du, ddelta, dA, dB, dC, dD if has_D else None, dz if has_z else None,
            ddelta_bias if has_bias else None, None, None, None, None, None)


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
                   delta_softplus=False, out_float32=False, backend="", fold=1, *, out_shape=None, **kwargs) -> int:
    return _flops_from_shapes(delta_shape, A_shape, D_shape, route_shape)


@register_flop_formula(torch.ops.vssm.selective_scan_backward)
def _backward_flops(grad_shape, u_shape, delta_shape, A_shape, B_shape, C_shape, D_shape, z_shape, bias_shape,
                    route_shape, saved_shape=None, delta_softplus=False, backend="", fold=1, *, out_shape=None,
                    **kwargs) -> int:
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

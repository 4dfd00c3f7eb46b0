"""`selective_scan`: the one public entry of the op, mamba_ssm's `selective_scan_fn` contract plus `route`."""

from __future__ import annotations

import torch

from . import op  # noqa: F401  (registers vssm::selective_scan)
from .backends import IMPLEMENTATIONS, Backend, select_backend
from .eager import SelectiveScanFunction, direct_call_allowed
from .reference import compute_dtype, fold_channels
from .route_order import RouteLayout, gather_channels, gather_groups, read_route, scatter_channels
from .scan_tensors import ScanTensors
from .validation import check_fold, check_inputs, check_route_values


@torch.compiler.assume_constant_result
def _backend_name(device: torch.device, dtype: torch.dtype) -> str:
    # Evaluated once while torch.compile traces (env var, context manager, compiler probe), constant in the graph.
    return select_backend(device, dtype).value


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    out_float32: bool = False,
    route: torch.Tensor | None = None,
    fold: int = 1,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Selective scan (Mamba S6): the recurrence `kernels.reference` defines (`_sequential_recurrence`, along each
    route with `route`), on the backend `kernels.backends` picks.

    Args:
        u: (batch, KD, L), or (batch, KD/K, L) with a `route` of K rows: "shared u", every route reads the same u
            (route k's channel j reads u[:, j]), exactly as if the K-fold copy (batch, KD, L) were passed, without
            making it; du then has u's shape (the routes' contributions summed). More generally u may have KD/S
            channels for any S dividing K, channel d reading u[:, d % (KD/S)]: route k reads block k % (K/S) of u,
            e.g. u = [x; x transposed] shared by the K = 4 cross routes in their base layouts (vssm.layers.ss2d).
        delta, z: (batch, KD, L), one of float32/float16/bfloat16/float64 (all of u's dtype); delta is pre-bias,
            pre-softplus.
        A: (KD, N) float32 (float64 allowed with float64 u).  D, delta_bias: (KD,) float32 (or float64).
        B, C: (batch, G, N, L) with KD % G == 0 (channel d uses group d // (KD / G)), or (batch, N, L) for G = 1.
        delta_softplus: apply softplus (threshold 20) to delta + delta_bias.
        return_last_state: also return the final state (batch, KD, N) in float32 (float64 for float64 u);
            no gradient flows through it.
        out_float32: return y in float32 even for float16/bfloat16 inputs.
        route: optional int (K, L') with KD % K == 0: u/delta/B/C/z are given in token order and channel block k
            of K equal blocks is scanned along route[k]; -1 is a padding step (u, B, C and pre-bias delta zero:
            its decay still applies) whose output is dropped. y is returned in token order.
        fold: F, summing the outputs of channels that fold together in the scan's epilogue: channel d adds its
            (gated) output into y[:, d % (KD/F)], in float32, rounded once to y's dtype; the mirror of a shared u.
            With a route of K rows F must divide K (routes k, k + K/F, ... fold onto each other: route k's block
            reads u's block k % (K/S) and writes y's block k % (K/F)); without a route F must divide KD. The
            gradient of channel d reads grad_y[:, d % (KD/F)]. last_state keeps all KD channels. 1: no fold.

    Returns:
        y: (batch, KD/fold, L), gated by silu(z) when z is given; or (y, last_state) with `return_last_state`.

    The backend is chosen by device (see `kernels.backends`), overridable by `VSSM_SCAN_BACKEND` or `use_backend`;
    `use_custom_op` and `use_route_reading` switch how eager calls reach it. Meta tensors get the op's fake kernel
    (shapes and dtypes only) whatever backend is requested. torch.fx symbolic tracing records the call as one node
    (a leaf) instead of entering it.
    """
    if isinstance(u, torch.fx.Proxy):
        kwargs = dict(D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
                      return_last_state=return_last_state, out_float32=out_float32, route=route, fold=fold)
        return u.tracer.create_proxy("call_function", selective_scan, (u, delta, A, B, C), kwargs)
    shape = check_inputs(ScanTensors(u, delta, A, B, C, D, z, delta_bias, route))
    check_fold(fold, shape, route is not None)
    meta = u.device.type == "meta"
    eager = not meta and not torch.compiler.is_compiling()
    if route is not None and eager:
        # Not while tracing (torch.compile, torch.export): reading the route's values there is a data-dependent guard
        # that breaks the graph; the opaque op checks again (cached) inside compiled graphs, and the models' routes
        # are built and checked by vssm.scans before any trace.
        check_route_values(route, shape.length)
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    scan = ScanTensors(u, delta, A, B, C, D, z, delta_bias, route)
    backend = Backend.REFERENCE.value if meta else _backend_name(u.device, u.dtype)
    direct = not meta and direct_call_allowed(*scan)
    layout, gathered = None, False
    if route is not None and eager:
        layout, gathered = read_route(route, shape.length, IMPLEMENTATIONS[backend].gathers_scattered_routes)
    if gathered:
        y, last_state = _scan_in_route_order(scan, layout, delta_softplus, out_float32, backend, direct, fold)
    else:
        if layout is not None:
            scan = scan._replace(route=layout.kernel_route)
        y, last_state = _scan_by_function_or_op(scan, delta_softplus, out_float32, backend, direct, fold)
    return (y, last_state.detach()) if return_last_state else y


def _scan_by_function_or_op(scan: ScanTensors, delta_softplus: bool, out_float32: bool, backend: str,
                            direct: bool, fold: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, last_state) from the eager Function (kernels.eager) when `direct`, else from the custom op."""
    if direct:
        return SelectiveScanFunction.apply(Backend(backend), delta_softplus, out_float32, fold, *scan)
    y, last_state, _ = torch.ops.vssm.selective_scan(*scan, delta_softplus, out_float32, backend, fold)
    return y, last_state


def _scan_in_route_order(scan: ScanTensors, layout: RouteLayout, delta_softplus: bool, out_float32: bool,
                         backend: str, direct: bool, fold: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The scan of copies of the inputs gathered along the route (kernels.route_order), y put back in token order;
    autograd carries the gradients back through the gathers. A fold sums the routes' outputs after they are back in
    token order (in route order the routes that fold together hold different tokens at a step): the scan's float32
    outputs, summed, rounded once."""
    u, delta, A, B, C, D, z, delta_bias, route = scan
    channels = delta.shape[1]
    gathered = ScanTensors(
        gather_channels(u, route, layout, channels), gather_channels(delta, route, layout, channels), A,
        gather_groups(B, route, layout), gather_groups(C, route, layout), D,
        None if z is None else gather_channels(z, route, layout, channels), delta_bias,
    )
    if fold == 1:
        y, last_state = _scan_by_function_or_op(gathered, delta_softplus, out_float32, backend, direct, 1)
        return scatter_channels(y, route, layout), last_state
    y, last_state = _scan_by_function_or_op(gathered, delta_softplus, True, backend, direct, 1)
    y = fold_channels(scatter_channels(y, route, layout), fold)
    return y.to(compute_dtype(u.dtype) if out_float32 else u.dtype), last_state

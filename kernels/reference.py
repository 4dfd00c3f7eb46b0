"""The ground truth: a sequential selective scan over L in plain PyTorch; `_sequential_recurrence` is the definition
of the recurrence every backend computes, and autograd through it defines their gradients.

Works in any floating dtype: float64 inputs are computed in float64 (the reference every fast path is tested
against); float32/float16/bfloat16 inputs are upcast to float32 right after loading, exactly like the fast kernels.
Also the `reference` backend of `kernels.selective_scan` (`selective_scan_ref_fwd`, `selective_scan_ref_bwd`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .scan_tensors import ScanTensors

SOFTPLUS_THRESHOLD = 20.0  # softplus(x) = x above this, as in mamba_ssm's CUDA op


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other input dtype is computed in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def route_blocks(channels: int, routes: int, groups: int) -> tuple[list[int], list[int]]:
    """Split KD channels into lcm(K, G) equal blocks; block j uses route k[j] and B/C group g[j].

    Both partitions are contiguous, so their common refinement is lcm(K, G) equal contiguous blocks.
    """
    blocks = math.lcm(routes, groups)
    return [j * routes // blocks for j in range(blocks)], [j * groups // blocks for j in range(blocks)]


def expand_shared_u(u: torch.Tensor, copies: int) -> torch.Tensor:
    """Shared u `(batch, U, L)` as the `(batch, copies·U, L)` tensor it stands for: channel d reads u[:, d % U]
    (copies = K: route k's channel j reads u[:, j]; copies = K/2 with U = 2E: route k reads u's block k % 2)."""
    batch, channels, length = u.shape
    return u.unsqueeze(1).expand(batch, copies, channels, length).reshape(batch, copies * channels, length)


def fold_channels(y: torch.Tensor, fold: int) -> torch.Tensor:
    """`(batch, KD, L)` -> `(batch, KD/F, L)` for fold F: channel d added into channel d % (KD/F), the F blocks
    summed in y's dtype (the compute dtype: the scan's outputs are folded before their one rounding)."""
    if fold == 1:
        return y
    batch, channels, length = y.shape
    return y.view(batch, fold, channels // fold, length).sum(1)


def gather_route(x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
    """Read `x: (batch, K·E, L)` in token order along the routes: `(batch, K·E, L')`, zero at padding (-1) steps.

    Channel block k (of K equal blocks) is read along `route[k]`.
    """
    batch, channels, length = x.shape
    routes, steps = route.shape
    index = route.clamp(min=0).long()[None, :, None, :].expand(batch, routes, channels // routes, steps)
    gathered = x.view(batch, routes, channels // routes, length).gather(-1, index)
    pad = (route < 0)[None, :, None, :]
    return gathered.masked_fill(pad, 0).reshape(batch, channels, steps)


def scatter_route(y: torch.Tensor, route: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse of `gather_route`: write `y: (batch, K·E, L')` back to token positions `(batch, K·E, L)`.

    Padding steps go to a spare slot L that is cut off.
    """
    batch, channels, steps = y.shape
    routes = route.shape[0]
    index = torch.where(route >= 0, route, length).long()[None, :, None, :]
    index = index.expand(batch, routes, channels // routes, steps)
    out = y.new_zeros(batch, routes, channels // routes, length + 1)
    out = out.scatter(-1, index, y.view(batch, routes, channels // routes, steps))
    return out[..., :length].reshape(batch, channels, length)


def gather_route_bc(x: torch.Tensor, route: torch.Tensor, channels: int) -> torch.Tensor:
    """Read B or C `(batch, G, N, L)` along the routes: `(batch, lcm(K, G), N, L')`, one group per channel block."""
    batch, groups, state, _ = x.shape
    routes, steps = route.shape
    route_of, group_of = route_blocks(channels, routes, groups)
    rows = route[route_of]  # (M, L')
    index = rows.clamp(min=0).long()[None, :, None, :].expand(batch, len(route_of), state, steps)
    gathered = x[:, group_of].gather(-1, index)
    return gathered.masked_fill((rows < 0)[None, :, None, :], 0)


def _sequential_recurrence(scan: ScanTensors, delta_softplus: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Step by step over L in the dtype of its (already upcast) tensors, B, C: (batch, G, N, L), no route:
    h[t] = exp(delta[t] A) h[t-1] + delta[t] u[t] B[t], y[t] = <h[t], C[t]> + D u[t], gated by silu(z[t]), with
    delta = softplus(delta + delta_bias) under `delta_softplus`. Returns y and the last state h[L-1]."""
    u, delta, A, B, C, D, z, delta_bias, _ = scan
    batch, channels, steps = u.shape
    groups, state = B.shape[1], A.shape[1]
    per_group = channels // groups
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta, threshold=SOFTPLUS_THRESHOLD)
    A = A.view(groups, per_group, state)
    delta_g = delta.view(batch, groups, per_group, steps)
    u_g = u.view(batch, groups, per_group, steps)
    h = u.new_zeros(batch, groups, per_group, state)
    ys = []
    for t in range(steps):
        dt = delta_g[..., t, None]
        h = torch.exp(dt * A) * h + (dt * u_g[..., t, None]) * B[:, :, None, :, t]
        ys.append((h * C[:, :, None, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1).view(batch, channels, steps)
    if D is not None:
        y = y + D[:, None] * u
    if z is not None:
        y = y * F.silu(z)
    return y, h.reshape(batch, channels, state)


def selective_scan_ref(
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
    """Reference selective scan; same contract as `kernels.selective_scan` (no argument checks here).

    u, delta, z: (batch, KD, L)   A: (KD, N)   B, C: (batch, G, N, L) or (batch, N, L)   D, delta_bias: (KD,)
    route: (K, L') int, -1 = padding step. Returns y: (batch, KD/fold, L) in u's dtype (float32 if `out_float32`,
    float64 stays float64) and, with `return_last_state`, last_state: (batch, KD, N) in the compute dtype.
    With `route` it is literally gather -> scan -> scatter; u of (batch, KD/S, L) ("shared u") is first expanded to
    the S-fold copy it stands for, which is the definition of that mode; `fold` = F then sums the (gated) outputs
    of channels d, d + KD/F, ... in the compute dtype (`fold_channels`), rounded once.
    """
    out_dtype = compute_dtype(u.dtype) if out_float32 else u.dtype
    cdt = compute_dtype(u.dtype)
    length = u.shape[-1]
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    if route is not None:
        channels = delta.shape[1]
        if u.shape[1] != channels:
            u = expand_shared_u(u, channels // u.shape[1])
        u, delta = gather_route(u, route), gather_route(delta, route)
        z = gather_route(z, route) if z is not None else None
        B, C = gather_route_bc(B, route, channels), gather_route_bc(C, route, channels)

    upcast = ScanTensors(*(None if t is None else t.to(cdt) for t in (u, delta, A, B, C, D, z, delta_bias)))
    y, last_state = _sequential_recurrence(upcast, delta_softplus)
    if route is not None:
        y = scatter_route(y, route, length)
    y = fold_channels(y, fold).to(out_dtype)
    return (y, last_state) if return_last_state else y


def selective_scan_ref_fwd(scan: ScanTensors, delta_softplus: bool, out_float32: bool,
                           fold: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `reference` backend's forward: y, last_state and an empty tensor (it saves nothing for its backward)."""
    *tensors, route = scan
    y, last_state = selective_scan_ref(*tensors, delta_softplus=delta_softplus, return_last_state=True,
                                       out_float32=out_float32, route=route, fold=fold)
    return y.contiguous(), last_state.contiguous(), scan.u.new_empty(0, dtype=torch.float32)


def selective_scan_ref_bwd(grad_out: torch.Tensor, scan: ScanTensors, saved: torch.Tensor, delta_softplus: bool,
                           fold: int = 1) -> list[torch.Tensor | None]:
    """The `reference` backend's backward (`saved` is empty): the gradients of `ScanTensors` order, None for an
    absent input, by autograd through `selective_scan_ref`."""
    # torch.func.vjp, not torch.autograd.grad: inside the op, a kernel runs below the autograd dispatch key.
    *inputs, route = scan
    present = [i for i, t in enumerate(inputs) if t is not None]

    def run(*tensors: torch.Tensor) -> torch.Tensor:
        args = list(inputs)
        for i, t in zip(present, tensors, strict=True):
            args[i] = t
        return selective_scan_ref(*args, delta_softplus=delta_softplus, route=route, fold=fold)

    y, vjp = torch.func.vjp(run, *[inputs[i] for i in present])
    grads = iter(vjp(grad_out.to(y.dtype)))
    return [next(grads) if t is not None else None for t in inputs]

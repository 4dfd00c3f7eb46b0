"""Mamba's selective SSM (S6) for K scan routes: the initialisation, the projections and the scan that VMamba's `SS2D`
and the Mamba mixers' `SSMCore` share.

For route k, with inner width E, state size N and delta rank R, on the route's input u (E, L):

    x_dbl = x_proj[k] @ u          (R + 2N, L) -> dts (R, L), B (N, L), C (N, L)
    delta = dt_proj[k] @ dts       (E, L)       its bias is added in the scan, before the softplus
    y     = selective_scan(u, delta, A = -exp(A_log), B, C, D, delta_bias, softplus)          (E, L)

The K routes run as ONE `kernels.selective_scan` call: they are K channel blocks of K·E channels and their B / C are
the scan's K groups, which gives the numbers of K separate calls (a channel's recurrence reads only its own block).
The modules keep their parameters under the names of the released checkpoints and hand them here stacked
(`SSMWeights`).
"""

from __future__ import annotations

import enum
import math
from typing import NamedTuple

import torch
from torch import Tensor

from vssm import kernels


class DtInit(enum.Enum):
    """How the delta projection's weight is initialised (mamba_ssm's `dt_init`)."""

    RANDOM = "random"  # U(-s, s), s = dt_scale / sqrt(dt_rank)
    CONSTANT = "constant"  # s everywhere


class SSMWeights(NamedTuple):
    """The SSM parameters of K routes, stacked route by route.

    x_proj: (K, R + 2N, E).  dt_proj: (K, E, R).  delta_bias: (K·E,).  A_log: (K·E, N).  D: (K·E,).
    """

    x_proj: Tensor
    dt_proj: Tensor
    delta_bias: Tensor
    A_log: Tensor
    D: Tensor


@torch.no_grad()
def init_ssm_parameters(
    dt_proj_weight: Tensor,
    dt_proj_bias: Tensor,
    A_log: Tensor,
    D: Tensor,
    *,
    dt_min: float,
    dt_max: float,
    dt_init_floor: float,
    dt_scale: float = 1.0,
    dt_init: DtInit = DtInit.RANDOM,
) -> None:
    """Mamba's initialisation, in place, of one route's parameters or of K routes' stacked along a leading dim.

    dt_proj_weight (..., E, R): U(±s), or s everywhere with `DtInit.CONSTANT`, s = dt_scale / sqrt(R), so that delta
    keeps the variance of its input. dt_proj_bias (..., E): softplus^-1(dt), dt log-uniform in [dt_min, dt_max] and at
    least dt_init_floor, so that the time steps start spread over that range. A_log (..., N): log(1, ..., N) for
    every channel (S4D-real, A = -(1, ..., N)). D (...): 1.

    Both draws use the global generator, the weight's first (mamba_ssm's order), so a seeded model is reproducible.
    """
    std = dt_proj_weight.shape[-1] ** -0.5 * dt_scale
    if dt_init is DtInit.CONSTANT:
        dt_proj_weight.fill_(std)
    else:
        dt_proj_weight.uniform_(-std, std)
    dt = torch.rand_like(dt_proj_bias, dtype=torch.float32)
    dt = torch.exp(dt * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_init_floor)
    dt_proj_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
    state = torch.arange(1, A_log.shape[-1] + 1, dtype=torch.float32, device=A_log.device)
    A_log.copy_(torch.log(state).expand_as(A_log))
    D.fill_(1.0)


def _contiguous(t: Tensor, dtype: torch.dtype) -> Tensor:
    """`t` in `dtype`, contiguous, in at most one copy (a cast and a layout change in one pass, not two)."""
    if t.dtype == dtype:
        return t.contiguous()  # `to` returns a tensor already in `dtype` as it is, whatever the memory format
    return t.to(dtype, memory_format=torch.contiguous_format)


def selective_ssm(
    u: Tensor,
    weights: SSMWeights,
    dtype: torch.dtype,
    *,
    z: Tensor | None = None,
    route: Tensor | None = None,
    out_float32: bool = False,
    fold: int = 1,
) -> Tensor:
    """Every route's selective SSM with its own parameters, in one scan.

    Args:
        u: (B, K, E, L) the routes' inputs, each in its route's visit order; or, with `route`, (B, E, L) in token
            order, read by every route ("shared u": the projections, pointwise in L, then run once for all K routes
            and the scan reads each route through its row of `route`, without K gathered copies); or (B, S·E, L)
            with S dividing K, S copies of the input (each in its own token order), route k reading copy k % S.
        weights: the K routes' parameters.
        dtype: the dtype u, delta, B, C and z enter the scan in (the scan's state is float32, float64 for float64);
            A, D and the delta bias are cast to `kernels.compute_dtype(dtype)`.
        z: optional (B, K, E, L) gate: the output is y · silu(z).
        route: optional (K, L') route table of `kernels.selective_scan` (token indices, -1 = padding step).
        out_float32: return float32 (float64 stays) whatever `dtype`.
        fold: F dividing K: the scan sums routes k, k + K/F, ... into one output in its epilogue
            (`kernels.selective_scan`'s fold; F = K: all routes summed), instead of K outputs summed afterwards.

    Returns:
        y: (B, K/F, E, L), in `dtype` (see `out_float32`); with `route`, in token order.
    """
    routes, projected, inner = weights.x_proj.shape
    state = weights.A_log.shape[-1]
    batch, length = u.shape[0], u.shape[-1]
    if u.dim() == 3 and u.shape[1] != inner:
        # S copies of u (S dividing K), route k reading copy k % S: each copy's routes projected in one matmul
        copies = u.shape[1] // inner
        per_copy = routes // copies
        weight = weights.x_proj.view(per_copy, copies, projected, inner).transpose(0, 1)
        x_dbl = torch.matmul(weight.reshape(copies, per_copy * projected, inner), u.view(batch, copies, inner, length))
        x_dbl = x_dbl.view(batch, copies, per_copy, projected, length).transpose(1, 2).reshape(
            batch, routes, projected, length)
    elif u.dim() == 3:
        x_dbl = torch.matmul(weights.x_proj.reshape(-1, inner), u).view(batch, routes, projected, length)
    else:
        x_dbl = torch.matmul(weights.x_proj, u)  # (B, K, R + 2N, L)
        u = _contiguous(u, dtype).view(batch, routes * inner, length)
    dts, b, c = x_dbl.split([projected - 2 * state, state, state], dim=2)
    delta = torch.matmul(weights.dt_proj, dts).reshape(batch, routes * inner, length)
    param_dtype = kernels.compute_dtype(dtype)
    y = kernels.selective_scan(
        u.to(dtype),
        delta.to(dtype),
        -torch.exp(weights.A_log.to(param_dtype)),
        _contiguous(b, dtype),
        _contiguous(c, dtype),
        weights.D.to(param_dtype),
        z=None if z is None else _contiguous(z, dtype).view(batch, routes * inner, length),
        delta_bias=weights.delta_bias.to(param_dtype),
        delta_softplus=True,
        out_float32=out_float32,
        route=route,
        fold=fold,
    )
    return y.view(batch, routes // fold, inner, length)

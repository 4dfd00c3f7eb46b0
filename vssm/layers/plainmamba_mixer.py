"""PlainMamba's token mixer (`PlainMamba2D` in ChenhongyiYang/PlainMamba): a 2-D depthwise convolution, then one
selective scan per route with direction-aware B.

For tokens x (B, L, D) on an H × W grid, E = expand·D, N = d_state, K routes of L steps:

    x, z   = in_proj(x).chunk(2)                        (B, L, E) each
    u      = silu(conv2d(x as an E × H × W map))        (B, L, E)   depthwise k × k, "same" padding
    dt, B, C = x_proj(u) split                          in token (raster) order
    delta  = dt_proj(dt) + dt_proj.bias                 the bias twice: the original's dt_proj output already has it
                                                        and its scan call adds it again (delta_bias)
    route k reads u along its route; at step t its delta is dt_proj(dt)[t], its C is C[t] and its B is
        B[t] + direction_Bs[d_k(t)], with d_k(t) the direction of the move into step t (`StepDirection`)
    y      = (sum over routes of each route's scan output, put back in token order) · silu(z)
    out    = out_proj(y)

Only u follows the route: delta, B and C are read at the step's index in token order, not at the token the route
visits (the original gathers `x_conv[:, o]` alone and passes dt, B, C unpermuted; the golden fixture's
`dt_B_C_gathered_along_route_differs` check shows that gathering them too changes the output). The SSM parameters
(A_log, D, dt_proj, x_proj) are shared by the K routes, so `scan=` can swap the order without changing a weight.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import Tensor, nn

from vssm import kernels
from vssm.layers.fx import fx_leaf
from vssm.layers.selective_ssm import init_ssm_parameters
from vssm.layers.ssm_core import SSMConfig

__all__ = ["PlainMamba2D", "PlainRoutes", "StepDirection", "plain_routes", "step_directions"]


class StepDirection(enum.IntEnum):
    """The row of `direction_Bs` a route step reads: how the route moved into the step's token."""

    START = 0
    RIGHT = 1
    LEFT = 2
    UP = 3
    DOWN = 4


def step_directions(route: Tensor, width: int) -> Tensor:
    """(K, L) routes (raster token indices, no padding) on a grid of `width` columns -> (K, L) `StepDirection`s.

    Step 0 is START; step t > 0 is RIGHT / LEFT when the route stays in its row (by the column's change), else UP /
    DOWN (by the row's change). On PlainMamba's continuous routes every move is to a 4-neighbour, and this is the
    original's table; another order's jumps (a raster route's return to column 0) are named by their row change.
    """
    rows, cols = torch.div(route, width, rounding_mode="floor"), route % width
    row_step, col_step = rows[:, 1:] - rows[:, :-1], cols[:, 1:] - cols[:, :-1]
    horizontal = torch.where(col_step > 0, int(StepDirection.RIGHT), int(StepDirection.LEFT))
    vertical = torch.where(row_step < 0, int(StepDirection.UP), int(StepDirection.DOWN))
    moves = torch.where(row_step == 0, horizontal, vertical)
    start = torch.full_like(route[:, :1], int(StepDirection.START))
    return torch.cat([start, moves], dim=1)


class PlainRoutes(NamedTuple):
    """An order's routes on one grid as the mixer reads them, each (K, L) int64: `route[k, t]` the token step t of
    route k visits, `inverse[k, i]` the step at which route k visits token i, `directions` the `StepDirection`s."""

    route: Tensor
    inverse: Tensor
    directions: Tensor


def plain_routes(route: Tensor, height: int, width: int) -> PlainRoutes:
    """`PlainRoutes` of a (K, L') route table on an H × W grid. The routes must each visit every token once (L' = L,
    no padding steps): delta, B and C are read at the step's index in token order, which needs a step per token."""
    length = height * width
    visits_all = route.shape[1] == length and bool(
        (route.sort(dim=1).values == torch.arange(length, device=route.device)).all()
    )
    if not visits_all:
        raise ValueError(f"PlainMamba needs routes that each visit every token of the {height}×{width} grid once "
                         f"({length} steps, no padding), got {route.shape[1]}-step routes that do not")
    return PlainRoutes(route, route.argsort(dim=1), step_directions(route, width))


class PlainMamba2D(nn.Module):
    """PlainMamba's mixer; parameters under the original's names (`in_proj`, `conv2d`, `x_proj`, `dt_proj`, `A_log`,
    `D`, `out_proj`, `direction_Bs`).

    Args:
        d_model: token width D.
        config: d_state N, expand, dt_rank (None: ceil(D / 16)), the dt initialisation; `d_conv` is the 2-D kernel
            size (odd), `conv_bias` its bias, `proj_bias` the biases of in_proj / out_proj (PlainMamba: both on).
    """

    def __init__(
        self,
        d_model: int,
        config: SSMConfig,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        if config.d_conv % 2 != 1:
            raise ValueError(
                f"PlainMamba's 2-D convolution needs an odd kernel size (same padding), got {config.d_conv}"
            )
        inner, rank, state = config.inner_dim(d_model), config.rank(d_model), config.d_state
        self.d_inner, self.d_state, self.dt_rank = inner, state, rank
        self.in_proj = nn.Linear(d_model, 2 * inner, bias=config.proj_bias, **dd)
        self.conv2d = nn.Conv2d(inner, inner, config.d_conv, padding=config.d_conv // 2, groups=inner,
                                bias=config.conv_bias, **dd)
        self.x_proj = nn.Linear(inner, rank + 2 * state, bias=False, **dd)
        self.dt_proj = nn.Linear(rank, inner, bias=True, **dd)
        self.A_log = nn.Parameter(torch.empty(inner, state, **dd))
        self.D = nn.Parameter(torch.empty(inner, **dd))
        self.out_proj = nn.Linear(inner, d_model, bias=config.proj_bias, **dd)
        self.direction_Bs = nn.Parameter(torch.empty(len(StepDirection), state, **dd))
        if not self.A_log.is_meta:
            init_ssm_parameters(self.dt_proj.weight, self.dt_proj.bias, self.A_log, self.D, dt_min=config.dt_min,
                                dt_max=config.dt_max, dt_init_floor=config.dt_init_floor, dt_scale=config.dt_scale,
                                dt_init=config.dt_init)
            trunc_normal_(self.direction_Bs, std=0.02)

    def forward(self, x: Tensor, grid: tuple[int, int], routes: PlainRoutes) -> Tensor:
        """x: (B, L, D) tokens of the H × W `grid`, read along `routes` (K routes) -> (B, L, D)."""
        batch, _, _ = x.shape
        height, width = grid
        x, z = self.in_proj(x).chunk(2, dim=-1)
        u = x.transpose(1, 2).reshape(batch, self.d_inner, height, width)
        u = F.silu(self.conv2d(u)).flatten(2)  # (B, E, L)
        dts, b, c = self.x_proj(u.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        # The bias counts twice, as in the original: once in dt_proj, once more as the scan's delta_bias.
        delta = self.dt_proj(dts).transpose(1, 2)  # (B, E, L)
        y = self.scan(u, delta, b.transpose(1, 2), c.transpose(1, 2), routes)
        return self.out_proj(y.transpose(1, 2) * F.silu(z))

    @fx_leaf  # picks the dtypes and reads the route tables
    def scan(self, u: Tensor, delta: Tensor, b: Tensor, c: Tensor, routes: PlainRoutes) -> Tensor:
        """u, delta: (B, E, L) and b, c: (B, N, L) in token order -> the K routes' outputs summed, (B, E, L)."""
        batch, _, length = u.shape
        route, num_routes = routes.route, routes.route.shape[0]
        b = b.unsqueeze(1) + self.direction_Bs[routes.directions].to(b.dtype).transpose(1, 2)  # (B, K, N, L)
        c = c.unsqueeze(1).expand(batch, num_routes, self.d_state, length)
        param_dtype = kernels.compute_dtype(u.dtype)
        gathered = u.unsqueeze(1).expand(batch, num_routes, self.d_inner, length)  # (B, K, E, L), one copy below
        gathered = gathered.gather(3, route[None, :, None, :].expand_as(gathered))
        y = kernels.selective_scan(
            gathered.reshape(batch, num_routes * self.d_inner, length),
            delta.to(u.dtype).repeat(1, num_routes, 1),
            (-torch.exp(self.A_log.to(param_dtype))).repeat(num_routes, 1),
            b.to(u.dtype).contiguous(),
            c.to(u.dtype).contiguous(),
            self.D.to(param_dtype).repeat(num_routes),
            delta_bias=self.dt_proj.bias.to(param_dtype).repeat(num_routes),
            delta_softplus=True,
        )
        y = y.view(batch, num_routes, self.d_inner, length)
        return y.gather(3, routes.inverse[None, :, None, :].expand_as(y)).sum(dim=1)  # each route in token order

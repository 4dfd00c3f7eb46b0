"""Base layouts of a scan order's routes: token orders in which every route is a walk between neighbours.

The Triton scan reads a route coalesced only where consecutive steps are consecutive tokens (forward or reversed
rasters); a route that jumps (VMamba's column scans, LocalMamba's windows) sends each step's load to its own memory
sector, 2 to 5 times slower on an H100 (benchmarks/h100/README.md). `kernels.selective_scan` therefore gathers
delta, u, B and C of such routes into route order and scatters y back, and SS2D then sums the K routes' float32
outputs: on vmamba_tiny that was 3.79 + 1.62 + 1.96 ms of the 32.4 ms an inference batch is predicted to take
(`benchmarks/gpu_model.md`: "route gathers", "route scatter", "aten.sum").

The per-route projections (x_proj, dt_proj) are pointwise in L, so they can run on u already permuted into a route's
order, as the original VMamba does with one copy per route (CrossScan). Routes that are each other's reverse (a
direction and its `_flip`) share one copy: in it both are walks between neighbours, one read backwards. So SS2D
permutes u once per *base layout* (VMamba's cross: the identity and the transposed grid, one transposed copy of u in
all), runs the projections there, scans every route in its base's coordinates (a neighbour walk: read in place) and
sums the routes sharing a base in that base's layout, before permuting the nb sums back to tokens and adding them.

Channel block i of the scan is route `order[i]` with base i % nb, so the op's shared u (`kernels.selective_scan`: u
of KD/S channels, channel d reading u[:, d % (KD/S)]) gives each route its base's copy without any further copy.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from vssm import scans
from vssm.scans.base import as_device, cached_table


class BaseKind(enum.Enum):
    """How a base layout permutes the H x W grid's tokens (raster index i·W + j).

    `RouteBases` holds the members' int values: torch.compile reads the cached tables as a constant, and cannot
    guard an enum member read from one (NameError while building the guards, torch 2.14)."""

    IDENTITY = 0  # the raster itself: no copy
    TRANSPOSE = 1  # the column-major raster: a transposed copy, transposed back as a strided read
    GATHER = 2  # any other permutation: an index gather, and the inverse gather back


@dataclass(frozen=True)
class RouteBases:
    """The base layouts of one order on one H x W grid and device.

    kinds: one `BaseKind` value per base (nb bases).  order: the routes in scan order, route `order[i]` being channel
    block i with base i % nb.  route: (K, L') int64, row i the steps of route `order[i]` as positions in its base (-1 at
    padding steps).  tokens: (nb, L) int64, the token at each position of a base.  positions: (nb, L) int64, the
    position of each token in a base.
    """

    height: int
    width: int
    kinds: tuple[int, ...]
    order: tuple[int, ...]
    route: Tensor
    tokens: Tensor
    positions: Tensor

    @property
    def num_bases(self) -> int:
        return len(self.kinds)


def to_bases(bases: RouteBases, x: Tensor, copies: int = 1) -> Tensor:
    """x: (B, E, H, W) -> (B, copies·nb·E, L): block i is x in base i % nb's token order. Its gradient is
    `from_bases`, its adjoint, in one pass (autograd's would zero-fill and add a buffer per block)."""
    if bases.kinds == (BaseKind.IDENTITY.value,) and copies == 1:
        return x.flatten(2)
    return _ToBases.apply(x, (bases.kinds, bases.height, bases.width), bases.tokens, bases.positions, copies)


def from_bases(bases: RouteBases, y: Tensor) -> Tensor:
    """y: (B, copies, nb, E, L), block (j, b) in base b's token order -> the sum of all blocks in token order
    (B, E, H, W): the routes sharing a base summed in it, then the nb sums permuted back. Its gradient is
    `to_bases`, its adjoint, written once per block."""
    return _FromBases.apply(y, (bases.kinds, bases.height, bases.width), bases.tokens, bases.positions)


def permute_groups(bases: RouteBases, x: Tensor, into_bases: bool) -> Tensor:
    """x: (B, K, E, L), channel group k in token order -> group k in base k % nb's order (`into_bases`), or back.
    For groups that each scan their own route (GroupMamba); bases of kind IDENTITY and TRANSPOSE only. Its gradient
    is the permutation the other way, in one pass."""
    if BaseKind.GATHER.value in bases.kinds:
        raise ValueError("permute_groups: expected identity and transposed bases only, got an index gather")
    return _PermuteGroups.apply(x, (bases.kinds, bases.height, bases.width), into_bases)


Grid = tuple[tuple[int, ...], int, int]  # the bases' `BaseKind` values, H, W


def _permute_groups(x: Tensor, grid: Grid, into_bases: bool) -> Tensor:
    """`permute_groups` without autograd."""
    kinds, height, width = grid
    batch, groups, inner, length = x.shape
    blocks = x.reshape(batch, groups // len(kinds), len(kinds), inner, length)
    out = torch.empty_like(blocks)
    for base, kind in enumerate(kinds):
        if kind == BaseKind.TRANSPOSE.value:
            rows, cols = (height, width) if into_bases else (width, height)
            out[:, :, base].unflatten(-1, (cols, rows)).copy_(blocks[:, :, base].unflatten(-1, (rows, cols)).mT)
        else:
            out[:, :, base] = blocks[:, :, base]
    return out.view(x.shape)


def _permute(x: Tensor, grid: Grid, tokens: Tensor, copies: int) -> Tensor:
    """`RouteBases.to_bases` without autograd."""
    kinds, height, width = grid
    batch, inner = x.shape[:2]
    length = height * width
    shape = (batch, copies, len(kinds), inner, length)
    if BaseKind.GATHER.value in kinds:
        index = tokens[None, None, :, None, :].expand(shape)
        return x.reshape(batch, 1, 1, inner, length).expand(shape).gather(-1, index).view(batch, -1, length)
    out = x.new_empty(shape)
    for base, kind in enumerate(kinds):
        source = x if kind == BaseKind.IDENTITY.value else x.transpose(-1, -2)
        out[:, :, base].view(batch, copies, inner, *source.shape[-2:]).copy_(source.unsqueeze(1))
    return out.view(batch, -1, length)


def _unpermute_sum(y: Tensor, grid: Grid, positions: Tensor) -> Tensor:
    """`RouteBases.from_bases` without autograd."""
    kinds, height, width = grid
    batch, copies, _, inner, _ = y.shape
    folded = y.sum(dim=1) if copies > 1 else y[:, 0]
    total = None
    for base, kind in enumerate(kinds):
        part = folded[:, base]
        if kind == BaseKind.TRANSPOSE.value:
            part = part.view(batch, inner, width, height).transpose(-1, -2)
        else:
            if kind == BaseKind.GATHER.value:
                part = part.index_select(-1, positions[base])
            part = part.view(batch, inner, height, width)
        total = part if total is None else total + part
    return total


class _ToBases(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, grid: Grid, tokens: Tensor, positions: Tensor, copies: int) -> Tensor:
        ctx.grid, ctx.copies = grid, copies
        ctx.save_for_backward(positions)
        return _permute(x, grid, tokens, copies)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        (positions,) = ctx.saved_tensors
        count = len(ctx.grid[0])
        batch, channels, length = grad.shape
        blocks = grad.reshape(batch, ctx.copies, count, channels // (ctx.copies * count), length)
        return _unpermute_sum(blocks, ctx.grid, positions), None, None, None, None


class _FromBases(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y: Tensor, grid: Grid, tokens: Tensor, positions: Tensor) -> Tensor:
        ctx.grid, ctx.shape = grid, y.shape
        ctx.save_for_backward(tokens)
        return _unpermute_sum(y, grid, positions)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        (tokens,) = ctx.saved_tensors
        return _permute(grad, ctx.grid, tokens, ctx.shape[1]).view(ctx.shape), None, None, None


class _PermuteGroups(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, grid: Grid, into_bases: bool) -> Tensor:
        ctx.grid, ctx.into_bases = grid, into_bases
        return _permute_groups(x, grid, into_bases)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        return _permute_groups(grad, ctx.grid, not ctx.into_bases), None, None


def route_bases(order: scans.ScanOrder, height: int, width: int, device: torch.device | str | None,
                keep_route_order: bool = False) -> RouteBases:
    """The base layouts of `order`'s routes on an H x W grid (cached per order, grid, device and option). The routes
    must visit every token once (`vssm.layers.ss2d.routable`). `keep_route_order`: the scan order must be the
    order's own (for per-route parameters applied after the scan); where sharing bases would reorder the routes,
    every route gets its own base instead."""
    bases = _cached_bases(order, height, width, as_device(device), keep_route_order)
    if not torch.compiler.is_compiling():
        return bases
    # torch.compile holds `_cached_bases`' result as a constant whose properties it cannot call, but it traces a
    # dataclass built from that constant's fields.
    return RouteBases(bases.height, bases.width, bases.kinds, bases.order, bases.route, bases.tokens, bases.positions)


@torch.compiler.assume_constant_result  # built from the order's tables, never from traced tensors
def _cached_bases(order: scans.ScanOrder, height: int, width: int, device: torch.device,
                  keep_route_order: bool) -> RouteBases:
    value = cached_table((order, height, width, device, keep_route_order, "route_bases"),
                         lambda: _build(order, height, width, device, keep_route_order))
    assert isinstance(value, RouteBases)
    return value


def _build(order: scans.ScanOrder, height: int, width: int, device: torch.device, keep_route_order: bool) -> RouteBases:
    route = order.tables(height, width).route
    length = height * width
    visits = [row[row >= 0] for row in route]
    bases: list[Tensor] = []
    base_of = []
    for tokens in visits:
        # a route and its reverse share a base; so do two routes visiting the tokens in the same order
        match = next((b for b, seen in enumerate(bases)
                      if torch.equal(tokens, seen) or torch.equal(tokens.flip(0), seen)), None)
        if match is None:
            bases.append(tokens)
            match = len(bases) - 1
        base_of.append(match)
    members = [[k for k, b in enumerate(base_of) if b == base] for base in range(len(bases))]
    count = len(bases)
    balanced = len({len(m) for m in members}) == 1
    if not balanced or (keep_route_order and any(b != k % count for k, b in enumerate(base_of))):
        # the shared u needs as many routes on every base, route i on base i % nb: else one base per route (a copy
        # each, as the original does)
        bases, members, count = visits, [[k] for k in range(len(visits))], len(visits)
    scan_order = tuple(members[i % count][i // count] for i in range(len(visits)))
    tokens = torch.stack(bases)
    positions = torch.empty_like(tokens)
    positions.scatter_(1, tokens, torch.arange(length).expand(count, length).contiguous())
    rows = route[list(scan_order)]
    base_index = torch.arange(len(visits)) % count
    in_base = torch.where(rows >= 0, positions[base_index[:, None], rows.clamp(min=0)], -1)
    raster = torch.arange(length)
    transposed = raster.view(height, width).t().flatten()
    kinds = tuple((BaseKind.IDENTITY if torch.equal(t, raster) else
                   BaseKind.TRANSPOSE if torch.equal(t, transposed) else BaseKind.GATHER).value for t in bases)
    return RouteBases(height, width, kinds, scan_order, in_base.to(device), tokens.to(device), positions.to(device))

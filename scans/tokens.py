"""Routes over a grid whose token sequence also carries a class token (Vim, LocalMamba).

The sequence holds M = H·W grid tokens in raster order with one extra token at sequence position p; grid token r sits
at position r + (r >= p). `WithToken(order, placement)` routes that (M + 1)-token sequence: each route of `order`
has its grid steps renumbered to sequence positions and the extra token inserted at step p, the same step in every
route (padded routes included). That is LocalMamba's mid-cls handling exactly (take the token out, scan, insert it
at p = M // 2 of each scanned sequence, and the reverse); the selective-scan op can take the result as its `route`.

Vim differs: it flips its whole sequence, so its backward route has the token at step M - p, which is p only for
even M (196 tokens: yes; Vim's stride-8 27 × 27 = 729: no). Route Vim's sequence as a 1 × (M + 1) grid instead:
`Bidirectional().route(1, M + 1)`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import DeviceLike, ScanOrder, as_device, cached_table, grid_size
from .functional import gather_routes, scatter_routes, sink_index
from .registry import get


class TokenPlacement(enum.Enum):
    """Where the extra token sits in the sequence (and at which step it is inserted into every route)."""

    FIRST = "first"  # p = 0
    MIDDLE = "middle"  # p = M // 2 (Vim, LocalMamba: 98 of 197)
    LAST = "last"  # p = M

    def position(self, num_grid_tokens: int) -> int:
        return {"first": 0, "middle": num_grid_tokens // 2, "last": num_grid_tokens}[self.value]


def insert_token(route: Tensor, position: int) -> Tensor:
    """(K, L') route over M grid tokens -> (K, L' + 1) route over the M + 1 sequence with the token at `position`.

    Grid steps are renumbered (r -> r + (r >= position)), pads stay -1, and every route reads the token at step
    `position`.
    """
    if not 0 <= position <= route.shape[1]:
        raise ValueError(f"the token position must be in 0..{route.shape[1]} for a route of {route.shape[1]} steps")
    shifted = torch.where(route >= position, route + 1, route)
    token = torch.full((route.shape[0], 1), position, dtype=route.dtype, device=route.device)
    return torch.cat([shifted[:, :position], token, shifted[:, position:]], dim=1)


@dataclass(frozen=True)
class WithToken:
    """A scan order over an H × W grid plus one extra token placed by `placement`.

    route / merge_route: (K, L' + 1) over the M + 1 = H·W + 1 sequence, cached per (H, W, device).
    gather(seq): (B, C, M + 1) -> (B, K, C, L' + 1); scatter(ys, H, W): the adjoint, summed over routes (or per route
    with `sum_routes=False`): (B, C, M + 1) / (B, K, C, M + 1). The extra token's outputs land at position p.
    """

    order: ScanOrder
    placement: TokenPlacement = TokenPlacement.MIDDLE

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", get(self.order))
        object.__setattr__(self, "placement", TokenPlacement(self.placement))

    @property
    def num_routes(self) -> int:
        return self.order.num_routes

    def position(self, height: int, width: int) -> int:
        """p, the extra token's index in the sequence and its step in every route."""
        height, width = grid_size(height, width)
        return self.placement.position(height * width)

    def _table(self, name: str, height: int, width: int, device: DeviceLike, sink: bool = False) -> Tensor:
        height, width = grid_size(height, width)
        device = as_device(device)

        def build() -> Tensor:
            grid = self.order.route(height, width) if name == "route" else self.order.merge_route(height, width)
            route = insert_token(grid, self.position(height, width))
            return (sink_index(route, height * width + 1) if sink else route).to(device)

        table = cached_table((self, height, width, device, name, sink), build)
        assert isinstance(table, Tensor)
        return table

    def route(self, height: int, width: int, device: DeviceLike = None) -> Tensor:
        """(K, L' + 1) int64 over the H·W + 1 sequence; -1 = padding."""
        return self._table("route", height, width, device)

    def merge_route(self, height: int, width: int, device: DeviceLike = None) -> Tensor:
        """(K, L' + 1) int64: where `scatter` writes each step (differs from `route` only as the order's does)."""
        return self._table("merge_route", height, width, device)

    def gather(self, seq: Tensor, height: int, width: int) -> Tensor:
        """seq: (B, C, H·W + 1), the extra token at p -> (B, K, C, L' + 1)."""
        height, width = grid_size(height, width)
        if not isinstance(seq, Tensor) or seq.ndim != 3 or seq.shape[-1] != height * width + 1:
            got = tuple(seq.shape) if isinstance(seq, Tensor) else type(seq).__name__
            raise ValueError(
                f"{self!r}.gather expects a sequence of shape (B, C, H·W + 1) = (B, C, {height * width + 1}), got {got}"
            )
        return gather_routes(seq, self._table("route", height, width, seq.device, sink=True), padded=True)

    def scatter(self, ys: Tensor, height: int, width: int, sum_routes: bool = True) -> Tensor:
        """ys: (B, K, C, L' + 1) -> (B, C, H·W + 1), or (B, K, C, H·W + 1) with `sum_routes=False`."""
        height, width = grid_size(height, width)
        steps = self.route(height, width).shape[1]
        if not isinstance(ys, Tensor) or ys.ndim != 4 or (ys.shape[1], ys.shape[3]) != (self.num_routes, steps):
            got = tuple(ys.shape) if isinstance(ys, Tensor) else type(ys).__name__
            raise ValueError(
                f"{self!r}.scatter(ys, H={height}, W={width}) expects ys of shape (B, K={self.num_routes}, C, "
                f"L'={steps}), got {got}"
            )
        index = self._table("merge_route", height, width, ys.device, sink=True)
        return scatter_routes(ys, index, height * width + 1, padded=True, sum_routes=sum_routes)

    def __repr__(self) -> str:
        return f"WithToken(order={self.order!r}, placement={self.placement.value!r})"

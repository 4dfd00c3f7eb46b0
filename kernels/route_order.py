"""Route order: the inputs of a scattered route gathered into scan order before the Triton kernels, y put back.

The Triton kernels read along any route, but one lane holds one channel, so a route that jumps between tokens
(VMamba's column scans, LocalMamba's windows, Hilbert curves) sends every load of every lane to its own memory sector.
On an H100 the kernels ran 2 to 5 times slower reading such routes than on the same inputs already in route order
(`benchmarks/h100/selective_scan_cuda.md`, column "in route order"), while forward and reversed rasters read in place
were faster than their gathered copies. So `kernels.selective_scan` gathers the inputs of a route whose steps mostly
jump (`route_layout`) with `torch.gather` (autograd gives the gradients back in token order) and reads the others in
the kernels. The choice needs the route's values: it is made, and cached, where the route is validated (eagerly);
inside a torch.compile graph routes are read in the kernels. `use_route_reading` overrides the choice (on every
backend) for the eager calls inside a block.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import math
from dataclasses import dataclass, field

import torch
from torch.utils.weak import WeakIdKeyDictionary

from .switches import parse_option, switched

# a route is read in place when at least this share of its steps moves to a neighbouring token
NEIGHBOUR_SHARE = 0.9

_layouts = WeakIdKeyDictionary()


@dataclass(frozen=True)
class StepIndex:
    """One gather along the last axis: `take` (1, rows, 1, L_out) int64, the position read at each output step
    (padding read at 0), and `pads` (1, rows, 1, L_out) bool, the padding steps to zero (None when there are none)."""

    take: torch.Tensor
    pads: torch.Tensor | None

    @classmethod
    def of(cls, index: torch.Tensor) -> StepIndex:
        """From an index (rows, L_out) with -1 at padding steps."""
        pads = index < 0
        return cls(index.clamp_min(0).long()[None, :, None, :], pads[None, :, None, :] if bool(pads.any()) else None)

    def rows(self, selected: torch.Tensor) -> StepIndex:
        return StepIndex(self.take.index_select(1, selected),
                         None if self.pads is None else self.pads.index_select(1, selected))


@dataclass(frozen=True)
class RouteLayout:
    """What reading a route needs to know of its values, computed once per route: whether its steps mostly jump
    (fewer than NEIGHBOUR_SHARE go to the token next to the previous one, padding left out), the route as the
    kernels read it in place (`kernel_route`, int32: no conversion per call), and the indices of the gathers into
    route order (`to_route`) and back into token order (`to_tokens`, the step that visits each token), one row per
    route; `for_groups(M)` gives them for M = lcm(G, K) merged B/C groups."""

    scatters: bool
    kernel_route: torch.Tensor
    to_route: StepIndex
    to_tokens: StepIndex
    _merged: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def padded(self) -> bool:
        return self.to_route.pads is not None

    def for_groups(self, merged: int) -> tuple[StepIndex, StepIndex]:
        """(to_route, to_tokens) with row j the route of merged group j, route j·K/M."""
        if merged not in self._merged:
            routes = self.to_route.take.shape[1]
            along = torch.arange(merged, device=self.to_route.take.device) * routes // merged
            self._merged[merged] = (self.to_route.rows(along), self.to_tokens.rows(along))
        return self._merged[merged]


def route_layout(route: torch.Tensor, length: int) -> RouteLayout:
    """The layout of `route` (K, L') over L tokens, cached per route tensor and version (computing it synchronises).
    The route must be valid (`kernels.validation.check_route_values`): each token visited once."""
    cached = _layouts.get(route)
    if cached is not None and cached[0] == (route._version, length):
        return cached[1]
    valid = route >= 0
    pairs = valid[:, 1:] & valid[:, :-1]
    neighbours = ((route[:, 1:] - route[:, :-1]).abs() == 1) & pairs
    # sorting a row's tokens (padding last) lists its steps in token order
    steps_of_tokens = torch.where(valid, route, length).argsort(dim=1, stable=True)[:, :length]
    # a copy even of an int32 route: the cache is keyed weakly by the route, and a value holding it would keep it alive
    kernel_route = route.to(torch.int32, memory_format=torch.contiguous_format, copy=True)
    layout = RouteLayout(bool(neighbours.sum() < NEIGHBOUR_SHARE * pairs.sum()), kernel_route, StepIndex.of(route),
                         StepIndex.of(steps_of_tokens))
    _layouts[route] = ((route._version, length), layout)
    return layout


class RouteReading(str, enum.Enum):
    """How a backend gets the inputs of a route."""

    IN_KERNEL = "in_kernel"  # it reads them along the route, in token order
    GATHERED = "gathered"  # they are gathered into route order first, y put back into token order

    @classmethod
    def parse(cls, value: RouteReading | str) -> RouteReading:
        return parse_option(cls, value, "route reading")


_reading: contextvars.ContextVar[RouteReading | None] = contextvars.ContextVar("vssm_scan_route_reading",
                                                                               default=None)


def use_route_reading(reading: RouteReading | str) -> contextlib.AbstractContextManager[RouteReading]:
    """Read the route of every eager `selective_scan` inside the block `reading` ("in_kernel" or "gathered"), on
    every backend, whatever `route_layout` would choose. Compiled graphs read routes in the kernels whatever this
    says: choosing needs the route's values."""
    return switched(_reading, RouteReading.parse(reading))


def read_route(route: torch.Tensor, length: int, gathers_scattered: bool) -> tuple[RouteLayout | None, bool]:
    """How an eager call reads a valid `route` over `length` tokens: (its layout, whether the inputs are gathered
    into route order first). `use_route_reading` decides where it is on; otherwise a backend that
    `gathers_scattered` routes (kernels.backends) gathers those whose steps mostly jump and reads the others in
    place, and any other backend reads every route in place (no layout: its values need not be read)."""
    forced = _reading.get()
    if forced is None and not gathers_scattered:
        return None, False
    layout = route_layout(route, length)
    return layout, layout.scatters if forced is None else forced is RouteReading.GATHERED


class _TakeSteps(torch.autograd.Function):
    """out[..., i] = x[..., index[k, i]] (zero at padding) along the last axis of x (batch, K, *, L_in), row k of the
    index serving slice k of axis 1. Its backward is the same gather with `inverse`, the index of the reverse map
    (every position of x read exactly once), so gradients need no scatter and no atomics."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: StepIndex, inverse: StepIndex) -> torch.Tensor:
        ctx.inverse = inverse
        return _take(x, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _take(grad, ctx.inverse), None, None


def _take(x: torch.Tensor, index: StepIndex) -> torch.Tensor:
    out = x.gather(-1, index.take.expand(*x.shape[:-1], index.take.shape[-1]))
    return out if index.pads is None else out.masked_fill(index.pads, 0)


def gather_channels(x: torch.Tensor, route: torch.Tensor, layout: RouteLayout, channels: int) -> torch.Tensor:
    """x: (batch, channels, L), route k reading channel block k, or (batch, channels / S, L) for S dividing K, route k
    reading its block k % (K / S) (shared u) -> (batch, channels, L') in route order, zero at padding steps."""
    routes, steps = route.shape
    batch, read, length = x.shape
    per_route = channels // routes
    # a u shared by every route (read = per_route) stays an expanded view; one shared S < K times is copied
    blocks = x.view(batch, 1, read // per_route, per_route, length).expand(
        batch, channels // read, read // per_route, per_route, length).reshape(batch, routes, per_route, length)
    return _TakeSteps.apply(blocks, layout.to_route, layout.to_tokens).reshape(batch, channels, steps)


def gather_groups(x: torch.Tensor, route: torch.Tensor, layout: RouteLayout) -> torch.Tensor:
    """B or C, x: (batch, G, N, L) -> (batch, M, N, L') in route order with M = lcm(G, K) groups, zero at padding
    steps: group j serves the channels of B group j·G/M along route j·K/M (the channel -> group maps agree)."""
    batch, groups, state, length = x.shape
    merged = math.lcm(groups, route.shape[0])
    # consecutive groups share a source group: an expanded copy (its gradient is a sum, not an index_add)
    sources = x.unsqueeze(2).expand(batch, groups, merged // groups, state, length).reshape(
        batch, merged, state, length)
    return _TakeSteps.apply(sources, *layout.for_groups(merged))


def scatter_channels(y: torch.Tensor, route: torch.Tensor, layout: RouteLayout) -> torch.Tensor:
    """y: (batch, KD, L') in route order -> (batch, KD, L) in token order (padding steps' outputs dropped)."""
    routes, steps = route.shape
    batch, channels, _ = y.shape
    blocks = y.view(batch, routes, channels // routes, steps)
    return _TakeSteps.apply(blocks, layout.to_tokens, layout.to_route).reshape(batch, channels, -1)

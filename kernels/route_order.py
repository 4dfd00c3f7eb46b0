"""Route order: the inputs of a scattered route gathered into scan order before the Triton kernels, y put back.

The Triton kernels read along any route, but one lane holds one channel, so a route that jumps between tokens
(VMamba's column scans, LocalMamba's windows, Hilbert curves) sends every load of every lane to its own memory sector.
On an H100 the kernels ran 2 to 5 times slower reading such routes than on the same inputs already in route order
(`benchmarks/h100/selective_scan_cuda.md`, column "in route order"), while forward and reversed rasters read in place
were faster than their gathered copies. So `kernels.selective_scan` gathers the inputs of a route whose steps mostly
jump (`route_layout`) with `torch.gather` (autograd gives the gradients back in token order) and reads the others in
the kernels. The choice needs the route's values: it is made, and cached, where the route is validated (eagerly);
inside a torch.compile graph routes are read in the kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.weak import WeakIdKeyDictionary

# a route is read in place when at least this share of its steps moves to a neighbouring token
NEIGHBOUR_SHARE = 0.9

_layouts = WeakIdKeyDictionary()


@dataclass(frozen=True)
class RouteLayout:
    """What reading a route needs to know of its values: whether its steps mostly jump (fewer than NEIGHBOUR_SHARE go
    to the token next to the previous one, padding left out), and the step that visits each token, (K, L) int64."""

    scatters: bool
    padded: bool
    steps_of_tokens: torch.Tensor


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
    layout = RouteLayout(bool(neighbours.sum() < NEIGHBOUR_SHARE * pairs.sum()), not bool(valid.all()),
                         steps_of_tokens)
    _layouts[route] = ((route._version, length), layout)
    return layout


class _TakeSteps(torch.autograd.Function):
    """out[..., i] = x[..., index[k, i]] (zero where index is -1) along the last axis of x (batch, K, *, L_in), row k
    of index (K, L_out) serving slice k of axis 1. Its backward is the same gather with `inverse`, the index of the
    reverse map (every position of x read exactly once), so gradients need no scatter and no atomics. The flags
    say whether an index holds -1 (known from the route's layout, so no call synchronises)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, index_pads: bool, inverse: torch.Tensor,
                inverse_pads: bool) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        ctx.inverse_pads = inverse_pads
        return _take(x, index, index_pads)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inverse,) = ctx.saved_tensors
        return _take(grad, inverse, ctx.inverse_pads), None, None, None, None


def _take(x: torch.Tensor, index: torch.Tensor, pads: bool) -> torch.Tensor:
    shape = (*x.shape[:-1], index.shape[1])
    out = x.gather(-1, index.clamp_min(0)[None, :, None, :].expand(shape))
    return out.masked_fill((index < 0)[None, :, None, :], 0) if pads else out


def gather_channels(x: torch.Tensor, route: torch.Tensor, layout: RouteLayout, channels: int) -> torch.Tensor:
    """x: (batch, channels, L), route k reading channel block k, or (batch, channels / K, L) read by every route
    (shared u) -> (batch, channels, L') in route order, zero at padding steps."""
    routes, steps = route.shape
    batch, _, length = x.shape
    per_route = channels // routes
    blocks = x.view(batch, routes, per_route, length) if x.shape[1] == channels else \
        x.unsqueeze(1).expand(batch, routes, per_route, length)
    return _TakeSteps.apply(blocks, route, layout.padded, layout.steps_of_tokens, False).reshape(
        batch, channels, steps)


def gather_groups(x: torch.Tensor, route: torch.Tensor, layout: RouteLayout) -> torch.Tensor:
    """B or C, x: (batch, G, N, L) -> (batch, M, N, L') in route order with M = lcm(G, K) groups, zero at padding
    steps: group j serves the channels of B group j·G/M along route j·K/M (the channel -> group maps agree)."""
    routes = route.shape[0]
    batch, groups, state, length = x.shape
    merged = math.lcm(groups, routes)
    # consecutive groups share a source group: an expanded copy (its gradient is a sum, not an index_add)
    sources = x.unsqueeze(2).expand(batch, groups, merged // groups, state, length).reshape(
        batch, merged, state, length)
    along = torch.arange(merged, device=route.device) * routes // merged
    return _TakeSteps.apply(sources, route.index_select(0, along), layout.padded,
                            layout.steps_of_tokens.index_select(0, along), False)


def scatter_channels(y: torch.Tensor, route: torch.Tensor, layout: RouteLayout) -> torch.Tensor:
    """y: (batch, KD, L') in route order -> (batch, KD, L) in token order (padding steps' outputs dropped)."""
    routes, steps = route.shape
    batch, channels, _ = y.shape
    blocks = y.view(batch, routes, channels // routes, steps)
    return _TakeSteps.apply(blocks, layout.steps_of_tokens, False, route, layout.padded).reshape(batch, channels, -1)

"""Routes through a model's token sequence: the grid tokens of an H × W map, optionally with one class token.

A `ScanOrder` routes the H·W tokens of a grid. A plain (isotropic) model's sequence may also carry a class token at
position p = H·W // 2 (grid token r then sits at sequence position r + (r >= p)); `token_routes` turns the order into
routes through that (H·W + 1)-token sequence. Two rules exist in the original models, chosen by `ClassTokenRouting`:

* IN_SEQUENCE (Vim): the class token is just a token of the sequence. The order routes the whole sequence as a
  1 × (H·W + 1) strip, so Vim's backward route (the sequence flipped) meets the class token at step H·W - p. Only
  meaningful for orders that are 1-D, i.e. route an H × W grid exactly as its 1 × H·W strip (raster, bidirectional).
* FIXED_STEP (LocalMamba's mid-cls handling): the token is taken out, the grid is routed, and the token is inserted at
  step p of every route (a route shorter than 2p, as in orders that split the grid, gets it at its middle step).

For even H·W and the bidirectional order both rules give the same routes; Vim's stride-8 models (27 × 27 = 729
tokens) need IN_SEQUENCE.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import DeviceLike, ScanOrder, as_device, cached_table, grid_size
from .functional import gather_routes, scatter_routes, sink_index


class ClassTokenRouting(enum.Enum):
    """Where routes visit the class token (see the module docstring)."""

    IN_SEQUENCE = "in_sequence"
    FIXED_STEP = "fixed_step"


@dataclass(frozen=True, eq=False)
class SequenceRoutes:
    """K routes through a sequence of `length` tokens, and their way back.

    gather_index / merge_index: (K, L') int64 on the model's device, padding steps mapped to `length` (an extra zero
    slot). `coverage` is the number of routes whose outputs are written back to each token: an int when it is the same
    for every token (K for most orders, 1 for `atrous`), else an (L,) tensor.
    """

    gather_index: Tensor
    merge_index: Tensor
    length: int
    padded: bool
    coverage: int | Tensor
    # K and L' (the tables' shape) as plain ints: compiled models read them from routes that `torch.compile` holds as
    # constants (`_cached_routes` is `assume_constant_result`), whose properties it cannot call.
    num_routes: int
    steps: int
    identity: bool = False  # one route visiting the tokens in sequence order: gather and scatter are views
    # Set when every route reads the whole sequence forwards or backwards (raster, Vim's bidirectional): route k is
    # flipped iff reversed[k], and the scatter sums (flipped) slices, 4x faster than a scatter on CPU.
    reversed: tuple[bool, ...] | None = None
    # Every step's output is written back to the token the step read (False for LocalMamba's official `v` reverse on
    # non-square grids): only then may a per-token quantity (Mamba's gate z) be applied after the scatter.
    adjoint: bool = True

    @classmethod
    def build(cls, route: Tensor, merge_route: Tensor, length: int, what: str = "the scan order") -> SequenceRoutes:
        """From (K, L') visit lists (-1 = padding) over a sequence of `length` tokens; every token must be written
        back to by some route."""
        padded = bool((route < 0).any()) or bool((merge_route < 0).any())
        merge_index = sink_index(merge_route, length)
        counts = torch.zeros(length + 1, dtype=torch.int64, device=route.device)
        counts.index_add_(0, merge_index.reshape(-1), torch.ones_like(merge_index.reshape(-1)))
        counts = counts[:length]
        missing = (counts == 0).nonzero().flatten()
        if missing.numel():
            raise ValueError(
                f"{what} cannot serve a plain model: every one of the {length} tokens must be visited by at least one "
                f"route, but {missing.numel()} are not (first: {missing[:5].tolist()})"
            )
        uniform = bool((counts == counts[0]).all())
        coverage = int(counts[0]) if uniform else counts
        in_order = torch.arange(length, device=route.device)
        reversed_ = None
        if route.shape[1] == length and torch.equal(route, merge_route):
            forwards = (route == in_order).all(dim=1)
            backwards = (route == in_order.flip(0)).all(dim=1)
            if bool((forwards | backwards).all()):
                reversed_ = tuple(bool(b) and not bool(f) for f, b in zip(forwards, backwards))
        identity = reversed_ == (False,)
        adjoint = torch.equal(route, merge_route)
        return cls(sink_index(route, length), merge_index, length, padded, coverage, route.shape[0], route.shape[1],
                   identity, reversed_, adjoint)

    def to(self, device: torch.device) -> SequenceRoutes:
        """The same routes with their index tables (and a per-token coverage) on `device`."""
        coverage = self.coverage if isinstance(self.coverage, int) else self.coverage.to(device)
        return dataclasses.replace(
            self, gather_index=self.gather_index.to(device), merge_index=self.merge_index.to(device), coverage=coverage
        )

    def gather(self, x: Tensor) -> Tensor:
        """x: (B, C, L) tokens in sequence order -> (B, K, C, L') each route's tokens in visit order (0 at pads)."""
        if self.identity:
            return x.unsqueeze(1)
        if self.reversed is not None:  # forwards/backwards routes: copies, 2x faster than the gather on CPU
            return torch.stack([x.flip(-1) if backwards else x for backwards in self.reversed], dim=1)
        return gather_routes(x, self.gather_index, self.padded)

    def scatter_sum(self, ys: Tensor) -> Tensor:
        """ys: (B, K, C, L') -> (B, C, L): each route's outputs written back to their tokens, summed over routes (the
        adjoint of `gather`, as `ScanOrder.merge` is of `ScanOrder.scan`)."""
        if self.identity:
            return ys[:, 0]
        if self.reversed is not None:
            y = ys[:, 0].flip(-1) if self.reversed[0] else ys[:, 0]
            for k in range(1, self.num_routes):
                y = y + (ys[:, k].flip(-1) if self.reversed[k] else ys[:, k])
            return y
        return scatter_routes(ys, self.merge_index, self.length, self.padded)

    def scatter_mean(self, ys: Tensor) -> Tensor:
        """ys: (B, K, C, L') -> (B, C, L): `scatter_sum` divided at each token by the number of routes that wrote it
        (Vim's `if_divide_out`); the inverse of `gather`."""
        y = self.scatter_sum(ys)
        # y is a fresh sum unless one route reads everything in order (identity, coverage 1), so divide in place.
        if isinstance(self.coverage, int):
            return y if self.coverage == 1 else y.div_(self.coverage)
        return y.div_(self.coverage.to(y.dtype))


def is_sequence_order(order: ScanOrder, height: int, width: int) -> bool:
    """True if `order` routes an H × W grid exactly as it routes the 1 × H·W strip (a 1-D order, e.g. raster)."""
    grid = order.route(height, width)
    strip = order.route(1, height * width)
    return grid.shape == strip.shape and bool((grid == strip).all())


def token_routes(
    order: ScanOrder,
    height: int,
    width: int,
    device: DeviceLike = None,
    class_token: bool = False,
    routing: ClassTokenRouting | None = None,
) -> SequenceRoutes:
    """Routes of `order` through the sequence of an H × W grid, with a class token at p = H·W // 2 if `class_token`.

    `routing=None` picks IN_SEQUENCE for 1-D orders and FIXED_STEP for 2-D ones (Vim's rule for its bidirectional
    order, LocalMamba's for its windowed ones). Cached with the orders' route tables (`clear_route_cache` drops both);
    the tensors are shared, treat them as read-only. On the meta device (shape inference, FLOP counts) the routes are
    built and checked on the CPU and their tables moved to meta.
    Raises ValueError if the order leaves a token unvisited (it cannot serve a plain model).
    """
    height, width = grid_size(height, width)
    device = as_device(device)
    if routing is not None:
        routing = ClassTokenRouting(routing)
    routes = _cached_routes(order, height, width, device, class_token, routing)
    if not torch.compiler.is_compiling():
        return routes
    # torch.compile holds `_cached_routes`' result as a constant whose methods it cannot call, but it traces a
    # dataclass built from that constant's fields.
    return SequenceRoutes(
        routes.gather_index, routes.merge_index, routes.length, routes.padded, routes.coverage, routes.num_routes,
        routes.steps, routes.identity, routes.reversed, routes.adjoint,
    )


@torch.compiler.assume_constant_result  # built from the tables' values, never from traced tensors
def _cached_routes(
    order: ScanOrder,
    height: int,
    width: int,
    device: torch.device,
    class_token: bool,
    routing: ClassTokenRouting | None,
) -> SequenceRoutes:
    key = (order, height, width, device, "sequence_routes", class_token, routing)
    routes = cached_table(key, lambda: _build(order, height, width, device, class_token, routing))
    assert isinstance(routes, SequenceRoutes)
    return routes


def _build(
    order: ScanOrder,
    height: int,
    width: int,
    device: torch.device,
    class_token: bool,
    routing: ClassTokenRouting | None,
) -> SequenceRoutes:
    if device.type == "meta":  # building and checking the tables reads their values
        return token_routes(order, height, width, torch.device("cpu"), class_token, routing).to(device)
    what = f"scan order {order!r} on a {height} × {width} grid"
    if not class_token:
        return SequenceRoutes.build(
            order.route(height, width, device), order.merge_route(height, width, device), height * width, what
        )
    if routing is None:
        sequence = is_sequence_order(order, height, width)
        routing = ClassTokenRouting.IN_SEQUENCE if sequence else ClassTokenRouting.FIXED_STEP
    if routing is ClassTokenRouting.IN_SEQUENCE:
        if not is_sequence_order(order, height, width):
            raise ValueError(
                f"{what}: class-token routing {routing.value!r} needs a 1-D order (one that routes the grid as its "
                f"1 × H·W strip); use {ClassTokenRouting.FIXED_STEP.value!r} for 2-D orders"
            )
        length = height * width + 1
        return SequenceRoutes.build(order.route(1, length, device), order.merge_route(1, length, device), length, what)
    position = height * width // 2
    lengths = order.route_lengths(height, width)
    return SequenceRoutes.build(
        _insert_token(order.route(height, width, device), position, lengths),
        _insert_token(order.merge_route(height, width, device), position, lengths),
        height * width + 1,
        what,
    )


def _insert_token(route: Tensor, position: int, lengths: tuple[int, ...]) -> Tensor:
    """(K, L') grid route -> (K, L' + 1) sequence route: grid token r becomes sequence position r + (r >= p), and the
    class token (position p) is read at step p of each route, or at the route's middle step when the route is shorter
    than 2p (orders that split the grid, e.g. atrous). Padding (-1) stays padding."""
    shifted = torch.where(route >= position, route + 1, route)
    rows = []
    for k, length in enumerate(lengths):
        step = min(position, length // 2)
        token = shifted.new_full((1,), position)
        rows.append(torch.cat([shifted[k, :step], token, shifted[k, step:]]))
    return torch.stack(rows)

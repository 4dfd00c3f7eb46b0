"""`ScanOrder`: the base class of every scan order, with route tables cached per grid size and device."""

from __future__ import annotations

import dataclasses
import enum
import operator
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.utils._python_dispatch import _disable_current_modes

from .functional import PAD, gather_routes, scatter_routes

DeviceLike = torch.device | str | None

# Route tables of every order instance, keyed by (order, H, W, device, table). Orders are frozen dataclasses, so
# equal orders share tables. Bounded because detection/segmentation inputs come in many sizes; one forward of
# LocalVMamba-S (33 distinct direction sets, ~6 tables each, CPU + GPU copies) needs ~400 entries, so 2048 keeps a few
# input sizes warm without evicting inside a forward.
_CACHE_ENTRIES = 2048
_cache: OrderedDict[tuple[Hashable, ...], object] = OrderedDict()


def cached_table(key: tuple[Hashable, ...], build: Callable[[], object]) -> object:
    if torch.compiler.is_compiling() and key in _cache:
        # Traced code must not reorder the cache: torch.compile would guard on the keys' order, which every eager
        # call changes, and recompile.
        return _cache[key]
    try:
        _cache.move_to_end(key)
        return _cache[key]
    except KeyError:
        # Cached tables outlive the call: built inside `torch.inference_mode` they would be inference tensors, which
        # autograd refuses to save (gather's index) when the same model later trains.
        # Tables are values, not part of a traced program: torch.export (non-strict) runs this under FakeTensorMode,
        # where they would be fake tensors whose flags cannot be read (and the cache would keep them).
        with torch.inference_mode(False), _disable_current_modes():
            value = build()
        _cache[key] = value
        if len(_cache) > _CACHE_ENTRIES:
            _cache.popitem(last=False)
        return value


def clear_route_cache() -> None:
    """Drop every cached route table (they are rebuilt on the next call)."""
    _cache.clear()


def as_device(device: DeviceLike) -> torch.device:
    device = torch.device("cpu" if device is None else device)
    # "cuda" and "cuda:0" must share one cache entry and one tensor.
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def grid_size(height: object, width: object) -> tuple[int, int]:
    """Validate a grid size: two integers >= 1 (bools and floats are refused)."""
    sizes = []
    for name, value in (("H", height), ("W", width)):
        if isinstance(value, bool):
            raise TypeError(f"grid size {name} must be an int, got {value!r}")
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"grid size {name} must be an int, got {type(value).__name__} {value!r}") from None
        if value < 1:
            raise ValueError(f"grid size {name} must be >= 1, got {value}")
        sizes.append(value)
    return sizes[0], sizes[1]


@dataclasses.dataclass(frozen=True)
class RouteTables:
    """The CPU tables of one order on one grid. route/merge_route: (K, L') int64 with `PAD`; lengths: own L'_k;
    visits: the number of tokens route k reads (its non-`PAD` steps)."""

    route: Tensor
    merge_route: Tensor
    lengths: tuple[int, ...]
    padded: bool
    visits: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class DeviceTables:
    """An order's tables for one grid on one device, (K, L') int64 each: `route`/`merge_route` with `PAD`, and
    `gather_index`/`merge_index` with padding steps mapped to H·W (an extra zero slot)."""

    route: Tensor
    merge_route: Tensor
    gather_index: Tensor
    merge_index: Tensor


class ScanOrder(ABC):
    """A scan order: K routes through the L = H·W tokens of an H × W grid, and back.

    Route k is a visit list: step l reads the token with raster index `route[k, l]` (row i, column j -> i·W + j), or a
    zero padding step where `route[k, l] == PAD` (-1). Routes shorter than the longest are right-padded with `PAD`, so
    `route(H, W)` is one (K, L') tensor; `route_lengths(H, W)` gives each route's own length.

    * `scan(x)` gathers: (B, C, H, W) -> (B, K, C, L'); pad steps read 0.
    * `merge(ys, H, W)` scatters and sums over routes: (B, K, C, L') -> (B, C, H, W); pad steps are dropped. It is the
      exact adjoint of `scan` (so `merge(scan(x)) == c·x` with c the number of routes visiting each token: K for every
      order here except `atrous`, whose routes partition the grid) unless an order deliberately reproduces an
      original's non-adjoint reverse (`Windowed(v_reverse="official")`); `merge_route` then differs from `route`.
    * `unscan(ys, H, W)` is `merge` without the sum: (B, K, C, H, W), each route's own inverse.

    Subclasses are frozen dataclasses (hashable, comparable, cheap to build); they implement `num_routes` and
    `build_routes`. Tables are built once per (H, W) on CPU and copied to each device once; the returned tensors are
    shared, so treat them as read-only.
    """

    name: ClassVar[str] = ""

    @property
    @abstractmethod
    def num_routes(self) -> int:
        """K, the number of routes (the number of parameter sets / channel groups a model needs)."""

    @abstractmethod
    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        """One 1-D integer array per route: raster indices in visit order, `PAD` for padding steps."""

    def build_merge_routes(self, height: int, width: int) -> list[np.ndarray] | None:
        """Where merge writes each step's output, when that is not where the step read from (default: None)."""
        return None

    # ------------------------------------------------------------------------------------------------ tables

    @torch.compiler.assume_constant_result  # Python values decide control flow under torch.compile: never traced
    def tables(self, height: int, width: int) -> RouteTables:
        """The cached CPU tables for an H × W grid."""
        height, width = grid_size(height, width)
        table = cached_table((self, height, width, "tables"), lambda: self._build_tables(height, width))
        assert isinstance(table, RouteTables)
        return table

    def _build_tables(self, height: int, width: int) -> RouteTables:
        routes = self.build_routes(height, width)
        lengths = tuple(len(r) for r in routes)
        # Decided in numpy: a torch comparison + any() on a fresh 256 x 256 table costs ~10 ms of thread start-up.
        # Also what decides control flow later (padded, routable): Python values, never a tensor read in forward.
        visits = tuple(int((r >= 0).sum()) for r in routes)
        padded = len(set(lengths)) > 1 or visits != lengths
        route = _stack(routes)
        merge_routes = self.build_merge_routes(height, width)
        merge_route = route if merge_routes is None else _stack(merge_routes)
        return RouteTables(route, merge_route, lengths, padded, visits)

    def _on_device(self, table: str, height: int, width: int, device: DeviceLike) -> Tensor:
        # An attribute of the cached `DeviceTables`: torch.compile traces attribute reads of a constant object, but
        # not the shape of a tensor returned by an `assume_constant_result` function itself.
        return getattr(self._device_tables(*grid_size(height, width), as_device(device)), table)

    @torch.compiler.assume_constant_result  # the tables are built from the order's values, never traced
    def _device_tables(self, height: int, width: int, device: torch.device) -> DeviceTables:
        def build() -> DeviceTables:
            tables = self.tables(height, width)
            return DeviceTables(
                tables.route.to(device),
                tables.merge_route.to(device),
                torch.where(tables.route < 0, height * width, tables.route).to(device),
                torch.where(tables.merge_route < 0, height * width, tables.merge_route).to(device),
            )

        value = cached_table((self, height, width, device, "device_tables"), build)
        assert isinstance(value, DeviceTables)
        return value

    def route(self, height: int, width: int, device: DeviceLike = None) -> Tensor:
        """(K, L') int64 visit lists on `device` (cached: repeated calls return the same tensor); -1 = padding."""
        return self._on_device("route", height, width, device)

    def merge_route(self, height: int, width: int, device: DeviceLike = None) -> Tensor:
        """(K, L') int64: the token each step's output is written to by `merge`; equals `route` for adjoint orders."""
        return self._on_device("merge_route", height, width, device)

    def route_lengths(self, height: int, width: int) -> tuple[int, ...]:
        """Each route's own length before right-padding to the common L' (LocalMamba crops each route to it)."""
        return self.tables(height, width).lengths

    # ------------------------------------------------------------------------------------------------ tensors

    def scan(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, K, C, L'): route k's tokens in visit order, zeros at padding steps."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{self!r}.scan expects a tensor of shape (B, C, H, W), got {type(x).__name__}")
        if x.ndim != 4:
            raise ValueError(f"{self!r}.scan expects x of shape (B, C, H, W), got shape {tuple(x.shape)}")
        batch, channels, height, width = x.shape
        index = self._on_device("gather_index", height, width, x.device)
        padded = self.tables(height, width).padded
        return gather_routes(x.reshape(batch, channels, height * width), index, padded)

    def merge(self, ys: Tensor, height: int, width: int) -> Tensor:
        """ys: (B, K, C, L') -> (B, C, H, W): each route's outputs written back to their tokens, summed over routes."""
        index, padded = self._merge_inputs(ys, height, width, "merge")
        batch, _, channels, _ = ys.shape
        return scatter_routes(ys, index, height * width, padded).view(batch, channels, height, width)

    def unscan(self, ys: Tensor, height: int, width: int) -> Tensor:
        """ys: (B, K, C, L') -> (B, K, C, H, W): route k's outputs at their tokens (zeros where k does not go)."""
        index, padded = self._merge_inputs(ys, height, width, "unscan")
        batch, num_routes, channels, _ = ys.shape
        out = scatter_routes(ys, index, height * width, padded, sum_routes=False)
        return out.view(batch, num_routes, channels, height, width)

    def _merge_inputs(self, ys: Tensor, height: int, width: int, caller: str) -> tuple[Tensor, bool]:
        height, width = grid_size(height, width)
        if not isinstance(ys, Tensor):
            raise TypeError(f"{self!r}.{caller} expects a tensor of shape (B, K, C, L'), got {type(ys).__name__}")
        tables = self.tables(height, width)
        expected = (self.num_routes, tables.route.shape[1])
        if ys.ndim != 4 or (ys.shape[1], ys.shape[3]) != expected:
            raise ValueError(
                f"{self!r}.{caller}(ys, H={height}, W={width}) expects ys of shape (B, K={expected[0]}, C, "
                f"L'={expected[1]}), got {tuple(ys.shape)}"
            )
        return self._on_device("merge_index", height, width, ys.device), tables.padded

    # ------------------------------------------------------------------------------------------------ display

    def __repr__(self) -> str:
        fields = ", ".join(f"{f.name}={_show(getattr(self, f.name))}" for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return f"{type(self).__name__}({fields})"


def _show(value: object) -> str:
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if isinstance(value, tuple):
        inner = ", ".join(_show(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _stack(routes: list[np.ndarray]) -> Tensor:
    longest = max(len(r) for r in routes)
    table = np.full((len(routes), longest), PAD, dtype=np.int64)
    for k, r in enumerate(routes):
        table[k, : len(r)] = r
    return torch.from_numpy(table)


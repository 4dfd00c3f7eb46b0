"""Per-layer scan orders: a schedule yields the order of layer i, so models never parse strings.

schedule = scans.as_schedule(scan)     # a name, an order or a schedule
order = schedule.for_layer(i)          # or schedule[i]
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .base import ScanOrder
from .registry import get
from .windowed import Direction, VReverse, Windowed
from .zigzag import NUM_PATHS, Zigzag


class Schedule(ABC):
    """Maps a layer index to the scan order that layer uses."""

    @abstractmethod
    def for_layer(self, layer: int) -> ScanOrder:
        """The order of layer `layer` (0-based)."""

    def __getitem__(self, layer: int) -> ScanOrder:
        return self.for_layer(layer)


def _layer_index(layer: object) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"a layer index is an int, got {layer!r}")
    if layer < 0:
        raise ValueError(f"a layer index is >= 0, got {layer}")
    return layer


def _orders(orders: Iterable[ScanOrder | str]) -> tuple[ScanOrder, ...]:
    orders = tuple(get(order) for order in orders)
    if not orders:
        raise ValueError("a schedule needs at least one order, got none")
    return orders


@dataclass(frozen=True)
class Constant(Schedule):
    """Every layer uses the same order."""

    order: ScanOrder

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", get(self.order))

    def for_layer(self, layer: int) -> ScanOrder:
        _layer_index(layer)
        return self.order


@dataclass(frozen=True)
class Cycle(Schedule):
    """Layer i uses `orders[i mod len(orders)]` (ZigMa's path rotation)."""

    orders: tuple[ScanOrder, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "orders", _orders(self.orders))

    def for_layer(self, layer: int) -> ScanOrder:
        return self.orders[_layer_index(layer) % len(self.orders)]


@dataclass(frozen=True)
class PerLayer(Schedule):
    """Layer i uses `orders[i]`; asking for a layer beyond the list is an error (LocalMamba's searched lists)."""

    orders: tuple[ScanOrder, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "orders", _orders(self.orders))

    def __len__(self) -> int:
        return len(self.orders)

    def for_layer(self, layer: int) -> ScanOrder:
        layer = _layer_index(layer)
        if layer >= len(self.orders):
            raise ValueError(f"the schedule lists {len(self.orders)} layers, layer {layer} was asked for")
        return self.orders[layer]


def as_schedule(scan: str | ScanOrder | Schedule) -> Schedule:
    """What a model's `scan=` argument means per layer: a schedule as is, an order or a name for every layer."""
    if isinstance(scan, Schedule):
        return scan
    if isinstance(scan, str | ScanOrder):
        return Constant(get(scan))
    raise TypeError(f"scan must be an order name, a ScanOrder or a Schedule, got {type(scan).__name__}")


def zigzag_schedule(num_paths: int = NUM_PATHS) -> Cycle:
    """ZigMa's `zigzagN{K}`: layer i scans along the single zigzag path i mod K."""
    if isinstance(num_paths, bool) or not isinstance(num_paths, int) or not 1 <= num_paths <= NUM_PATHS:
        raise ValueError(f"num_paths must be an int in 1..{NUM_PATHS}, got {num_paths!r}")
    return Cycle(tuple(Zigzag(paths=(path,)) for path in range(num_paths)))


def windowed_schedule(
    directions: Sequence[Sequence[str | Direction]],
    v_reverse: VReverse | str = VReverse.CORRECT,
    pad_oversized_windows: bool = False,
) -> PerLayer:
    """LocalMamba's searched per-layer direction lists (e.g. `[["h", "v_flip", "w7", "w7_flip"], ...]`), one
    `Windowed` order per layer with the layer's directions in the listed order (= its parameter slots)."""
    if isinstance(directions, str) or not all(not isinstance(d, str) for d in directions):
        raise TypeError("directions must be a list of per-layer direction lists, e.g. [['h', 'v'], ['w2', 'h']]")
    return PerLayer(
        tuple(
            Windowed(directions=tuple(layer), v_reverse=v_reverse, pad_oversized_windows=pad_oversized_windows)
            for layer in directions
        )
    )

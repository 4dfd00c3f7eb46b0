"""Scan orders: an H × W grid -> K routes through its tokens, and back.

    order = scans.get("cross")            # or scans.Cross(), scans.Windowed(directions=("h", "w7"))
    route = order.route(H, W, device)     # (K, L') int64, cached per (H, W, device); -1 = padding step
    xs = order.scan(x)                    # (B, C, H, W) -> (B, K, C, L')
    x = order.merge(ys, H, W)             # (B, K, C, L') -> (B, C, H, W), the adjoint of scan

Per-layer orders (ZigMa's path rotation, LocalMamba's searched lists) are schedules: `scans.as_schedule(scan)`
turns a model's `scan=` argument into one, `schedule.for_layer(i)` gives layer i's order. A model's token sequence
(grid tokens, optionally a class token) is routed by `scans.token_routes(order, H, W, device, class_token)`.

Adding an order is one file: a `ScanOrder` subclass decorated with `@register("name")` in a module of this package.
Every module here is imported below, so the order is known to `get` / `list_orders` (hence to every model's `scan=`
and to the tests that run over all registered orders) without editing this file.
"""

import importlib
import pkgutil

from .atrous import Atrous
from .base import RouteTables, ScanOrder, clear_route_cache, grid_size
from .cross import Cross
from .functional import PAD
from .hilbert import Hilbert, Symmetry, gilbert
from .metrics import count_diagonal_steps, count_jumps, count_pads
from .plot import plot
from .raster import Bidirectional, Raster
from .registry import get, list_orders, register
from .schedule import Constant, Cycle, PerLayer, Schedule, as_schedule, windowed_schedule, zigzag_schedule
from .tokens import ClassTokenRouting, SequenceRoutes, is_sequence_order, token_routes
from .windowed import Axis, Direction, VReverse, Windowed
from .zigzag import Zigzag, snake_paths

__all__ = [
    "PAD",
    "Atrous",
    "Axis",
    "Bidirectional",
    "ClassTokenRouting",
    "Constant",
    "Cross",
    "Cycle",
    "Direction",
    "Hilbert",
    "PerLayer",
    "Raster",
    "RouteTables",
    "ScanOrder",
    "Schedule",
    "SequenceRoutes",
    "Symmetry",
    "VReverse",
    "Windowed",
    "Zigzag",
    "as_schedule",
    "clear_route_cache",
    "count_diagonal_steps",
    "count_jumps",
    "count_pads",
    "get",
    "gilbert",
    "grid_size",
    "is_sequence_order",
    "list_orders",
    "plot",
    "register",
    "snake_paths",
    "token_routes",
    "windowed_schedule",
    "zigzag_schedule",
]

# The orders' registrations (`@register`) run when their modules are imported: importing every module of the package
# makes a new order's file enough for `get` / `list_orders`, without an import line here.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
del _module

"""Scan orders: an H × W grid -> K routes through its tokens, and back.

    order = scans.get("cross")            # or scans.Cross(), scans.Windowed(directions=("h", "w7"))
    route = order.route(H, W, device)     # (K, L') int64, cached per (H, W, device); -1 = padding step
    xs = order.scan(x)                    # (B, C, H, W) -> (B, K, C, L')
    x = order.merge(ys, H, W)             # (B, K, C, L') -> (B, C, H, W), the adjoint of scan

Per-layer orders (ZigMa's path rotation, LocalMamba's searched lists) are schedules: `scans.as_schedule(scan)`
turns a model's `scan=` argument into one, `schedule.for_layer(i)` gives layer i's order. Sequences with a class
token are routed by `scans.WithToken`.
"""

from .atrous import Atrous
from .base import RouteTables, ScanOrder, clear_route_cache, grid_size
from .cross import Cross
from .functional import PAD, route_gather, route_scatter
from .hilbert import Hilbert, Symmetry, gilbert
from .metrics import count_diagonal_steps, count_jumps, count_pads
from .plot import plot
from .raster import Bidirectional, Raster
from .registry import get, list_orders, register
from .schedule import Constant, Cycle, PerLayer, Schedule, as_schedule, windowed_schedule, zigzag_schedule
from .tokens import TokenPlacement, WithToken, insert_token
from .windowed import Axis, Direction, VReverse, Windowed
from .zigzag import Zigzag, snake_paths

__all__ = [
    "PAD",
    "Atrous",
    "Axis",
    "Bidirectional",
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
    "Symmetry",
    "TokenPlacement",
    "VReverse",
    "Windowed",
    "WithToken",
    "Zigzag",
    "as_schedule",
    "clear_route_cache",
    "count_diagonal_steps",
    "count_jumps",
    "count_pads",
    "get",
    "gilbert",
    "grid_size",
    "insert_token",
    "list_orders",
    "plot",
    "register",
    "route_gather",
    "route_scatter",
    "snake_paths",
    "windowed_schedule",
    "zigzag_schedule",
]

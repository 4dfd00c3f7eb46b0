"""Scan orders: an H × W grid -> K routes through its tokens, and back.

order = scans.get("cross")            # or scans.Cross(), scans.Windowed(directions=("h", "w7"))
route = order.route(H, W, device)     # (K, L') int64, cached per (H, W, device); -1 = padding step
xs = order.scan(x)                    # (B, C, H, W) -> (B, K, C, L')
x = order.merge(ys, H, W)             # (B, K, C, L') -> (B, C, H, W), the adjoint of scan
"""

from .base import ScanOrder, clear_route_cache, grid_size
from .cross import Cross
from .functional import PAD, route_gather, route_scatter
from .raster import Bidirectional, Raster
from .registry import get, register
from .registry import list_orders as list

__all__ = [
    "PAD",
    "Bidirectional",
    "Cross",
    "Raster",
    "ScanOrder",
    "clear_route_cache",
    "get",
    "grid_size",
    "list",
    "register",
    "route_gather",
    "route_scatter",
]

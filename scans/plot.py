"""`scans.plot(order, H, W, path)`: a PNG of an order's routes, one panel per route."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .base import ScanOrder, grid_size
from .metrics import count_jumps
from .registry import get

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot(order: ScanOrder | str, height: int, width: int, path: str | Path, columns: int = 4) -> Path:
    """Draw every route of `order` on an H × W grid and save a PNG at `path`; returns the path.

    Each panel shows the route as a line through token centres (colour runs from the first step, dark, to the last,
    light), arrows on moves between 4-neighbours, dashed segments for jumps, a dot at the start and grey cells where
    the route never goes. Titles give each route's own length, its padding steps and its jumps (moves to a token
    that is not a 4-neighbour, pads skipped).
    """
    # A bare Figure renders PNGs with the Agg canvas: no pyplot, no global backend switch, no window. Imported here
    # so that `import vssm.scans` does not pay for matplotlib, which only the `plot` extra installs.
    try:
        from matplotlib.figure import Figure
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("vssm.scans.plot draws with matplotlib, which is not installed: "
                                  "pip install 'vssm[plot]'") from error

    order = get(order)
    height, width = grid_size(height, width)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"scans.plot writes PNG files, got the path {str(path)!r}")
    route = order.route(height, width)
    panels = order.num_routes
    columns = max(1, min(columns, panels))
    rows = math.ceil(panels / columns)
    cell = min(0.5, 6.0 / max(height, width))
    figure = Figure(layout="constrained", figsize=(columns * (width * cell + 1.0), rows * (height * cell + 1.2)))
    axes = figure.subplots(rows, columns, squeeze=False)
    jumps = count_jumps(route, width)
    lengths = order.route_lengths(height, width)
    for k in range(rows * columns):
        ax = axes[k // columns][k % columns]
        ax.set_axis_off()
        if k < panels:
            _draw_route(ax, route[k].numpy(), height, width)
            own = lengths[k]
            pads = int((route[k, :own] < 0).sum())
            ax.set_title(f"route {k}: {own} steps, {pads} pad, {jumps[k]} jumps", fontsize=8)
    figure.suptitle(f"{order!r} on {height} x {width}", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _draw_route(ax: Axes, steps: np.ndarray, height: int, width: int) -> None:
    visited = np.zeros(height * width, dtype=bool)
    tokens = steps[steps >= 0]
    visited[tokens] = True
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    ax.imshow(visited.reshape(height, width), cmap="Greys_r", vmin=-1.5, vmax=1, origin="upper")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    rows, cols = tokens // width, tokens % width
    if len(tokens) > 1:
        points = np.stack([cols, rows], axis=1).astype(float)
        segments = np.stack([points[:-1], points[1:]], axis=1)
        neighbour = np.abs(np.diff(rows)) + np.abs(np.diff(cols)) == 1
        colours = colormaps["viridis"](np.linspace(0, 1, len(segments)))
        ax.add_collection(LineCollection(segments[neighbour], colors=colours[neighbour], linewidths=1.2))
        ax.add_collection(
            LineCollection(segments[~neighbour], colors=colours[~neighbour], linewidths=0.8, linestyles="dashed")
        )
        if len(tokens) <= 400:  # arrow heads are unreadable beyond ~20 × 20
            middles = segments.mean(axis=1)
            deltas = segments[:, 1] - segments[:, 0]
            ax.quiver(
                middles[neighbour, 0] - deltas[neighbour, 0] * 0.15,
                middles[neighbour, 1] - deltas[neighbour, 1] * 0.15,
                deltas[neighbour, 0] * 0.3,
                deltas[neighbour, 1] * 0.3,
                color=colours[neighbour],
                angles="xy",
                scale_units="xy",
                scale=1,
                width=0.012,
                headwidth=4,
            )
    if len(tokens):
        ax.plot(cols[0], rows[0], "o", color="crimson", markersize=4)

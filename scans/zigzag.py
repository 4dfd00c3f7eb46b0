"""`zigzag`: ZigMa's eight boustrophedon paths, generalised from N × N to any H × W."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .registry import register

NUM_PATHS = 8


def _row_snake(height: int, width: int, row0: int, col0: int, row_step: int, col_step: int) -> np.ndarray:
    i = np.arange(height)[:, None]
    j = np.arange(width)[None, :]
    col = np.where(i % 2 == 0, j, width - 1 - j)
    return ((row0 + row_step * i) * width + col0 + col_step * col).ravel()


def _column_snake(height: int, width: int, row0: int, col0: int, row_step: int, col_step: int) -> np.ndarray:
    j = np.arange(width)[:, None]
    i = np.arange(height)[None, :]
    row = np.where(j % 2 == 0, i, height - 1 - i)
    return ((row0 + row_step * row) * width + col0 + col_step * j).ravel()


def snake_paths(height: int, width: int) -> list[np.ndarray]:
    """The eight paths in ZigMa's order: for each corner (top-left, top-right, bottom-left, bottom-right), the row
    snake then the column snake starting there. Equal to ZigMa's `zigzag_path(N)` when H = W = N."""
    corners = [(0, 0, 1, 1), (0, width - 1, 1, -1), (height - 1, 0, -1, 1), (height - 1, width - 1, -1, -1)]
    paths = []
    for corner in corners:
        paths.append(_row_snake(height, width, *corner).astype(np.int64))
        paths.append(_column_snake(height, width, *corner).astype(np.int64))
    return paths


@register("zigzag")
@dataclass(frozen=True, repr=False)
class Zigzag(ScanOrder):
    """Boustrophedon routes: a continuous path (every step moves to a 4-neighbour) for any H × W.

    `paths` picks routes from `snake_paths` (0-7, ZigMa's order); the default keeps all eight. ZigMa itself gives each
    layer a single path, layer i using path i mod K: that is `scans.zigzag_schedule(K)`.
    """

    paths: tuple[int, ...] = tuple(range(NUM_PATHS))

    def __post_init__(self) -> None:
        paths = tuple(self.paths) if not isinstance(self.paths, int) else (self.paths,)
        if not paths:
            raise ValueError("Zigzag needs at least one path, got none")
        for path in paths:
            if isinstance(path, bool) or not isinstance(path, int | np.integer) or not 0 <= path < NUM_PATHS:
                raise ValueError(f"Zigzag paths are integers in 0..{NUM_PATHS - 1}, got {path!r}")
        object.__setattr__(self, "paths", tuple(int(p) for p in paths))

    @property
    def num_routes(self) -> int:
        return len(self.paths)

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        every = snake_paths(height, width)
        return [every[p] for p in self.paths]

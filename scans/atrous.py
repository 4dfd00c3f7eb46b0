"""`atrous`: EfficientVMamba's skip sampling, four stride-2 sub-grids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .functional import PAD
from .registry import register


@register("atrous")
@dataclass(frozen=True, repr=False)
class Atrous(ScanOrder):
    """Four routes, one per stride-2 polyphase sub-grid, in EfficientVMamba's order and inner orders:

    k0 even rows / even columns, row-major;  k1 odd rows / even columns, column-major;
    k2 even rows / odd columns, row-major;   k3 odd rows / odd columns, column-major.

    The grid is zero-padded at the bottom/right to even H and W, so each route has ⌈H/2⌉·⌈W/2⌉ steps (with padding
    steps on odd sizes). The routes partition the grid: every token is visited once, and `merge` (the adjoint) is
    EfficientMerge's scatter, an exact inverse: `merge(scan(x)) == x`.
    """

    @property
    def num_routes(self) -> int:
        return 4

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        grid = np.full((height + height % 2, width + width % 2), PAD, dtype=np.int64)
        grid[:height, :width] = np.arange(height * width).reshape(height, width)
        return [
            grid[0::2, 0::2].ravel(),
            grid[1::2, 0::2].T.ravel(),
            grid[0::2, 1::2].ravel(),
            grid[1::2, 1::2].T.ravel(),
        ]

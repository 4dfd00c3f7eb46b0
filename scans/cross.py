"""`cross`: VMamba's four-way cross scan (SS2D)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .raster import column_major, row_major
from .registry import register


@register("cross")
@dataclass(frozen=True, repr=False)
class Cross(ScanOrder):
    """Four routes in VMamba's order: row-major, column-major, row-major reversed, column-major reversed.

    Route k pairs with VMamba's parameter block k (`A_logs` rows [k·E, (k+1)·E), `x_proj_weight[k]`, ...). The merge
    is the adjoint (a plain sum of the four inverse-permuted sequences), correct for H != W.
    """

    @property
    def num_routes(self) -> int:
        return 4

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        rows, columns = row_major(height, width), column_major(height, width)
        return [rows, columns, rows[::-1].copy(), columns[::-1].copy()]

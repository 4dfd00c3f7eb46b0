"""`tri_cross`: MSVMamba's three routes over its downsampled map (VMamba's `cross` without the row-major route)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .raster import column_major, row_major
from .registry import register


@register("tri_cross")
@dataclass(frozen=True, repr=False)
class TriCross(ScanOrder):
    """Three routes in MSVMamba's order: row-major reversed, column-major, column-major reversed.

    They are `cross`'s routes 2, 1, 3; MSVMamba runs them on the half-resolution copy of a map, one after the other
    as one sequence (`scans.multiscale.MultiScale`). The merge is the adjoint (a plain sum of the three
    inverse-permuted sequences), correct for H != W.
    """

    @property
    def num_routes(self) -> int:
        return 3

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        rows, columns = row_major(height, width), column_major(height, width)
        return [rows[::-1].copy(), columns, columns[::-1].copy()]

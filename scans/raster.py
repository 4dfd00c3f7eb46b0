"""Raster orders: `raster` (K = 1) and `bidirectional` (raster + its reverse; Vim)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .registry import register


def row_major(height: int, width: int) -> np.ndarray:
    """Raster visit list: 0, 1, ..., H·W - 1."""
    return np.arange(height * width, dtype=np.int64)


def column_major(height: int, width: int) -> np.ndarray:
    """Column by column, top to bottom: step k visits (k mod H)·W + ⌊k/H⌋."""
    return np.arange(height * width, dtype=np.int64).reshape(height, width).T.ravel()


@register("raster")
@dataclass(frozen=True, repr=False)
class Raster(ScanOrder):
    """One route, row-major: token i·W + j at step i·W + j."""

    @property
    def num_routes(self) -> int:
        return 1

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        return [row_major(height, width)]


@register("bidirectional")
@dataclass(frozen=True, repr=False)
class Bidirectional(ScanOrder):
    """Vim's two routes: raster, then raster reversed (route 1 step k reads token L - 1 - k).

    Vim flips its whole token sequence, middle class token included: `scans.token_routes` routes that sequence as a
    1 × (M + 1) grid (`ClassTokenRouting.IN_SEQUENCE`), or keeps the token at a fixed step (`FIXED_STEP`).
    """

    @property
    def num_routes(self) -> int:
        return 2

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        forward = row_major(height, width)
        return [forward, forward[::-1].copy()]

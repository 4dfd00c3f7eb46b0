"""`zigzag_bidirectional`: PlainMamba's four continuous 2-D zigzag routes.

PlainMamba (ChenhongyiYang/PlainMamba, `PlainMamba2D.get_permute_order`) scans the row snake from the top-left corner,
the same route backwards, the column snake from the top-left corner and that route backwards. Each of them is one of
ZigMa's eight paths (`zigzag.snake_paths`): the forward ones are paths 0 and 1; which path a backward one is depends
on the parity of the grid (the row snake ends bottom-left for an even number of rows, bottom-right for an odd one:
path 4 or 6; the column snake top-right or bottom-right: path 3 or 7). So no fixed `Zigzag(paths=...)` gives
PlainMamba's routes at every size, and this order builds them from the shared paths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .registry import register
from .zigzag import snake_paths


@register("zigzag_bidirectional")
@dataclass(frozen=True, repr=False)
class ZigzagBidirectional(ScanOrder):
    """Four routes: row snake, row snake reversed, column snake, column snake reversed (all from the top-left)."""

    @property
    def num_routes(self) -> int:
        return 4

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        row, column = snake_paths(height, width)[:2]
        return [row, row[::-1].copy(), column, column[::-1].copy()]

"""`hilbert`: the generalised Hilbert curve ("gilbert", J. Červený) for any W × H, and its symmetric variants."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .registry import register


class Symmetry(enum.Enum):
    """A symmetry of the rank grid (numpy `rot90` turns counter-clockwise), in ZigMa's list order."""

    IDENTITY = "identity"
    TRANSPOSE = "transpose"
    ROT90 = "rot90"
    ROT90_TRANSPOSE = "rot90_transpose"
    ROT180 = "rot180"
    ROT180_TRANSPOSE = "rot180_transpose"
    ROT270 = "rot270"
    ROT270_TRANSPOSE = "rot270_transpose"

    @property
    def quarter_turns(self) -> int:
        return {"identity": 0, "transpose": 0, "rot90": 1, "rot180": 2, "rot270": 3}[self.value.split("_")[0]]

    @property
    def transposes(self) -> bool:
        return self.value.endswith("transpose")

    def apply(self, grid: np.ndarray) -> np.ndarray:
        grid = np.rot90(grid, self.quarter_turns)
        return grid.T if self.transposes else grid

    def invert(self, grid: np.ndarray) -> np.ndarray:
        """The inverse of `apply`."""
        return np.rot90(grid.T if self.transposes else grid, -self.quarter_turns)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


Axes = tuple[int, int, int, int]


def _curve(ax: int, ay: int, bx: int, by: int, memo: dict[Axes, np.ndarray]) -> np.ndarray:
    """(n, 2) offsets (x, y) from the start cell of the gilbert sub-curve spanned by major axis a and minor axis b.

    A sub-curve depends only on (a, b), not on where it starts, so memoising on (a, b) turns the cell-by-cell
    recursion into a few hundred array concatenations: 256 × 256 builds in milliseconds.
    """
    key = (ax, ay, bx, by)
    if key not in memo:
        memo[key] = _build_curve(ax, ay, bx, by, memo)
    return memo[key]


def _build_curve(ax: int, ay: int, bx: int, by: int, memo: dict[Axes, np.ndarray]) -> np.ndarray:
    w, h = abs(ax + ay), abs(bx + by)
    dax, day, dbx, dby = _sign(ax), _sign(ay), _sign(bx), _sign(by)
    if h == 1:
        steps = np.arange(w, dtype=np.int64)
        return np.stack([steps * dax, steps * day], axis=1)
    if w == 1:
        steps = np.arange(h, dtype=np.int64)
        return np.stack([steps * dbx, steps * dby], axis=1)
    ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2
    w2, h2 = abs(ax2 + ay2), abs(bx2 + by2)
    if 2 * w > 3 * h:
        if w2 % 2 and w > 2:  # prefer even steps
            ax2, ay2 = ax2 + dax, ay2 + day
        parts = [_curve(ax2, ay2, bx, by, memo), _shift(_curve(ax - ax2, ay - ay2, bx, by, memo), ax2, ay2)]
    else:
        if h2 % 2 and h > 2:  # prefer even steps
            bx2, by2 = bx2 + dbx, by2 + dby
        parts = [
            _curve(bx2, by2, ax2, ay2, memo),
            _shift(_curve(ax, ay, bx - bx2, by - by2, memo), bx2, by2),
            _shift(_curve(-bx2, -by2, -(ax - ax2), -(ay - ay2), memo), ax - dax + bx2 - dbx, ay - day + by2 - dby),
        ]
    return np.concatenate(parts)


def _shift(cells: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return cells + np.array([dx, dy], dtype=np.int64)


def gilbert(height: int, width: int) -> np.ndarray:
    """Visit order (raster indices y·W + x) of the generalised Hilbert curve on an H × W grid, from (0, 0) along the
    longer side. Every step moves to a 4-neighbour, except for exactly one diagonal step when the longer side is odd
    and the shorter side even and >= 4 (no curve can avoid it)."""
    memo: dict[Axes, np.ndarray] = {}
    cells = _curve(width, 0, 0, height, memo) if width >= height else _curve(0, height, width, 0, memo)
    return cells[:, 1] * width + cells[:, 0]


def gilbert_rank(height: int, width: int) -> np.ndarray:
    """(H, W) grid of each cell's position along the curve: the inverse of `gilbert`. Gathering with this rank map
    (ZigMa's `hilbertN`) does not follow the curve; gather with the visit order."""
    rank = np.empty(height * width, dtype=np.int64)
    rank[gilbert(height, width)] = np.arange(height * width)
    return rank.reshape(height, width)


@register("hilbert")
@dataclass(frozen=True, repr=False)
class Hilbert(ScanOrder):
    """Generalised Hilbert routes, one per entry of `variants`.

    Variant g is the curve whose rank grid is g(rank grid of the base curve), the base grid being W × H where g swaps
    the axes, so every variant fits H × W and stays continuous. ZigMa's eight variants are
    [res, resᵀ, rot90, rot90ᵀ, rot180, rot180ᵀ, rot270, rot270ᵀ] of its rank grid; its grid is indexed [x, y], i.e.
    transposed relative to ours, so ZigMa's list is ours with each grid transposed first (the same set of eight routes
    on square grids). Unlike ZigMa, routes gather in visit order (the argsort of the rank grid), not with the rank map.
    On non-square grids the curve always runs along the longer side, so each axis-swapping variant repeats one of the
    four symmetries of the rectangle: the eight variants give four distinct routes there.
    """

    variants: tuple[Symmetry | str, ...] = (Symmetry.IDENTITY,)

    def __post_init__(self) -> None:
        variants = (self.variants,) if isinstance(self.variants, str | Symmetry) else tuple(self.variants)
        if not variants:
            raise ValueError("Hilbert needs at least one variant, got none")
        parsed = []
        for variant in variants:
            try:
                parsed.append(Symmetry(variant))
            except ValueError:
                known = ", ".join(s.value for s in Symmetry)
                raise ValueError(f"unknown Hilbert variant {variant!r}; known: {known}") from None
        object.__setattr__(self, "variants", tuple(parsed))

    @classmethod
    def all_variants(cls) -> Hilbert:
        """All eight symmetric variants, in ZigMa's list order."""
        return cls(variants=tuple(Symmetry))

    @property
    def num_routes(self) -> int:
        return len(self.variants)

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        curves: dict[bool, np.ndarray] = {}
        tokens = np.arange(height * width, dtype=np.int64).reshape(height, width)
        routes = []
        for variant in self.variants:
            swaps = variant.transposes != (variant.quarter_turns % 2 == 1)
            if swaps not in curves:
                curves[swaps] = gilbert(width, height) if swaps else gilbert(height, width)
            # Route = argsort(variant(rank grid)) without a sort: the base curve's cells, each carried by the variant
            # to its place on the H × W grid (the inverse symmetry applied to the grid of target raster indices).
            routes.append(variant.invert(tokens).ravel()[curves[swaps]])
        return routes

"""Continuity figures of routes: how often a route leaves the 4-neighbourhood of its previous token."""

from __future__ import annotations

from torch import Tensor


def _steps(route: Tensor, width: int) -> list[tuple[Tensor, Tensor]]:
    """Row and column displacement between consecutive non-pad tokens, for each route of a (K, L') table."""
    route = route.reshape(-1, route.shape[-1]).cpu()
    moves = []
    for row in route:
        tokens = row[row >= 0]
        rows, cols = tokens // width, tokens % width
        moves.append(((rows[1:] - rows[:-1]).abs(), (cols[1:] - cols[:-1]).abs()))
    return moves


def count_jumps(route: Tensor, width: int) -> list[int]:
    """Per route: steps between consecutive non-pad tokens whose Manhattan distance is not 1 (spec §0, item 5)."""
    return [int(((dr + dc) != 1).sum()) for dr, dc in _steps(route, width)]


def count_diagonal_steps(route: Tensor, width: int) -> list[int]:
    """Per route: steps to a diagonal neighbour (one row and one column away)."""
    return [int(((dr == 1) & (dc == 1)).sum()) for dr, dc in _steps(route, width)]


def count_pads(route: Tensor) -> list[int]:
    """Per route: padding steps (including right-padding to the common length)."""
    return (route.reshape(-1, route.shape[-1]) < 0).sum(dim=1).tolist()

"""`zigzag_bidirectional` (PlainMamba's routes) against a walk written from the original's description, for every
grid up to 9 × 9; its relation to ZigMa's eight `zigzag` paths; continuity; the direction tokens' table."""

from __future__ import annotations

import itertools

import pytest
import torch

from vssm import scans
from vssm.layers.plainmamba_mixer import StepDirection, plain_routes, step_directions

RIGHT, LEFT, UP, DOWN = (int(d) for d in (StepDirection.RIGHT, StepDirection.LEFT, StepDirection.UP,
                                          StepDirection.DOWN))
GRIDS = list(itertools.product(range(1, 10), repeat=2))


def _walk(height: int, width: int, start: tuple[int, int], lines: str, first: int) -> tuple[list[int], list[int]]:
    """PlainMamba's `get_permute_order` walk, from its description: start at `start` moving along the row
    (`lines='rows'`) or column in direction `first` (±1); at the end of a line step to the next line (down / right
    for a walk from the top or left, up / left otherwise) and turn round. Returns the visited raster indices and, per
    step, the direction of the move into it (0 for the first)."""
    (i, j), along = start, first
    across = 1 if (start[0] == 0 if lines == "rows" else start[1] == 0) else -1
    visits, moves = [], [0]
    while 0 <= i < height and 0 <= j < width:
        visits.append(i * width + j)
        if lines == "rows":
            if 0 <= j + along < width:
                j += along
                moves.append(RIGHT if along > 0 else LEFT)
            else:
                i, along = i + across, -along
                moves.append(DOWN if across > 0 else UP)
        else:
            if 0 <= i + along < height:
                i += along
                moves.append(DOWN if along > 0 else UP)
            else:
                j, along = j + across, -along
                moves.append(RIGHT if across > 0 else LEFT)
    return visits, moves[:-1]


def _plainmamba(height: int, width: int) -> tuple[list[list[int]], list[list[int]]]:
    """The original's four routes: row snake from the top-left; row snake from the bottom row (bottom-right moving
    left when H is odd, bottom-left moving right when even); column snake from the top-left; column snake from the
    right column (bottom-right moving up when W is odd, top-right moving down when even)."""
    walks = [
        _walk(height, width, (0, 0), "rows", 1),
        _walk(height, width, (height - 1, width - 1), "rows", -1) if height % 2 else
        _walk(height, width, (height - 1, 0), "rows", 1),
        _walk(height, width, (0, 0), "columns", 1),
        _walk(height, width, (height - 1, width - 1), "columns", -1) if width % 2 else
        _walk(height, width, (0, width - 1), "columns", 1),
    ]
    return [w[0] for w in walks], [w[1] for w in walks]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
def test_routes_and_directions_are_plainmambas(grid: tuple[int, int]) -> None:
    height, width = grid
    routes, directions = _plainmamba(height, width)
    route = scans.get("zigzag_bidirectional").route(height, width)
    assert route.tolist() == routes
    assert step_directions(route, width).tolist() == directions


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g[0]}x{g[1]}")
def test_routes_are_zigmas_paths_chosen_by_parity(grid: tuple[int, int]) -> None:
    height, width = grid
    zigma = scans.Zigzag().route(height, width)
    backward_row, backward_column = (6 if height % 2 else 4), (7 if width % 2 else 3)
    expected = zigma[[0, backward_row, 1, backward_column]]
    assert torch.equal(scans.get("zigzag_bidirectional").route(height, width), expected)


def test_routes_are_continuous_and_visit_every_token_once() -> None:
    for height, width in GRIDS:
        route = scans.get("zigzag_bidirectional").route(height, width)
        assert scans.count_jumps(route, width) == [0] * 4
        assert torch.equal(route.sort(dim=1).values, torch.arange(height * width).expand(4, -1))


def test_a_jump_is_named_by_its_row_change() -> None:
    route = scans.Raster().route(2, 3)  # 0 1 2 | 3 4 5: the return to column 0 moves down a row
    assert step_directions(route, 3).tolist() == [[0, RIGHT, RIGHT, DOWN, RIGHT, RIGHT]]


def test_routes_with_padding_steps_are_refused() -> None:
    order = scans.Windowed(directions=("w2",))
    with pytest.raises(ValueError, match=r"visit every token of the 3×3 grid once \(9 steps, no padding\)"):
        plain_routes(order.route(3, 3), 3, 3)


def test_the_route_plot_draws(tmp_path) -> None:
    path = tmp_path / "routes.png"
    scans.plot(scans.get("zigzag_bidirectional"), 5, 6, path)
    assert path.stat().st_size > 0

"""Continuity: zigzag and Hilbert routes move to a 4-neighbour at every step (Hilbert: one forced diagonal step)."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vssm import scans

grids = st.tuples(st.integers(1, 40), st.integers(1, 40))


@settings(max_examples=60, deadline=None)
@given(grid=grids)
def test_every_zigzag_path_is_continuous(grid: tuple[int, int]) -> None:
    height, width = grid
    assert scans.count_jumps(scans.Zigzag().route(height, width), width) == [0] * 8


def _diagonal_expected(height: int, width: int) -> int:
    longer, shorter = max(height, width), min(height, width)
    return int(longer % 2 == 1 and shorter % 2 == 0 and shorter >= 4)


def test_gilbert_has_one_diagonal_step_exactly_when_forced_for_all_sizes_up_to_40() -> None:
    diagonal_sizes = 0
    for height, width in itertools.product(range(1, 41), repeat=2):
        route = torch.from_numpy(scans.gilbert(height, width)).unsqueeze(0)
        expected = _diagonal_expected(height, width)
        jumps, diagonals = scans.count_jumps(route, width), scans.count_diagonal_steps(route, width)
        assert (jumps, diagonals) == ([expected], [expected]), (height, width)
        diagonal_sizes += expected
    assert diagonal_sizes == 342  # the spec's exhaustive count


@pytest.mark.parametrize("grid", [(15, 12), (9, 6), (4, 5), (14, 14), (28, 28), (56, 56), (7, 7), (50, 84)])
def test_every_hilbert_variant_keeps_the_continuity_of_the_curve(grid: tuple[int, int]) -> None:
    height, width = grid
    route = scans.Hilbert.all_variants().route(height, width)
    expected = _diagonal_expected(height, width)
    assert scans.count_jumps(route, width) == [expected] * 8
    assert scans.count_diagonal_steps(route, width) == [expected] * 8


# Jumps between consecutive non-pad tokens, spec §9 table.
JUMPS = {
    "raster": (scans.Raster(), {(3, 4): [2], (7, 7): [6], (14, 14): [13], (56, 56): [55]}),
    "cross": (scans.Cross(), {(3, 4): [2, 3, 2, 3], (7, 7): [6] * 4, (14, 14): [13] * 4, (56, 56): [55] * 4}),
    "w2": (scans.Windowed(directions=("w2",)), {(3, 4): [4], (7, 7): [21], (14, 14): [97], (56, 56): [1567]}),
    "w7": (
        scans.Windowed(directions=("w7",), pad_oversized_windows=True),
        {(3, 4): [2], (7, 7): [6], (14, 14): [27], (56, 56): [447]},
    ),
    "hilbert": (scans.Hilbert(), {(3, 4): [0], (7, 7): [0], (14, 14): [0], (56, 56): [0]}),
}


@pytest.mark.parametrize("name", sorted(JUMPS))
def test_jump_counts_match_the_spec_table(name: str) -> None:
    order, table = JUMPS[name]
    for (height, width), expected in table.items():
        assert scans.count_jumps(order.route(height, width), width) == expected, (height, width)


def test_pad_counts_of_windowed_routes() -> None:
    assert scans.count_pads(scans.Windowed(directions=("w2",)).route(7, 7)) == [15]
    assert scans.count_pads(scans.Windowed(directions=("w7",), pad_oversized_windows=True).route(3, 4)) == [37]

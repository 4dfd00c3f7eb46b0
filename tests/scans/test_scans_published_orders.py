"""Exact visit lists from the spec (specs/scans.md), each cross-checked there against the official index code."""

import pytest
import torch

from vssm import scans


def _parse(text: str) -> list[int]:
    return [scans.PAD if token == "P" else int(token) for token in text.split()]


def _route(order: scans.ScanOrder, height: int, width: int) -> list[list[int]]:
    return order.route(height, width).tolist()


RASTER_3x4 = "0 1 2 3 4 5 6 7 8 9 10 11"
REVERSE_3x4 = "11 10 9 8 7 6 5 4 3 2 1 0"

CROSS = {
    (3, 4): [RASTER_3x4, "0 4 8 1 5 9 2 6 10 3 7 11", REVERSE_3x4, "11 7 3 10 6 2 9 5 1 8 4 0"],
    (4, 4): [
        " ".join(map(str, range(16))),
        "0 4 8 12 1 5 9 13 2 6 10 14 3 7 11 15",
        " ".join(map(str, range(15, -1, -1))),
        "15 11 7 3 14 10 6 2 13 9 5 1 12 8 4 0",
    ],
}


def test_raster_and_bidirectional_3x4() -> None:
    assert _route(scans.Raster(), 3, 4) == [_parse(RASTER_3x4)]
    assert _route(scans.Bidirectional(), 3, 4) == [_parse(RASTER_3x4), _parse(REVERSE_3x4)]


@pytest.mark.parametrize("grid", sorted(CROSS))
def test_cross_matches_vmamba_tables(grid: tuple[int, int]) -> None:
    assert _route(scans.Cross(), *grid) == [_parse(row) for row in CROSS[grid]]


def test_cross_on_non_square_5x9_is_row_column_major_and_flips() -> None:
    height, width = 5, 9
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    rows = x.flatten(2)
    columns = x.transpose(2, 3).flatten(2)
    expected = torch.stack([rows, columns, rows.flip(-1), columns.flip(-1)], dim=1)
    assert torch.equal(scans.Cross().scan(x), expected)
    ys = torch.randn_like(expected)
    by_hand = (ys[:, 0] + ys[:, 2].flip(-1)).view(2, 3, height, width) + (ys[:, 1] + ys[:, 3].flip(-1)).view(
        2, 3, width, height
    ).transpose(2, 3)
    torch.testing.assert_close(scans.Cross().merge(ys, height, width), by_hand, rtol=1e-12, atol=1e-14)


ZIGZAG = {
    (3, 4): [
        "0 1 2 3 7 6 5 4 8 9 10 11",
        "0 4 8 9 5 1 2 6 10 11 7 3",
        "3 2 1 0 4 5 6 7 11 10 9 8",
        "3 7 11 10 6 2 1 5 9 8 4 0",
        "8 9 10 11 7 6 5 4 0 1 2 3",
        "8 4 0 1 5 9 10 6 2 3 7 11",
        "11 10 9 8 4 5 6 7 3 2 1 0",
        "11 7 3 2 6 10 9 5 1 0 4 8",
    ],
    (4, 4): [
        "0 1 2 3 7 6 5 4 8 9 10 11 15 14 13 12",
        "0 4 8 12 13 9 5 1 2 6 10 14 15 11 7 3",
        "3 2 1 0 4 5 6 7 11 10 9 8 12 13 14 15",
        "3 7 11 15 14 10 6 2 1 5 9 13 12 8 4 0",
        "12 13 14 15 11 10 9 8 4 5 6 7 3 2 1 0",
        "12 8 4 0 1 5 9 13 14 10 6 2 3 7 11 15",
        "15 14 13 12 8 9 10 11 7 6 5 4 0 1 2 3",
        "15 11 7 3 2 6 10 14 13 9 5 1 0 4 8 12",
    ],
}


@pytest.mark.parametrize("grid", sorted(ZIGZAG))
def test_zigzag_matches_zigmas_eight_paths(grid: tuple[int, int]) -> None:
    assert _route(scans.Zigzag(), *grid) == [_parse(row) for row in ZIGZAG[grid]]
    assert _route(scans.Zigzag(paths=(6, 1)), *grid) == [_parse(ZIGZAG[grid][6]), _parse(ZIGZAG[grid][1])]


def _zigma_zigzag_path(n: int) -> list[list[int]]:
    """ZigMa's square-only definition (utils_zigzag.py `zigzag_path`), re-derived from its description."""
    paths = []
    for row0, col0, dr, dc in [(0, 0, 1, 1), (0, n - 1, 1, -1), (n - 1, 0, -1, 1), (n - 1, n - 1, -1, -1)]:
        paths.append(
            [(row0 + dr * i) * n + col0 + dc * (j if i % 2 == 0 else n - 1 - j) for i in range(n) for j in range(n)]
        )
        paths.append(
            [(row0 + dr * (i if j % 2 == 0 else n - 1 - i)) * n + col0 + dc * j for j in range(n) for i in range(n)]
        )
    return paths


@pytest.mark.parametrize("n", [1, 2, 5, 8, 14])
def test_zigzag_reduces_to_zigma_on_square_grids(n: int) -> None:
    assert _route(scans.Zigzag(), n, n) == _zigma_zigzag_path(n)


WINDOWED = {
    (3, 4): {
        "h": RASTER_3x4,
        "h_flip": REVERSE_3x4,
        "v": "0 4 8 1 5 9 2 6 10 3 7 11",
        "v_flip": "11 7 3 10 6 2 9 5 1 8 4 0",
        "w2": "0 1 4 5 2 3 6 7 8 9 P P 10 11 P P",
        "w2_flip": "P P 11 10 P P 9 8 7 6 3 2 5 4 1 0",
        "w7": "0 1 2 3 P P P 4 5 6 7 P P P 8 9 10 11" + " P" * 31,
        "w7_flip": "P " * 31 + "11 10 9 8 P P P 7 6 5 4 P P P 3 2 1 0",
    },
    (4, 4): {
        "h": " ".join(map(str, range(16))),
        "h_flip": " ".join(map(str, range(15, -1, -1))),
        "v": "0 4 8 12 1 5 9 13 2 6 10 14 3 7 11 15",
        "v_flip": "15 11 7 3 14 10 6 2 13 9 5 1 12 8 4 0",
        "w2": "0 1 4 5 2 3 6 7 8 9 12 13 10 11 14 15",
        "w2_flip": "15 14 11 10 13 12 9 8 7 6 3 2 5 4 1 0",
        "w7": "0 1 2 3 P P P 4 5 6 7 P P P 8 9 10 11 P P P 12 13 14 15" + " P" * 24,
        "w7_flip": "P " * 24 + "15 14 13 12 P P P 11 10 9 8 P P P 7 6 5 4 P P P 3 2 1 0",
    },
}


@pytest.mark.parametrize("grid", sorted(WINDOWED))
def test_windowed_matches_localmambas_directions(grid: tuple[int, int]) -> None:
    table = WINDOWED[grid]
    order = scans.Windowed(directions=tuple(table), pad_oversized_windows=True)
    routes = order.route(*grid)
    lengths = order.route_lengths(*grid)
    for k, (name, expected) in enumerate(table.items()):
        expected = _parse(expected)
        assert lengths[k] == len(expected), name
        assert routes[k, : lengths[k]].tolist() == expected, name
        assert (routes[k, lengths[k] :] == scans.PAD).all(), name


def test_windowed_w2_on_7x7_is_64_steps_with_15_interleaved_pads() -> None:
    route = scans.Windowed(directions=("w2",)).route(7, 7)[0]
    assert route.shape == (64,)
    assert int((route == scans.PAD).sum()) == 15
    assert route[:20].tolist() == _parse("0 1 7 8 2 3 9 10 4 5 11 12 6 P 13 P 14 15 21 22")
    assert scans.count_jumps(route, 7) == [21]


def test_windowed_on_14x14_has_no_pads_and_w7_starts_with_the_first_window_row() -> None:
    route = scans.Windowed(directions=("w2", "w7")).route(14, 14)
    assert route.shape == (2, 196) and bool((route >= 0).all())
    assert route[1, :10].tolist() == [0, 1, 2, 3, 4, 5, 6, 14, 15, 16]


def test_localmamba_official_v_reverse_scrambles_non_square_grids_as_specified() -> None:
    order = scans.Windowed(directions=("v", "v_flip"), v_reverse=scans.VReverse.OFFICIAL)
    route, merge_route = order.route(3, 4), order.merge_route(3, 4)
    for k in range(2):
        received = [int(route[k, merge_route[k].tolist().index(position)]) for position in range(12)]
        assert received == _parse("0 5 10 4 9 3 8 2 7 1 6 11")


def test_localmamba_official_v_reverse_matches_its_rearrange() -> None:
    height, width = 3, 5
    order = scans.Windowed(directions=("h", "v", "v_flip", "w2"), v_reverse="official")
    ys = torch.randn(2, 4, 6, order.route(height, width).shape[1], dtype=torch.float64)
    per_route = order.unscan(ys, height, width).flatten(3)
    # LocalMamba's reverse of v: 'b d (h w) -> b d (w h)'; of v_flip: the same after flipping back.
    v_official = ys[:, 1, :, : height * width].reshape(2, 6, height, width).transpose(2, 3).reshape(2, 6, -1)
    v_flip_official = ys[:, 2, :, : height * width].flip(-1).reshape(2, 6, height, width).transpose(2, 3)
    assert torch.equal(per_route[:, 1], v_official)
    assert torch.equal(per_route[:, 2], v_flip_official.reshape(2, 6, -1))
    correct = scans.Windowed(directions=("h", "v", "v_flip", "w2")).unscan(ys, height, width).flatten(3)
    assert torch.equal(per_route[:, 0], correct[:, 0]) and torch.equal(per_route[:, 3], correct[:, 3])
    assert not torch.equal(per_route[:, 1], correct[:, 1])


@pytest.mark.parametrize("size", [1, 4, 7, 14])
def test_official_v_reverse_is_the_true_inverse_on_square_grids(size: int) -> None:
    official = scans.Windowed(directions=("v", "v_flip", "h"), v_reverse="official")
    assert torch.equal(official.merge_route(size, size), official.route(size, size))


HILBERT = {
    (3, 4): "0 1 5 4 8 9 10 11 7 6 2 3",
    (4, 4): "0 1 5 4 8 12 13 9 10 14 15 11 7 6 2 3",
    (4, 5): "0 1 6 5 10 15 16 11 12 17 18 19 14 13 9 8 7 2 3 4",
}


@pytest.mark.parametrize("grid", sorted(HILBERT))
def test_hilbert_matches_gilbert(grid: tuple[int, int]) -> None:
    assert _route(scans.Hilbert(), *grid) == [_parse(HILBERT[grid])]


def _classic_hilbert(n: int) -> list[int]:
    """The classic Hilbert curve on an n × n grid (n a power of two): the textbook d -> (x, y) conversion."""
    order = []
    for d in range(n * n):
        x = y = 0
        s, t = 1, d
        while s < n:
            rx = 1 & (t // 2)
            ry = 1 & (t ^ rx)
            if ry == 0:
                if rx == 1:
                    x, y = s - 1 - x, s - 1 - y
                x, y = y, x
            x, y = x + s * rx, y + s * ry
            t //= 4
            s *= 2
        order.append(y * n + x)  # x = column, y = row
    return order


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_hilbert_on_powers_of_two_is_the_classic_curve(n: int) -> None:
    assert _route(scans.Hilbert(), n, n) == [_classic_hilbert(n)]


def test_hilbert_gathers_in_visit_order_not_with_the_rank_map() -> None:
    rank = scans.hilbert.gilbert_rank(3, 4).ravel().tolist()
    assert rank == _parse("0 1 10 11 3 2 9 8 4 5 6 7")  # ZigMa's hilbertN gathers with this (3 jumps)
    assert scans.count_jumps(torch.tensor([rank]), 4) == [3]
    assert _route(scans.Hilbert(), 3, 4)[0] != rank


def test_hilbert_variants_are_zigmas_symmetries_of_the_rank_grid() -> None:
    import numpy as np

    rank = scans.hilbert.gilbert_rank(8, 8)
    grids = [rank, rank.T, np.rot90(rank, 1), np.rot90(rank, 1).T, np.rot90(rank, 2), np.rot90(rank, 2).T,
             np.rot90(rank, 3), np.rot90(rank, 3).T]  # fmt: skip
    expected = [np.argsort(grid.ravel()).tolist() for grid in grids]
    assert _route(scans.Hilbert.all_variants(), 8, 8) == expected
    assert len({tuple(r) for r in expected}) == 8


ATROUS = {
    (3, 4): ["0 2 8 10", "4 P 6 P", "1 3 9 11", "5 P 7 P"],
    (4, 4): ["0 2 8 10", "4 12 6 14", "1 3 9 11", "5 13 7 15"],
}


@pytest.mark.parametrize("grid", sorted(ATROUS))
def test_atrous_matches_efficientvmamba(grid: tuple[int, int]) -> None:
    assert _route(scans.Atrous(), *grid) == [_parse(row) for row in ATROUS[grid]]


def test_atrous_merge_is_the_exact_inverse() -> None:
    x = torch.randn(2, 3, 5, 7)
    assert torch.equal(scans.Atrous().merge(scans.Atrous().scan(x), 5, 7), x)


@pytest.mark.parametrize(("grid", "distinct"), [((8, 8), 8), ((5, 8), 4), ((9, 6), 4), ((1, 5), 2)])
def test_hilbert_variants_are_distinct_up_to_the_symmetries_of_the_grid(grid: tuple[int, int], distinct: int) -> None:
    routes = _route(scans.Hilbert.all_variants(), *grid)
    assert len({tuple(r) for r in routes}) == distinct

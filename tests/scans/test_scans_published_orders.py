"""Exact visit lists from the spec (specs/scans.md), each cross-checked there against the official index code."""

import pytest
import torch

import scans


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

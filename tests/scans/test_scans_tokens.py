"""Routes over a grid plus a class token, checked against LocalMamba's and Vim's own token handling."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vssm import scans


def _localmamba_mid_cls_scan(order: scans.ScanOrder, seq: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """LocalMamba's MultiMamba steps 1-3: take the cls out at p = (L - 1) // 2, scan the grid, insert it at p."""
    p = (seq.shape[-1] - 1) // 2
    cls, grid = seq[..., p : p + 1], torch.cat([seq[..., :p], seq[..., p + 1 :]], dim=-1)
    scanned = order.scan(grid.reshape(*grid.shape[:2], height, width))
    cls = cls.unsqueeze(1).expand(-1, order.num_routes, -1, -1)
    return torch.cat([scanned[..., :p], cls, scanned[..., p:]], dim=-1)


def _localmamba_mid_cls_reverse(order: scans.ScanOrder, ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Steps 5-7: take each route's cls output out at p, reverse the grid part, put the cls back at p."""
    p = height * width // 2
    cls, grid = ys[..., p : p + 1], torch.cat([ys[..., :p], ys[..., p + 1 :]], dim=-1)
    reversed_grid = order.unscan(grid, height, width).flatten(3)
    return torch.cat([reversed_grid[..., :p], cls, reversed_grid[..., p:]], dim=-1)


ORDERS = [
    scans.Windowed(directions=("h", "v_flip", "w2", "w7_flip"), pad_oversized_windows=True),
    scans.Windowed(directions=("v", "v_flip", "w2_flip", "h"), v_reverse="official", pad_oversized_windows=True),
    scans.Cross(),
    scans.Hilbert.all_variants(),
]


@pytest.mark.parametrize("order", ORDERS, ids=repr)
@settings(max_examples=15, deadline=None)
@given(height=st.integers(1, 9), width=st.integers(1, 9))
def test_with_token_reproduces_localmambas_mid_cls_handling(order: scans.ScanOrder, height: int, width: int) -> None:
    with_token = scans.WithToken(order, scans.TokenPlacement.MIDDLE)
    seq = torch.randn(2, 3, height * width + 1, dtype=torch.float64)
    assert torch.equal(with_token.gather(seq, height, width), _localmamba_mid_cls_scan(order, seq, height, width))
    ys = torch.randn(2, order.num_routes, 3, with_token.route(height, width).shape[1], dtype=torch.float64)
    expected = _localmamba_mid_cls_reverse(order, ys, height, width)
    assert torch.equal(with_token.scatter(ys, height, width, sum_routes=False), expected)
    torch.testing.assert_close(with_token.scatter(ys, height, width), expected.sum(1), rtol=1e-12, atol=1e-14)


def test_mid_token_position_and_route_for_localvim_at_224() -> None:
    with_token = scans.WithToken("cross")
    assert with_token.position(14, 14) == 98
    route = with_token.route(14, 14)
    assert route.shape == (4, 197)
    assert (route[:, 98] == 98).all()
    assert route[0].tolist() == list(range(197))  # raster with the token in place is the identity
    assert route[2, :3].tolist() == [196, 195, 194]  # grid token 195 sits at sequence position 196


@pytest.mark.parametrize("placement", list(scans.TokenPlacement))
def test_token_placements(placement: scans.TokenPlacement) -> None:
    with_token = scans.WithToken(scans.Raster(), placement)
    p = {"first": 0, "middle": 6, "last": 12}[placement.value]
    assert with_token.position(3, 4) == p
    assert with_token.route(3, 4).tolist() == [list(range(13))]


@pytest.mark.parametrize("size", [14, 4])
def test_vims_flip_of_the_whole_sequence_equals_bidirectional_with_token_for_even_token_counts(size: int) -> None:
    tokens = size * size
    vim = scans.Bidirectional().route(1, tokens + 1)
    assert torch.equal(scans.WithToken("bidirectional").route(size, size), vim)


def test_vims_flip_differs_for_odd_token_counts_so_vim_routes_the_sequence_as_one_row() -> None:
    tokens = 27 * 27  # Vim's stride-8 models: 729 patches, cls at 364
    vim = scans.Bidirectional().route(1, tokens + 1)
    with_token = scans.WithToken("bidirectional").route(27, 27)
    assert vim[1].tolist().index(364) == 365 and with_token[1].tolist().index(364) == 364


def test_with_token_routes_are_cached_and_on_the_requested_device() -> None:
    with_token = scans.WithToken(scans.Windowed(directions=("w2",)))
    assert with_token.route(7, 7) is with_token.route(7, 7)
    assert scans.WithToken(scans.Windowed(directions=("w2",))).route(7, 7) is with_token.route(7, 7)
    assert with_token.route(7, 7, "meta").device.type == "meta"
    assert with_token.route(7, 7).shape == (1, 65)


def test_with_token_gather_and_scatter_are_adjoint() -> None:
    with_token = scans.WithToken(scans.Windowed(directions=("w2", "v_flip")), scans.TokenPlacement.FIRST)
    seq = torch.randn(2, 3, 7 * 5 + 1, dtype=torch.float64)
    g = torch.randn(2, 2, 3, with_token.route(7, 5).shape[1], dtype=torch.float64)
    torch.testing.assert_close(
        (with_token.gather(seq, 7, 5) * g).sum(), (seq * with_token.scatter(g, 7, 5)).sum(), rtol=1e-12, atol=1e-12
    )


def test_with_token_checks_shapes() -> None:
    with_token = scans.WithToken("cross")
    with pytest.raises(ValueError, match=r"\(B, C, 13\), got \(2, 3, 12\)"):
        with_token.gather(torch.randn(2, 3, 12), 3, 4)
    with pytest.raises(ValueError, match=r"K=4, C, L'=13\), got \(2, 2, 3, 13\)"):
        with_token.scatter(torch.randn(2, 2, 3, 13), 3, 4)
    with pytest.raises(ValueError, match="'sideways' is not a valid TokenPlacement"):
        scans.WithToken("cross", "sideways")


def test_insert_token_keeps_pads_and_checks_the_position() -> None:
    route = torch.tensor([[0, -1, 1, 2]])
    assert scans.insert_token(route, 1).tolist() == [[0, 1, -1, 2, 3]]
    with pytest.raises(ValueError, match=r"0\.\.4"):
        scans.insert_token(route, 5)

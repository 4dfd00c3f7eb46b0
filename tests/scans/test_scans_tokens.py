"""Routes through a token sequence with a class token, checked against LocalMamba's and Vim's own token handling."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vssm import scans

CPU = torch.device("cpu")


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
def test_fixed_step_routing_reproduces_localmambas_mid_cls_handling(
    order: scans.ScanOrder, height: int, width: int
) -> None:
    routes = scans.token_routes(order, height, width, CPU, True, scans.ClassTokenRouting.FIXED_STEP)
    seq = torch.randn(2, 3, height * width + 1, dtype=torch.float64)
    assert torch.equal(routes.gather(seq), _localmamba_mid_cls_scan(order, seq, height, width))
    ys = torch.randn(2, order.num_routes, 3, routes.steps, dtype=torch.float64)
    expected = _localmamba_mid_cls_reverse(order, ys, height, width)
    for k in range(order.num_routes):  # each route's own way back: the others' outputs set to zero
        single = torch.zeros_like(ys)
        single[:, k] = ys[:, k]
        assert torch.equal(routes.scatter_sum(single), expected[:, k])
    torch.testing.assert_close(routes.scatter_sum(ys), expected.sum(1), rtol=1e-12, atol=1e-14)


def test_mid_token_route_for_localvim_at_224() -> None:
    routes = scans.token_routes(scans.Cross(), 14, 14, CPU, class_token=True)
    route = routes.gather(torch.arange(197).view(1, 1, 197))[0, :, 0]
    assert route.shape == (4, 197)
    assert (route[:, 98] == 98).all()
    assert route[0].tolist() == list(range(197))  # raster with the token in place is the identity
    assert route[2, :3].tolist() == [196, 195, 194]  # grid token 195 sits at sequence position 196


@pytest.mark.parametrize("size", [14, 4])
def test_vims_flip_of_the_whole_sequence_equals_the_fixed_step_for_even_token_counts(size: int) -> None:
    in_sequence, fixed_step = (
        scans.token_routes(scans.Bidirectional(), size, size, CPU, True, routing)
        for routing in scans.ClassTokenRouting
    )
    assert torch.equal(in_sequence.gather_index, fixed_step.gather_index)


def test_vims_flip_differs_for_odd_token_counts_so_vim_routes_the_sequence_as_one_row() -> None:
    # Vim's stride-8 models: 27 × 27 = 729 patches, cls at 364.
    vim = scans.token_routes(scans.Bidirectional(), 27, 27, CPU, class_token=True)  # a 1-D order: IN_SEQUENCE
    fixed = scans.token_routes(scans.Bidirectional(), 27, 27, CPU, True, scans.ClassTokenRouting.FIXED_STEP)
    assert vim.gather_index[1].tolist().index(364) == 365 and fixed.gather_index[1].tolist().index(364) == 364
    seq = torch.arange(730.0).view(1, 1, 730)
    gathered = vim.gather(seq)[0, :, 0]
    assert torch.equal(gathered[0], seq[0, 0]) and torch.equal(gathered[1], seq[0, 0].flip(0))


def test_two_dimensional_orders_visit_the_class_token_at_the_same_step() -> None:
    routes = scans.token_routes(scans.Cross(), 3, 5, CPU, class_token=True)  # 15 patches, token at 7
    gathered = routes.gather(torch.arange(16.0).view(1, 1, 16))[0, :, 0]
    assert (gathered[:, 7] == 7).all()
    assert sorted(gathered[2].tolist()) == list(range(16))
    with pytest.raises(ValueError, match="needs a 1-D order"):
        scans.token_routes(scans.Cross(), 3, 5, CPU, True, scans.ClassTokenRouting.IN_SEQUENCE)


@pytest.mark.parametrize("class_token", [False, True])
@pytest.mark.parametrize("name", scans.list_orders())
def test_scatter_mean_inverts_gather_for_every_order(name: str, class_token: bool) -> None:
    routes = scans.token_routes(scans.get(name), 5, 6, CPU, class_token)
    x = torch.randn(2, 3, 30 + class_token)
    torch.testing.assert_close(routes.scatter_mean(routes.gather(x)), x)
    torch.testing.assert_close(routes.scatter_sum(routes.gather(x)) / routes.coverage, x)


@pytest.mark.parametrize("class_token", [False, True])
def test_gather_and_scatter_sum_are_adjoint(class_token: bool) -> None:
    order = scans.Windowed(directions=("w2", "v_flip"), pad_oversized_windows=True)
    routes = scans.token_routes(order, 7, 5, CPU, class_token)
    seq = torch.randn(2, 3, 35 + class_token, dtype=torch.float64)
    g = torch.randn(2, 2, 3, routes.steps, dtype=torch.float64)
    torch.testing.assert_close(
        (routes.gather(seq) * g).sum(), (seq * routes.scatter_sum(g)).sum(), rtol=1e-12, atol=1e-12
    )


def test_raster_routes_are_views() -> None:
    routes = scans.token_routes(scans.Raster(), 3, 4, CPU, class_token=True)
    assert routes.identity and not scans.token_routes(scans.Bidirectional(), 3, 4, CPU).identity
    x = torch.randn(2, 5, 13)
    gathered = routes.gather(x)
    assert gathered.shape == (2, 1, 5, 13) and gathered.data_ptr() == x.data_ptr()
    assert torch.equal(routes.scatter_mean(gathered), x)


def test_uneven_coverage_is_counted_per_token() -> None:
    # atrous partitions the grid (each patch once); the class token is visited by all 4 routes.
    routes = scans.token_routes(scans.Atrous(), 4, 4, CPU, class_token=True)
    assert isinstance(routes.coverage, torch.Tensor)
    assert routes.coverage[8] == 4 and (torch.cat([routes.coverage[:8], routes.coverage[9:]]) == 1).all()


@pytest.mark.parametrize(("name", "class_token"), [("bidirectional", True), ("cross", False), ("atrous", True)])
def test_routes_on_the_meta_device_are_the_cpu_routes_moved(name: str, class_token: bool) -> None:
    cpu = scans.token_routes(scans.get(name), 3, 5, CPU, class_token)
    meta = scans.token_routes(scans.get(name), 3, 5, torch.device("meta"), class_token)
    assert meta.gather_index.is_meta and meta.merge_index.is_meta
    assert meta.gather_index.shape == cpu.gather_index.shape and meta.merge_index.shape == cpu.merge_index.shape
    assert (meta.length, meta.padded, meta.identity, meta.reversed, meta.adjoint) == (
        cpu.length, cpu.padded, cpu.identity, cpu.reversed, cpu.adjoint)  # fmt: skip
    assert isinstance(meta.coverage, int) == isinstance(cpu.coverage, int)
    if not isinstance(meta.coverage, int):
        assert meta.coverage.is_meta


def test_routes_are_cached_with_the_route_tables_and_cleared_with_them() -> None:
    order = scans.Windowed(directions=("w2",))
    routes = scans.token_routes(order, 7, 7, CPU, class_token=True)
    assert scans.token_routes(scans.Windowed(directions=("w2",)), 7, 7, CPU, True) is routes
    scans.clear_route_cache()
    rebuilt = scans.token_routes(order, 7, 7, CPU, class_token=True)
    assert rebuilt is not routes and torch.equal(rebuilt.gather_index, routes.gather_index)
    assert scans.token_routes(order, 7, 7, "cpu", class_token=True) is rebuilt


@pytest.mark.parametrize("class_token", [False, True])
def test_routes_first_built_in_inference_mode_serve_training(class_token: bool) -> None:
    order = scans.get("windowed", directions=["h", "v_flip", "w2"])
    scans.clear_route_cache()
    with torch.inference_mode():  # first use of this (order, grid): built here, cached for later calls
        scans.token_routes(order, 5, 7, CPU, class_token)
    routes = scans.token_routes(order, 5, 7, CPU, class_token)
    assert not routes.gather_index.is_inference() and not routes.merge_index.is_inference()
    x = torch.randn(2, 4, routes.length, requires_grad=True)
    routes.scatter_sum(routes.gather(x)).sum().backward()
    assert x.grad is not None


def test_sequence_routes_need_every_token() -> None:
    with pytest.raises(ValueError, match="cannot serve a plain model"):
        scans.SequenceRoutes.build(torch.tensor([[0, 1, -1]]), torch.tensor([[0, 1, -1]]), 4)

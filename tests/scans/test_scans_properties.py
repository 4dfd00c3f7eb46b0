"""Properties every scan order must have, for many grid sizes (hypothesis) and the spec's fixed sizes."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vssm import scans
from vssm.scans.testing import example_orders

SPEC_SIZES = [1, 2, 3, 4, 5, 7, 8, 14, 15]
grids = st.tuples(st.integers(1, 17), st.integers(1, 17))
seeds = st.integers(0, 2**31 - 1)
examples = settings(max_examples=25, deadline=None)
ORDERS = example_orders()


def order_id(order: scans.ScanOrder) -> str:
    return repr(order)


def _random(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    # float32 draws widened to float64: sums of up to 8 copies stay exact, so "== K·x" can be asserted bit for bit.
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(dtype)


def _visits(order: scans.ScanOrder, height: int, width: int) -> np.ndarray:
    """How many routes visit each token."""
    route = order.route(height, width).numpy()
    return np.bincount(route[route >= 0], minlength=height * width)


def _check_route(order: scans.ScanOrder, height: int, width: int) -> None:
    route = order.route(height, width)
    assert route.dtype == torch.int64 and route.ndim == 2 and route.shape[0] == order.num_routes
    lengths = order.route_lengths(height, width)
    assert len(lengths) == order.num_routes and max(lengths) == route.shape[1]
    for k, own_length in enumerate(lengths):
        steps = route[k].numpy()
        assert (steps[own_length:] == scans.PAD).all(), "right-padding beyond a route's own length must be PAD"
        tokens = steps[steps >= 0]
        assert (steps[steps < 0] == scans.PAD).all()
        assert len(np.unique(tokens)) == len(tokens), f"route {k} visits a token twice"
        assert tokens.min(initial=0) >= 0 and tokens.max(initial=0) < height * width
    visits = _visits(order, height, width)
    expected = 1 if type(order).__name__ == "Atrous" else order.num_routes
    assert (visits == expected).all(), f"every token must be visited {expected} times"


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
def test_routes_are_padded_permutations_for_spec_sizes(order: scans.ScanOrder) -> None:
    for height, width in itertools.product(SPEC_SIZES, SPEC_SIZES):
        _check_route(order, height, width)


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
@examples
@given(grid=grids)
def test_routes_are_padded_permutations(order: scans.ScanOrder, grid: tuple[int, int]) -> None:
    _check_route(order, *grid)


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
@examples
@given(grid=grids, seed=seeds)
def test_merge_of_scan_is_visit_count_times_x_exactly(order: scans.ScanOrder, grid: tuple[int, int], seed: int) -> None:
    height, width = grid
    x = _random((2, 3, height, width), seed)
    visits = torch.from_numpy(_visits(order, height, width)).view(height, width).to(x.dtype)
    if order.merge_route(height, width) is order.route(height, width):
        assert torch.equal(order.merge(order.scan(x), height, width), visits * x)


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
@examples
@given(grid=grids, seed=seeds)
def test_merge_is_the_adjoint_of_scan(order: scans.ScanOrder, grid: tuple[int, int], seed: int) -> None:
    height, width = grid
    x = _random((2, 3, height, width), seed)
    g = _random((2, order.num_routes, 3, order.route(height, width).shape[1]), seed + 1)
    lhs = (order.scan(x) * g).sum()
    rhs = (x * order.merge(g, height, width)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)
    # and autograd of scan is merge
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(order.scan(x), x, g)
    torch.testing.assert_close(grad, order.merge(g, height, width), rtol=0, atol=0)


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
@examples
@given(grid=grids, seed=seeds)
def test_scan_reads_tokens_along_the_route(order: scans.ScanOrder, grid: tuple[int, int], seed: int) -> None:
    height, width = grid
    x = _random((2, 3, height, width), seed)
    route = order.route(height, width)
    flat = torch.cat([x.flatten(2), x.new_zeros(2, 3, 1)], dim=2)  # the extra zero column stands for PAD
    expected = torch.stack([flat[:, :, route[k]] for k in range(order.num_routes)], dim=1)
    assert torch.equal(order.scan(x), expected)


@pytest.mark.parametrize("order", ORDERS, ids=order_id)
@examples
@given(grid=grids, seed=seeds)
def test_unscan_is_merge_per_route(order: scans.ScanOrder, grid: tuple[int, int], seed: int) -> None:
    height, width = grid
    ys = _random((2, order.num_routes, 3, order.route(height, width).shape[1]), seed)
    per_route = order.unscan(ys, height, width)
    assert per_route.shape == (2, order.num_routes, 3, height, width)
    torch.testing.assert_close(per_route.sum(1), order.merge(ys, height, width), rtol=1e-12, atol=1e-14)
    for k in range(order.num_routes):
        single = torch.zeros_like(ys)
        single[:, k] = ys[:, k]
        assert torch.equal(per_route[:, k], order.merge(single, height, width))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("order", ORDERS, ids=order_id)
def test_scan_and_merge_keep_dtype_and_values(order: scans.ScanOrder, dtype: torch.dtype) -> None:
    x = _random((1, 2, 4, 6), seed=int(torch.randint(0, 2**31 - 1, ())), dtype=dtype)
    xs = order.scan(x)
    assert xs.dtype == dtype
    reference = order.scan(x.double()).to(dtype)
    assert torch.equal(xs, reference)
    assert order.merge(xs, 4, 6).dtype == dtype

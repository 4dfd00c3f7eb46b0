"""kernels.route_order: which routes are gathered before the Triton kernels, the `use_route_reading` switch, and
the gathers against plain loops."""

import gc
import weakref

import pytest
import torch
from torch.profiler import profile

from vssm import kernels
from vssm.kernels.backends import Backend
from vssm.kernels.route_order import gather_channels, gather_groups, route_layout, scatter_channels
from vssm.kernels.testing import assert_matches_reference, cpu_backends, random_route, random_scan_inputs


def _raster_and_columns(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    raster = torch.arange(side * side)
    return raster, raster.view(side, side).t().flatten()


def test_rasters_are_read_in_place_and_columns_gathered() -> None:
    raster, columns = _raster_and_columns(8)
    assert not route_layout(torch.stack([raster, raster.flip(0)]), 64).scatters
    assert route_layout(torch.stack([raster, columns, raster.flip(0), columns.flip(0)]), 64).scatters
    assert route_layout(random_route(2, 64, 0, torch.Generator().manual_seed(0)), 64).scatters


def test_padding_is_seen_and_left_out_of_the_neighbour_share() -> None:
    raster, _ = _raster_and_columns(4)
    padded = torch.cat([raster[:8], torch.tensor([-1, -1]), raster[8:]])[None]
    layout = route_layout(padded, 16)
    assert layout.padded and not layout.scatters
    assert not route_layout(raster[None], 16).padded


def test_layout_follows_in_place_changes_of_the_route() -> None:
    raster, columns = _raster_and_columns(6)
    route = raster.clone()[None]
    assert not route_layout(route, 36).scatters
    route.copy_(columns[None])
    assert route_layout(route, 36).scatters


def _reference_gather(x: torch.Tensor, route: torch.Tensor, channels: int) -> torch.Tensor:
    routes, steps = route.shape
    per_route = channels // routes
    out = x.new_zeros(x.shape[0], channels, steps)
    for k in range(routes):
        for t, token in enumerate(route[k].tolist()):
            if token >= 0:
                rows = slice(k * per_route, (k + 1) * per_route) if x.shape[1] == channels else slice(None)
                out[:, k * per_route:(k + 1) * per_route, t] = x[:, rows, token]
    return out


@pytest.mark.parametrize("shared", [False, True], ids=["per_route", "shared"])
@pytest.mark.parametrize("pad", [0, 3])
def test_gather_then_scatter_matches_loops_and_round_trips(shared: bool, pad: int) -> None:
    gen = torch.Generator().manual_seed(pad)
    route = random_route(4, 10, pad, gen)
    layout = route_layout(route, 10)
    x = torch.randn(2, 3 if shared else 12, 10, generator=gen)
    gathered = gather_channels(x, route, layout, 12)
    torch.testing.assert_close(gathered, _reference_gather(x, route, 12), rtol=0, atol=0)
    if not shared:
        torch.testing.assert_close(scatter_channels(gathered, route, layout), x, rtol=0, atol=0)


@pytest.mark.parametrize(("groups", "routes"), [(1, 4), (2, 2), (4, 2), (2, 3)])
def test_gather_groups_serves_each_channel_its_group_along_its_route(groups: int, routes: int) -> None:
    gen = torch.Generator().manual_seed(groups * routes)
    route = random_route(routes, 7, 2, gen)
    x = torch.randn(2, groups, 3, 7, generator=gen)
    out = gather_groups(x, route, route_layout(route, 7))
    merged = out.shape[1]
    channels = 12
    assert merged % groups == 0 and merged % routes == 0 and channels % merged == 0
    for d in range(channels):
        j, g, k = d // (channels // merged), d // (channels // groups), d // (channels // routes)
        for t, token in enumerate(route[k].tolist()):
            expected = x[:, g, :, token] if token >= 0 else torch.zeros(2, 3)
            torch.testing.assert_close(out[:, j, :, t], expected, rtol=0, atol=0)


def _reference_scatter(y: torch.Tensor, route: torch.Tensor, length: int) -> torch.Tensor:
    routes = route.shape[0]
    per_route = y.shape[1] // routes
    out = y.new_zeros(y.shape[0], y.shape[1], length)
    for k in range(routes):
        for t, token in enumerate(route[k].tolist()):
            if token >= 0:
                out[:, k * per_route:(k + 1) * per_route, token] = y[:, k * per_route:(k + 1) * per_route, t]
    return out


def _reference_gather_shared_group(x: torch.Tensor, route: torch.Tensor) -> torch.Tensor:
    """x: (batch, 1, N, L), one B group read by every route -> (batch, K, N, L')."""
    rows = []
    for k in range(route.shape[0]):
        steps = [x[:, 0, :, token] if token >= 0 else x.new_zeros(x.shape[0], x.shape[2])
                 for token in route[k].tolist()]
        rows.append(torch.stack(steps, dim=-1))
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize("shared", [False, True], ids=["per_route", "shared"])
def test_gradients_are_the_gathers_transposed(shared: bool) -> None:
    """Each gather's backward (a gather with the inverse route, no scatter) against autograd of the loop versions."""
    gen = torch.Generator().manual_seed(5)
    route = random_route(2, 6, 2, gen)
    layout = route_layout(route, 6)
    x = torch.randn(1, 2 if shared else 4, 6, generator=gen, requires_grad=True)
    group = torch.randn(1, 1, 3, 6, generator=gen, requires_grad=True)
    weight, token_weight, group_weight = (torch.randn(1, 4, 8, generator=gen), torch.randn(1, 4, 6, generator=gen),
                                          torch.randn(1, 2, 3, 8, generator=gen))

    def channel_loss(gather, scatter) -> torch.Tensor:
        return (scatter(gather(x) * weight) * token_weight).sum()

    fast = channel_loss(lambda t: gather_channels(t, route, layout, 4), lambda t: scatter_channels(t, route, layout))
    slow = channel_loss(lambda t: _reference_gather(t, route, 4), lambda t: _reference_scatter(t, route, 6))
    torch.testing.assert_close(torch.autograd.grad(fast, x)[0], torch.autograd.grad(slow, x)[0])
    fast = (gather_groups(group, route, layout) * group_weight).sum()
    slow = (_reference_gather_shared_group(group, route) * group_weight).sum()
    torch.testing.assert_close(torch.autograd.grad(fast, group)[0], torch.autograd.grad(slow, group)[0])


def test_cached_layouts_do_not_keep_their_route_alive() -> None:
    raster, columns = _raster_and_columns(4)
    route = torch.stack([raster, columns]).to(torch.int32)
    layout = route_layout(route, 16)
    assert layout.kernel_route.dtype == torch.int32 and torch.equal(layout.kernel_route, route)
    alive = weakref.ref(route)
    del route, layout
    gc.collect()
    assert alive() is None


CPU_BACKENDS = cpu_backends()


def _gathers(reading: str, route: torch.Tensor) -> bool:
    """Whether an eager scan on the cpu backend under `use_route_reading(reading)` gathers its inputs into route
    order (the C loop itself never calls aten::gather)."""
    inputs = random_scan_inputs(1, 4, 6, 2, 2, route=route)
    with kernels.use_backend(Backend.CPU), kernels.use_route_reading(reading), profile() as prof:
        kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, route=route)
    return any(event.name == "aten::gather" for event in prof.events())


@pytest.mark.skipif(Backend.CPU not in CPU_BACKENDS, reason="no C compiler")
def test_route_reading_switch_decides_whether_inputs_are_gathered() -> None:
    route = random_route(2, 6, 1, torch.Generator().manual_seed(4))
    assert _gathers("gathered", route)
    assert not _gathers("in_kernel", route)
    assert not _gathers("IN_KERNEL", route)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("shared_u", [False, True], ids=["u_per_route", "shared_u"])
@pytest.mark.usefixtures("route_reading")
def test_every_backend_matches_the_reference_both_ways_of_reading_routes(backend: Backend, shared_u: bool) -> None:
    gen = torch.Generator().manual_seed(7)
    inputs = random_scan_inputs(2, 8, 9, 3, 2, route=random_route(4, 9, 2, gen), shared_u=shared_u, generator=gen)
    assert_matches_reference(backend, inputs, torch.float32)


def test_route_reading_switch_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match=r"route reading: expected one of \['in_kernel', 'gathered'\], got 'both'"):
        kernels.use_route_reading("both")
    with pytest.raises(TypeError, match=r"route reading: expected a RouteReading or one of"):
        kernels.use_route_reading(1)
    with kernels.use_route_reading(kernels.RouteReading.GATHERED) as reading:
        assert reading is kernels.RouteReading.GATHERED

"""The ScanOrder contract: registry, caching per size and device, shapes, bad input."""

import pytest
import torch

from vssm import scans
from vssm.scans.testing import example_orders


def test_registry_lists_and_builds_every_order() -> None:
    names = scans.list_orders()
    assert names == sorted(names)
    assert {"raster", "bidirectional", "cross"} <= set(names)
    for name in names:
        order = scans.get(name)
        assert isinstance(order, scans.ScanOrder)
        assert order.name == name


def test_get_returns_an_instance_unchanged_and_refuses_kwargs_with_it() -> None:
    order = scans.Cross()
    assert scans.get(order) is order
    with pytest.raises(TypeError, match="keyword arguments"):
        scans.get(order, window=7)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown scan order 'spiral'") as info:
        scans.get("spiral")
    for name in scans.list_orders():
        assert name in str(info.value)


def test_get_refuses_a_non_name() -> None:
    with pytest.raises(TypeError, match="name or a ScanOrder"):
        scans.get(4)


@pytest.mark.parametrize("order", example_orders(), ids=repr)
def test_repr_names_the_class_and_is_readable(order: scans.ScanOrder) -> None:
    text = repr(order)
    assert text.startswith(type(order).__name__ + "(")
    assert "<" not in text  # no enum or object reprs


def test_route_is_cached_per_size_and_device_and_shared_by_equal_orders() -> None:
    order = scans.Cross()
    first = order.route(5, 9)
    assert order.route(5, 9) is first
    assert order.route(5, 9, "cpu") is first
    assert order.route(5, 9, torch.device("cpu")) is first
    assert scans.Cross().route(5, 9) is first  # orders are values: equal orders share tables
    assert order.route(9, 5) is not first
    on_meta = order.route(5, 9, "meta")
    assert on_meta.device.type == "meta" and on_meta.shape == first.shape
    assert order.route(5, 9, "meta") is on_meta


def test_scan_and_merge_work_on_the_meta_device() -> None:
    order = scans.Cross()
    xs = order.scan(torch.empty(2, 3, 4, 5, device="meta"))
    assert xs.device.type == "meta" and xs.shape == (2, 4, 3, 20)
    assert order.merge(xs, 4, 5).shape == (2, 3, 4, 5)


@pytest.mark.gpu
def test_route_lives_on_the_requested_cuda_device() -> None:
    order = scans.Cross()
    route = order.route(5, 9, "cuda")
    assert route.is_cuda
    assert order.route(5, 9, torch.device("cuda", torch.cuda.current_device())) is route
    x = torch.randn(2, 3, 5, 9, device="cuda")
    torch.testing.assert_close(order.scan(x).cpu(), order.scan(x.cpu()), rtol=0, atol=0)


def test_clear_route_cache_rebuilds_equal_tables() -> None:
    order = scans.Cross()
    first = order.route(3, 4)
    scans.clear_route_cache()
    second = order.route(3, 4)
    assert second is not first and torch.equal(second, first)


def test_route_lengths_and_num_routes() -> None:
    assert scans.Cross().num_routes == 4
    assert scans.Cross().route_lengths(3, 4) == (12, 12, 12, 12)
    assert scans.Raster().route(1, 7).tolist() == [list(range(7))]


@pytest.mark.parametrize("bad", [(3, 4, 5), (12,), (2, 3, 4, 5, 6)])
def test_scan_refuses_non_4d_input_naming_the_shape(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*" + str(bad).replace("(", r"\(").replace(")", r"\)")):
        scans.Cross().scan(torch.randn(bad))


def test_scan_refuses_a_non_tensor() -> None:
    with pytest.raises(TypeError, match="tensor"):
        scans.Cross().scan([[1.0]])


def test_merge_refuses_mismatched_grid_naming_both_values() -> None:
    order = scans.Cross()
    ys = order.scan(torch.randn(2, 3, 5, 9))
    with pytest.raises(ValueError, match=r"H=5, W=8.*L'=40.*45"):
        order.merge(ys, 5, 8)
    with pytest.raises(ValueError, match=r"K=4.*\(2, 2, 3, 45\)"):
        order.merge(ys[:, :2], 5, 9)
    with pytest.raises(ValueError, match=r"\(B, K=4, C, L'=45\)"):
        order.merge(ys[0], 5, 9)


@pytest.mark.parametrize(
    ("height", "width", "error"),
    [(0, 4, ValueError), (3, -1, ValueError), (2.0, 4, TypeError), (True, 4, TypeError), ("3", 4, TypeError)],
)
def test_bad_grid_sizes_are_refused(height: object, width: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="grid size"):
        scans.Cross().route(height, width)


def test_scan_and_merge_trace_under_torch_compile_without_graph_breaks() -> None:
    order = scans.Windowed(directions=("h", "w2", "v_flip", "w7"), pad_oversized_windows=True)

    def scan_twice_and_merge(x: torch.Tensor) -> torch.Tensor:
        return order.merge(order.scan(x) * 2, x.shape[2], x.shape[3])

    x = torch.randn(2, 3, 5, 6)
    torch._dynamo.reset()
    assert torch._dynamo.explain(scan_twice_and_merge)(x).graph_break_count == 0
    compiled = torch.compile(scan_twice_and_merge, backend="aot_eager", fullgraph=True)
    assert torch.equal(compiled(x), scan_twice_and_merge(x))

"""SS2D: route addressing == materialised scan/merge == float64 reference, forward and backward, on tiny mixers."""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext

import pytest
import torch
from torch import nn

import vssm.layers.ss2d as ss2d_module
from vssm import kernels, scans
from vssm.kernels.route_order import route_layout
from vssm.kernels.tolerances import assert_all_close_3way
from vssm.layers.layout import Layout
from vssm.layers.route_bases import BaseKind, from_bases, permute_groups, route_bases, to_bases
from vssm.layers.ss2d import SS2D, SS2DForm, routable

ORDERS = {
    "cross": scans.Cross(),
    # right-padded routes of different lengths, windows padded at the border, reversed padded routes
    "windowed_padded": scans.Windowed(directions=("h", "w3", "v_flip", "w3_flip"), pad_oversized_windows=True),
    # routes that partition the grid: route addressing cannot express them, so both settings run materialised
    "atrous": scans.Atrous(),
}
GRID = (5, 7)  # H != W and odd, so row/column confusions and window padding show


def _perturb(module: SS2D) -> SS2D:
    """Move every parameter off its initial value (as the golden fixtures do), so trivial values cannot hide bugs."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == "A_logs":
                p.add_(torch.randn_like(p))
            elif name == "Ds":
                p.add_(0.5 * torch.randn_like(p))
            elif p.dim() == 1:
                p.add_(0.2 * torch.randn_like(p))
            else:
                p.add_(torch.randn_like(p) / math.sqrt(p[0].numel()))
    return module


def _mixer(form: SS2DForm, order: scans.ScanOrder, layout: Layout, d_model: int = 8) -> SS2D:
    d_state = 1 if form is SS2DForm.V05_NOZ else 4
    return _perturb(SS2D(d_model, d_state=d_state, expand=2.0, form=form, scan=order, layout=layout))


def _input(module: SS2D, batch: int = 2) -> torch.Tensor:
    x = torch.randn(batch, module.d_model, *GRID)
    return module.layout.from_nchw(x).contiguous()


def _run(module: SS2D, x: torch.Tensor, grad: torch.Tensor, route_addressing: bool, dtype: torch.dtype, backend):
    module = copy.deepcopy(module).to(dtype)
    module.route_addressing = route_addressing
    x = x.detach().to(dtype).requires_grad_(True)
    with kernels.use_backend(backend) if backend else nullcontext():
        out = module(x)
        (out * grad.to(dtype)).sum().backward()
    names = ["out", "x", *(n for n, _ in module.named_parameters())]
    return [out, x.grad, *(p.grad for p in module.parameters())], names


@pytest.mark.parametrize("layout", list(Layout), ids=lambda layout: layout.value)
@pytest.mark.parametrize("form", list(SS2DForm), ids=lambda form: form.name)
@pytest.mark.parametrize("order", sorted(ORDERS))
def test_route_addressing_equals_materialised_equals_float64(order: str, form: SS2DForm, layout: Layout) -> None:
    module = _mixer(form, ORDERS[order], layout)
    x = _input(module)
    grad = torch.randn_like(module(x))
    fused, names = _run(module, x, grad, True, torch.float32, None)
    materialised, _ = _run(module, x, grad, False, torch.float32, None)
    reference, _ = _run(module, x, grad, False, torch.float32, "reference")
    reference64, _ = _run(module, x, grad, False, torch.float64, "reference")
    fused64, _ = _run(module, x, grad, True, torch.float64, "reference")
    assert all(g is not None for g in fused), "a parameter got no gradient"
    assert_all_close_3way(fused, reference, reference64, [f"route {n}" for n in names])
    assert_all_close_3way(materialised, reference, reference64, [f"materialised {n}" for n in names])
    # In float64 both paths are the same sums in another order: equal to rounding.
    for a, b, name in zip(fused64, reference64, names):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"float64 route vs materialised: {name}")


def test_route_addressing_needs_no_gathered_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _mixer(SS2DForm.V05_NOZ, scans.Cross(), Layout.CHANNELS_FIRST)
    x = _input(module)
    expected = module(x)

    def refuse(*args, **kwargs):
        raise AssertionError("the default path must not gather or scatter route copies")

    monkeypatch.setattr(scans.Cross, "scan", refuse)
    monkeypatch.setattr(scans.Cross, "merge", refuse)
    torch.testing.assert_close(module(x), expected)
    module.route_addressing = False
    with pytest.raises(AssertionError, match="must not gather"):
        module(x)


def test_routable_tells_which_orders_route_addressing_can_express() -> None:
    assert routable(scans.Cross(), 5, 7)
    assert routable(ORDERS["windowed_padded"], 5, 7)
    assert not routable(scans.Atrous(), 5, 7)
    official = scans.Windowed(directions=("h", "v"), v_reverse=scans.VReverse.OFFICIAL)
    assert routable(official, 4, 4)  # the official reverse is right on square grids
    assert not routable(official, 4, 6)


class RouteGate(nn.Module):
    """A per-route channel gate, like LocalVMamba's: (B, K, E, L) -> (B, K, E, L)."""

    def __init__(self, routes: int, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(routes, channels, 1))

    def forward(self, ys: torch.Tensor) -> torch.Tensor:
        return ys * torch.sigmoid(self.weight + ys.mean(dim=-1, keepdim=True))


@pytest.mark.parametrize("order", ["cross", "windowed_padded"])
def test_route_mixer_sees_the_same_per_route_outputs_on_both_paths(order: str) -> None:
    scan = ORDERS[order]
    module = _mixer(SS2DForm.V0, scan, Layout.CHANNELS_LAST)
    module.route_mixer = RouteGate(scan.num_routes, module.d_inner)
    x = _input(module)
    grad = torch.randn_like(module(x))
    fused, names = _run(module, x, grad, True, torch.float32, None)
    reference, _ = _run(module, x, grad, False, torch.float32, "reference")
    reference64, _ = _run(module, x, grad, False, torch.float64, "reference")
    assert "route_mixer.weight" in names
    assert_all_close_3way(fused, reference, reference64, names)


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_parameter_groups_follow_the_number_of_routes(order: str) -> None:
    scan = ORDERS[order]
    module = SS2D(16, d_state=3, expand=1.5, scan=scan)
    k, e, r = scan.num_routes, 24, 1
    shapes = {name: tuple(p.shape) for name, p in module.named_parameters()}
    assert shapes["x_proj_weight"] == (k, r + 2 * 3, e)
    assert shapes["dt_projs_weight"] == (k, e, r)
    assert shapes["dt_projs_bias"] == (k, e)
    assert shapes["A_logs"] == (k * e, 3)
    assert shapes["Ds"] == (k * e,)


def test_scan_precision_follows_the_form() -> None:
    """v05: u/delta/B/C in the activation dtype; v0: forced to float32. The scan output is float32 either way."""
    seen = []
    real = kernels.selective_scan

    def spy(u, delta, A, B, C, *args, **kwargs):
        seen.append((u.dtype, delta.dtype, B.dtype, C.dtype))
        y = real(u, delta, A, B, C, *args, **kwargs)
        assert y.dtype == torch.float32
        return y

    x = torch.randn(1, 8, 6, 6, dtype=torch.bfloat16)
    for form, expected in ((SS2DForm.V05_NOZ, torch.bfloat16), (SS2DForm.V0, torch.float32)):
        module = SS2D(8, d_state=2, form=form).to(torch.bfloat16)
        seen.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kernels, "selective_scan", spy)
            out = module(x)
        assert seen == [(expected,) * 4]
        assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_bad_options_are_rejected() -> None:
    with pytest.raises(TypeError, match="SS2DForm"):
        SS2D(8, form="v05_noz")
    with pytest.raises(TypeError, match="Layout"):
        SS2D(8, layout="channels_first")
    with pytest.raises(ValueError, match="odd kernel"):
        SS2D(8, d_conv=4)
    with pytest.raises(ValueError, match="unknown scan order"):
        SS2D(8, scan="diagonal-ish")



@pytest.mark.parametrize("path", ["_ssm_routed", "_ssm_materialised"])
def test_cpu_batch_slices_give_the_whole_batch_result(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _mixer(SS2DForm.V0, ORDERS["windowed_padded"], Layout.CHANNELS_LAST)
    module.route_mixer = RouteGate(module.num_routes, module.d_inner)
    x = _input(module, batch=5)
    grad = torch.randn_like(module(x))
    route_addressing = path == "_ssm_routed"
    whole, names = _run(module, x, grad, route_addressing, torch.float32, None)

    sizes = []
    run = getattr(SS2D, path)

    def recorded(self: SS2D, part: torch.Tensor) -> torch.Tensor:
        sizes.append(part.shape[0])
        return run(self, part)

    per_sample = 4 * module.num_routes * module.d_inner * math.prod(GRID)
    monkeypatch.setattr(ss2d_module, "CPU_ROUTE_TENSOR_BYTES", 2 * per_sample)
    monkeypatch.setattr(SS2D, path, recorded)
    sliced, _ = _run(module, x, grad, route_addressing, torch.float32, None)
    assert sizes == [2, 2, 1]  # two samples at a time, then the rest
    for a, b, name in zip(sliced, whole, names, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=name)


# ------------------------------------------------------------------------------------------------- base layouts
# SS2D in base layouts (vssm.layers.route_bases); the Triton run of this path is in tests/kernels/test_triton.py

BASE_ORDERS = {
    "cross": ORDERS["cross"],
    # no two routes share a base: route addressing runs
    "windowed_padded": ORDERS["windowed_padded"],
    # a direction next to its flip: sharing a base reorders the routes (scan order 0, 2, 1, 3); not with a mixer
    "windowed_pairs": scans.Windowed(directions=("h", "h_flip", "w3", "w3_flip"), pad_oversized_windows=True),
    # windows with padding steps, gathered into their base, paired with their flips in the routes' own order
    "windowed_alternating": scans.Windowed(directions=("h", "w3", "h_flip", "w3_flip"), pad_oversized_windows=True),
    "bidirectional": scans.get("bidirectional"),
}


def _run_float64(module: SS2D, x: torch.Tensor, grad: torch.Tensor, in_bases: bool,
                 monkeypatch: pytest.MonkeyPatch):
    module = copy.deepcopy(module).to(torch.float64)
    x = x.detach().to(torch.float64).requires_grad_(True)
    shares = route_bases(module.order, *GRID, "cpu", module.route_mixer is not None).num_bases < module.num_routes
    with monkeypatch.context() as patch:
        patch.setattr(SS2D, "_in_base_layouts", lambda self, x: in_bases)
        if in_bases:
            skipped = "_ssm_routed" if shares else "_ssm_in_bases"
            patch.setattr(SS2D, skipped, lambda *args: pytest.fail(f"{skipped} ran"))
        with kernels.use_backend("reference"):
            out = module(x)
            (out * grad.to(torch.float64)).sum().backward()
    names = ["out", "x", *(n for n, _ in module.named_parameters())]
    return [out, x.grad, *(p.grad for p in module.parameters())], names


@pytest.mark.parametrize("mixer", [False, True], ids=["sum", "route_mixer"])
@pytest.mark.parametrize("form", list(SS2DForm), ids=lambda form: form.name)
@pytest.mark.parametrize("order", sorted(BASE_ORDERS))
def test_base_layouts_equal_route_addressing(order: str, form: SS2DForm, mixer: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    scan = BASE_ORDERS[order]
    module = _mixer(form, scan, Layout.CHANNELS_FIRST)
    if mixer:
        module.route_mixer = RouteGate(scan.num_routes, module.d_inner)
    x = _input(module)
    grad = torch.randn_like(module(x))
    bases, names = _run_float64(module, x, grad, True, monkeypatch)
    routed, _ = _run_float64(module, x, grad, False, monkeypatch)
    assert all(g is not None for g in bases), "a parameter got no gradient"
    # float64, the same sums in another order: equal to rounding
    for a, b, name in zip(bases, routed, names, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"base layouts vs route addressing: {name}")


def test_cross_needs_one_transposed_copy_and_reads_every_route_in_place() -> None:
    bases = route_bases(scans.Cross(), *GRID, "cpu")
    assert bases.kinds == (BaseKind.IDENTITY.value, BaseKind.TRANSPOSE.value)
    assert bases.order == (0, 1, 2, 3)
    steps = torch.arange(GRID[0] * GRID[1])
    assert torch.equal(bases.route, torch.stack([steps, steps, steps.flip(0), steps.flip(0)]))
    assert not route_layout(bases.route, steps.numel()).scatters
    x = torch.randn(2, 3, *GRID)
    u = to_bases(bases, x)
    assert torch.equal(u[:, :3], x.flatten(2))
    assert torch.equal(u[:, 3:], x.transpose(-1, -2).flatten(2))
    # back to tokens: the identity block plus the transposed block read back transposed
    assert torch.equal(from_bases(bases, u.view(2, 1, 2, 3, -1)), 2 * x)


@pytest.mark.parametrize("order", sorted(BASE_ORDERS))
def test_every_route_is_a_neighbour_walk_in_its_base(order: str) -> None:
    scan = BASE_ORDERS[order]
    bases = route_bases(scan, *GRID, "cpu")
    route = scan.route(*GRID)
    count = bases.num_bases
    assert scan.num_routes % count == 0
    for i, k in enumerate(bases.order):
        in_base = bases.route[i]
        valid = in_base >= 0
        # the same steps: padding where the route pads, and each step the token the route reads there
        assert torch.equal(valid, route[k] >= 0)
        assert torch.equal(bases.tokens[i % count][in_base[valid]], route[k][valid])
        assert set((in_base[valid].diff().abs()).tolist()) == {1}
    assert sorted(bases.order) == list(range(scan.num_routes))


def test_pairs_that_would_reorder_the_routes_get_a_base_each_for_a_route_mixer() -> None:
    scan = BASE_ORDERS["windowed_pairs"]
    shared = route_bases(scan, *GRID, "cpu")
    assert (shared.num_bases, shared.order) == (2, (0, 2, 1, 3))
    own = route_bases(scan, *GRID, "cpu", keep_route_order=True)
    assert (own.num_bases, own.order) == (4, (0, 1, 2, 3))
    assert own.kinds[:2] == (BaseKind.IDENTITY.value, BaseKind.GATHER.value)


def test_base_layouts_run_only_where_routes_share_them() -> None:
    x = torch.randn(1, 16, *GRID)
    assert SS2D(8, scan="cross")._shared_bases(x).num_bases == 2
    assert SS2D(8, scan=BASE_ORDERS["windowed_padded"])._shared_bases(x) is None
    pairs = SS2D(8, scan=BASE_ORDERS["windowed_pairs"])
    assert pairs._shared_bases(x).order == (0, 2, 1, 3)
    pairs.route_mixer = RouteGate(4, 16)
    assert pairs._shared_bases(x) is None


def test_off_the_cpu_and_with_a_gathering_backend_ss2d_runs_in_base_layouts() -> None:
    module = SS2D(8, scan="cross")
    x = torch.randn(1, module.d_inner, *GRID)
    assert module._in_base_layouts(x.to("meta"))
    assert not module._in_base_layouts(x)  # the C scan reads jumping routes in place
    with kernels.use_backend("reference"):
        assert not module._in_base_layouts(x)


@pytest.mark.parametrize("order", ["cross", "windowed_padded"])
def test_to_and_from_bases_are_adjoint_and_give_their_gradients(order: str) -> None:
    # cross: copies and a transpose; windowed_padded: gathers (one base per route)
    bases = route_bases(BASE_ORDERS[order], *GRID, "cpu")
    count, length = bases.num_bases, GRID[0] * GRID[1]
    x = torch.randn(2, 3, *GRID, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 2, count, 3, length, dtype=torch.float64, requires_grad=True)
    # <to_bases(x), y> == <x, from_bases(y)>
    left = (to_bases(bases, x, 2) * y.reshape(2, -1, length)).sum()
    torch.testing.assert_close(left, (x * from_bases(bases, y)).sum(), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: to_bases(bases, t, 2), (x,))
    assert torch.autograd.gradcheck(lambda t: from_bases(bases, t), (y,))


def test_permute_groups_moves_each_group_into_its_base_and_back() -> None:
    # GroupMamba's groups, one route each: cross's column-major groups (1, 3) transposed, the raster ones (0, 2) kept
    bases = route_bases(scans.Cross(), *GRID, "cpu", keep_route_order=True)
    x = torch.randn(2, 4, 3, GRID[0] * GRID[1], dtype=torch.float64, requires_grad=True)
    u = permute_groups(bases, x, into_bases=True)
    for group in (1, 3):
        assert torch.equal(u[:, group], x[:, group].unflatten(-1, GRID).mT.flatten(-2))
    for group in (0, 2):
        assert torch.equal(u[:, group], x[:, group])
    assert torch.equal(permute_groups(bases, u, into_bases=False), x)
    assert torch.autograd.gradcheck(lambda t: permute_groups(bases, t, True), (x,))
    with pytest.raises(ValueError, match="index gather"):
        permute_groups(route_bases(BASE_ORDERS["windowed_padded"], *GRID, "cpu"), x, True)


@pytest.mark.parametrize("form", list(SS2DForm), ids=lambda form: form.name)
def test_compiled_graphs_run_in_base_layouts_as_eager_does(form: SS2DForm, monkeypatch: pytest.MonkeyPatch) -> None:
    # a backend that gathers jumping routes (Triton, as on a GPU): the fullgraph forward and backward take the base
    # layouts too, with eager's outputs and gradients
    monkeypatch.setattr(ss2d_module, "select_backend", lambda device, dtype: kernels.Backend.TRITON)
    permuted = []

    def counted(bases, x, copies=1):
        permuted.append(copies)
        return to_bases(bases, x, copies)

    monkeypatch.setattr(ss2d_module, "to_bases", counted)
    torch._dynamo.reset()
    module = _mixer(form, scans.Cross(), Layout.CHANNELS_FIRST).train()
    x = _input(module)
    grad = torch.randn(x.shape)
    results = {}
    for key, run in {"eager": module, "compiled": torch.compile(module, backend="aot_eager", fullgraph=True)}.items():
        module.zero_grad()
        inputs = x.clone().requires_grad_(True)
        out = run(inputs)
        (out * grad).sum().backward()
        results[key] = [out, inputs.grad, *(p.grad.clone() for p in module.parameters())]
    assert len(permuted) == 2, "a run kept route addressing"
    names = ["out", "x", *(n for n, _ in module.named_parameters())]
    for a, b, name in zip(results["compiled"], results["eager"], names, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"compiled vs eager: {name}")

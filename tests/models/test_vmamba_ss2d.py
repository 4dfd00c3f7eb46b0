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
from vssm.kernels.tolerances import assert_all_close_3way
from vssm.layers.layout import Layout
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

"""The shared layers behind Vim: SSM core naming and batching, the mixer over token routes, add + norm, patch
embedding."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from timm.layers import RmsNorm
from torch import nn
from vim_spec_reference import _branch

from vssm import kernels, scans
from vssm.analysis.roofline import Mode, profile, profile_model
from vssm.kernels.backends import Backend, supports
from vssm.layers.add_norm import add_and_norm
from vssm.layers.mamba_mixer import MambaMixer, RouteMerge, grouped_causal_conv, shifted_causal_conv
from vssm.layers.ssm_core import RouteNaming, SSMConfig, SSMCore
from vssm.layers.strided_patch_embed import StridedPatchEmbed


def test_route_naming_gives_the_original_keys() -> None:
    vim = SSMCore(16, num_routes=2, naming=RouteNaming.BACKWARD_SUFFIX, device="meta")
    assert set(vim.state_dict()) == {
        "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D",
        "x_proj_b.weight", "dt_proj_b.weight", "dt_proj_b.bias", "A_b_log", "D_b",
    }
    local = SSMCore(16, num_routes=3, naming=RouteNaming.INDEXED, device="meta")
    assert {"A_log_2", "D_0", "x_proj_1.weight", "dt_proj_2.bias"} <= set(local.state_dict())
    with pytest.raises(ValueError, match="at most 2 routes, got num_routes=3"):
        SSMCore(16, num_routes=3, naming=RouteNaming.BACKWARD_SUFFIX)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(d_state=0), "d_state"), (dict(dt_rank=0), "dt_rank"), (dict(expand=0), "expand"),
     (dict(dt_min=0.2, dt_max=0.1), "dt_min")],
)
def test_ssm_config_rejects_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SSMConfig(**kwargs)


def test_ssm_init_follows_mamba() -> None:
    core = SSMCore(32, num_routes=2, config=SSMConfig(d_state=8))
    a = torch.log(torch.arange(1, 9, dtype=torch.float32)).expand(64, 8)
    for k in ("A_log", "A_b_log"):
        torch.testing.assert_close(core.state_dict()[k], a)
    dt = F.softplus(core.state_dict()["dt_proj_b.bias"])
    assert float(dt.min()) >= 1e-4 - 1e-9 and float(dt.max()) <= 0.1 + 1e-6
    assert float(core.dt_proj.weight.detach().abs().max()) <= core.dt_rank**-0.5


def _available_backends() -> list[str]:
    return [b.value for b in Backend if supports(b, torch.device("cpu"), torch.float32) is None]


@pytest.mark.parametrize("backend", _available_backends())
def test_one_batched_scan_equals_one_scan_per_route(backend: str) -> None:
    """K routes as K channel blocks with G = K groups: the numbers of K separate scans. Bitwise for the fast
    backends; the reference's vectorised sum over N may round one ulp differently for a different batch shape."""
    routes, inner, state, steps = 3, 48, 16, 11
    u, delta, z = (torch.randn(2, routes * inner, steps) for _ in range(3))
    a, d, bias = -torch.rand(routes * inner, state), torch.randn(routes * inner), torch.randn(routes * inner)
    b, c = torch.randn(2, routes, state, steps), torch.randn(2, routes, state, steps)
    with kernels.use_backend(backend):
        batched = kernels.selective_scan(u, delta, a, b, c, d, z, bias, delta_softplus=True)
        for k in range(routes):
            s = slice(k * inner, (k + 1) * inner)
            single = kernels.selective_scan(u[:, s], delta[:, s], a[s], b[:, k], c[:, k], d[s], z[:, s], bias[s],
                                            delta_softplus=True)
            if backend == "reference":
                torch.testing.assert_close(single, batched[:, s], rtol=1e-6, atol=1e-6)
            else:
                assert torch.equal(single, batched[:, s]), f"route {k}"


def test_core_routes_use_their_own_parameters() -> None:
    torch.manual_seed(0)
    core = SSMCore(24, num_routes=3, naming=RouteNaming.INDEXED).double()
    u, z = torch.randn(2, 3, 48, 11, dtype=torch.float64), torch.randn(2, 3, 48, 11, dtype=torch.float64)
    with torch.no_grad():
        batched = core.ssm(u, z)
        for k in range(3):
            single = SSMCore(24, num_routes=1).double()
            single.load_state_dict({_unindex(name, k): value for name, value in core.state_dict().items()
                                    if name.split(".")[0].endswith(f"_{k}")})
            torch.testing.assert_close(single.ssm(u[:, k:k + 1], z[:, k:k + 1])[:, 0], batched[:, k],
                                       rtol=1e-12, atol=1e-12)


def _unindex(name: str, route: int) -> str:
    """'x_proj_2.weight' -> 'x_proj.weight' for route 2."""
    head, dot, tail = name.partition(".")
    return head.removesuffix(f"_{route}") + dot + tail


def test_single_route_mixer_is_stock_mamba() -> None:
    torch.manual_seed(1)
    mixer = MambaMixer(16, num_routes=1).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    routes = scans.token_routes(scans.Raster(), 3, 3, torch.device("cpu"))
    sd = {k: v for k, v in mixer.state_dict().items()}
    with torch.no_grad(), kernels.use_backend("reference"):
        ours = mixer(x, routes)
    xi, z = (x @ sd["in_proj.weight"].T).chunk(2, dim=-1)
    ref = _branch(xi, z, sd, "", "", "A_log", "D") @ sd["out_proj.weight"].T
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


class _PassThrough(torch.nn.Module):
    """A route mixer that changes nothing: the mixer then gates every route along the route (mamba_ssm's order)."""

    def forward(self, ys: torch.Tensor, num_tokens: int) -> torch.Tensor:
        return ys


@pytest.mark.parametrize("merge", list(RouteMerge))
def test_gating_after_the_merge_equals_gating_each_route(merge: RouteMerge) -> None:
    mixer = MambaMixer(16, num_routes=4, naming=RouteNaming.INDEXED, merge=merge).double()
    per_route = MambaMixer(16, num_routes=4, naming=RouteNaming.INDEXED, merge=merge, route_mixer=_PassThrough())
    per_route.double().load_state_dict(mixer.state_dict())
    routes = scans.token_routes(scans.Cross(), 3, 4, torch.device("cpu"), class_token=True)
    x = torch.randn(2, 13, 16, dtype=torch.float64)
    with torch.no_grad(), kernels.use_backend("reference"):
        torch.testing.assert_close(mixer(x, routes), per_route(x, routes), rtol=1e-12, atol=1e-12)


def test_mean_merge_is_the_sum_over_the_routes_that_visit_each_token() -> None:
    # atrous partitions the grid (each patch once); the class token is visited by all 4 routes.
    routes = scans.token_routes(scans.Atrous(), 4, 4, torch.device("cpu"), class_token=True)
    sums = MambaMixer(8, num_routes=4, naming=RouteNaming.INDEXED, merge=RouteMerge.SUM).double()
    means = MambaMixer(8, num_routes=4, naming=RouteNaming.INDEXED, merge=RouteMerge.MEAN).double()
    means.load_state_dict(sums.state_dict())
    x = torch.randn(2, 17, 8, dtype=torch.float64)
    with torch.no_grad(), kernels.use_backend("reference"):
        summed, averaged = sums(x, routes), means(x, routes)
    torch.testing.assert_close(averaged * routes.coverage.view(1, 17, 1).double(), summed, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(averaged, summed)


@pytest.mark.parametrize(("d_conv", "bias", "steps"), [(4, True, 9), (4, True, 2), (3, False, 7), (1, True, 5)])
def test_causal_conv_is_a_left_padded_depthwise_conv(d_conv: int, bias: bool, steps: int) -> None:
    mixer = MambaMixer(8, num_routes=2, config=SSMConfig(d_conv=d_conv, conv_bias=bias)).double()
    x = torch.randn(3, 2, 16, steps, dtype=torch.float64)
    sd = mixer.state_dict()
    convs = [(sd[f"{name}.weight"], sd.get(f"{name}.bias")) for name in ("conv1d", "conv1d_b")]
    expected = torch.stack([F.silu(F.conv1d(F.pad(x[:, k], (d_conv - 1, 0)), w, b, groups=16))
                            for k, (w, b) in enumerate(convs)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(mixer.causal_conv(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("d_conv", "bias", "steps"), [(4, True, 9), (4, False, 2), (3, True, 7), (1, True, 5)])
@pytest.mark.parametrize("grad", [False, True])
def test_grouped_causal_conv_off_the_cpu_equals_the_cpu_shifted_multiply_adds(
    d_conv: int, bias: bool, steps: int, grad: bool
) -> None:
    channels = 2 * torch.randint(3, 9, ()).item()
    x = torch.randn(3, channels, steps, dtype=torch.float64, requires_grad=grad)
    weight = torch.randn(channels, 1, d_conv, dtype=torch.float64, requires_grad=grad)
    b = torch.randn(channels, dtype=torch.float64, requires_grad=grad) if bias else None
    inputs = [t for t in (x, weight, b) if t is not None]
    with torch.set_grad_enabled(grad):
        shifted, grouped = shifted_causal_conv(x, weight, b), grouped_causal_conv(x, weight, b)
    assert grouped.shape == x.shape
    torch.testing.assert_close(grouped, shifted, rtol=1e-12, atol=1e-12)
    if grad:
        cotangent = torch.randn_like(x)
        expected = torch.autograd.grad(shifted, inputs, cotangent)
        for got, want in zip(torch.autograd.grad(grouped, inputs, cotangent), expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_exported_vim_mixer_on_the_cpu_runs_one_grouped_conv() -> None:
    # The CPU's shifted slices would export as slice_scatter (Transpose + ScatterND + Transpose in ONNX Runtime).
    mixer = MambaMixer(8, num_routes=2, config=SSMConfig(d_conv=4)).eval()
    x = torch.randn(2, 2, 16, 9)
    program = torch.export.export(_MixerConv(mixer), (x,))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert any("conv" in t for t in targets) and not any("slice_scatter" in t or "addcmul" in t for t in targets)
    torch.testing.assert_close(program.module()(x), mixer.causal_conv(x), rtol=1e-5, atol=1e-6)


class _MixerConv(nn.Module):
    def __init__(self, mixer: MambaMixer) -> None:
        super().__init__()
        self.mixer = mixer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixer.causal_conv(x)


@pytest.mark.parametrize("mode", [Mode.INFERENCE, Mode.TRAIN])
def test_vim_mixer_off_the_cpu_runs_one_grouped_conv_and_the_cost_model_prices_it_below_the_shifted_one(
    mode: Mode,
) -> None:
    profiled = profile_model("test_vim", mode, batch=4)
    mixer_ops = [o.op for o in profiled.ops if o.module.startswith("MambaMixer")]
    assert "aten.convolution" in mixer_ops and "aten.addcmul_" not in mixer_ops
    # Vim-S's causal conv at batch 128 (K·E = 1536 channels, 197 steps), each function alone on the meta device
    seconds = {fn: profile(_CausalConv(fn, 1536, 4), mode, batch=128, input_size=(1, 1536, 197)).predicted_s()
               for fn in (shifted_causal_conv, grouped_causal_conv)}
    assert seconds[grouped_causal_conv] < seconds[shifted_causal_conv] / 2


class _CausalConv(nn.Module):
    def __init__(self, conv: Callable, channels: int, d_conv: int) -> None:
        super().__init__()
        self.conv = conv
        self.weight = nn.Parameter(torch.empty(channels, 1, d_conv, device="meta"))
        self.bias = nn.Parameter(torch.empty(channels, device="meta"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.conv(x.flatten(1, 2), self.weight, self.bias))


@pytest.mark.parametrize(("name", "class_token"), [("bidirectional", True), ("cross", False), ("atrous", True)])
def test_mixer_runs_on_meta_routes(name: str, class_token: bool) -> None:
    routes = scans.token_routes(scans.get(name), 3, 5, torch.device("meta"), class_token)
    mixer = MambaMixer(8, num_routes=routes.num_routes, naming=RouteNaming.INDEXED, device="meta")
    assert mixer(torch.empty(2, routes.length, 8, device="meta"), routes).shape == (2, routes.length, 8)


def test_add_and_norm_keeps_the_residual_in_float32() -> None:
    norm = RmsNorm(8, eps=1e-5, dtype=torch.bfloat16)
    hidden = torch.randn(2, 3, 8, dtype=torch.bfloat16)
    normed, residual = add_and_norm(hidden, None, norm)
    assert normed.dtype == torch.bfloat16 and residual.dtype == torch.float32
    normed2, residual2 = add_and_norm(hidden, residual, norm)
    torch.testing.assert_close(residual2, residual + hidden.float())
    expected = residual2 * torch.rsqrt(residual2.pow(2).mean(-1, keepdim=True) + 1e-5) * norm.weight.float()
    torch.testing.assert_close(normed2, expected.to(torch.bfloat16))
    _, low = add_and_norm(hidden, residual, norm, residual_in_fp32=False)
    assert low.dtype == torch.bfloat16


def test_strided_patch_embed_grid_and_errors() -> None:
    embed = StridedPatchEmbed(224, 16, 8, 3, 32)
    assert embed.grid_size == (27, 27) and embed.num_patches == 729
    assert embed(torch.randn(1, 3, 224, 224)).shape == (1, 27, 27, 32)
    with pytest.raises(ValueError, match="expected 3 input channels, got 4"):
        embed(torch.randn(1, 4, 224, 224))
    loose = StridedPatchEmbed(224, 16, 8, 3, 32, strict_img_size=False)
    assert loose(torch.randn(1, 3, 64, 72)).shape == (1, 7, 8, 32)
    with pytest.raises(ValueError, match="width 70"):
        loose(torch.randn(1, 3, 64, 70))

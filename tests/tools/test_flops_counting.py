"""FLOP counting against hand counts: a tiny conv/norm/pool/linear model, a scan-only model, attention, backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from vssm.analysis.flops import Convention, count_conventions, count_flops, fvcore_macs
from vssm.kernels import selective_scan
from vssm.kernels.op import scan_flops
from vssm.kernels.testing import random_route


class ConvNormPoolLinear(nn.Module):
    """conv 3x3 (3 -> 8, bias) -> GELU -> LayerNorm(8) over channels -> global mean pool -> Linear(8 -> 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(F.gelu(self.conv(x)).permute(0, 2, 3, 1))
        return self.fc(x.mean(dim=(1, 2)))


@pytest.mark.parametrize("batch,height,width", [(1, 6, 5), (3, 4, 7)])
def test_hand_countable_model_matches_the_analytic_count_under_each_convention(batch, height, width) -> None:
    model = ConvNormPoolLinear().eval()
    pixels = batch * height * width
    conv_macs = pixels * 8 * 3 * 9  # bias not counted in either convention
    results = count_conventions(model, (3, height, width), (Convention.MACS, Convention.FULL), batch=batch)

    macs = results[Convention.MACS]
    # fvcore's rule: conv + layer norm 5 per element (affine) + average pool 1 per element + linear
    assert macs.by_category == {"conv": conv_macs, "norm": 5 * 8 * pixels, "pool": 8 * pixels, "matmul": batch * 80}
    assert macs.total == conv_macs + 5 * 8 * pixels + 8 * pixels + batch * 80
    assert macs.unit == "MACs"

    full = results[Convention.FULL]
    assert full.by_category == {
        "conv": 2 * conv_macs,
        "elementwise": 8 * pixels,  # GELU
        "norm": 7 * 8 * pixels,  # layer norm with affine parameters
        "reduction": 8 * pixels,  # the mean
        "matmul": 2 * batch * 80,
    }
    assert full.unit == "FLOPs"
    assert full.by_module["conv"] == 2 * conv_macs and macs.by_module["fc"] == batch * 80
    assert macs.params == sum(p.numel() for p in model.parameters())
    assert macs.giga == pytest.approx(macs.total / batch / 1e9)


def test_shape_only_execution_counts_what_a_real_forward_counts() -> None:
    model = ConvNormPoolLinear().eval()
    for convention in (Convention.MACS, Convention.FULL):
        fast = count_flops(model, (3, 9, 8), convention, batch=2)
        real = count_flops(model, (3, 9, 8), convention, batch=2, shape_only=False)
        assert fast == real


class ScanOnly(nn.Module):
    """A model whose only counted op is the selective scan: (B, KD, L) in, y out, optionally along routes."""

    def __init__(self, channels: int, state: int, route: torch.Tensor | None = None) -> None:
        super().__init__()
        self.A = nn.Parameter(-torch.rand(channels, state) - 0.5)
        self.D = nn.Parameter(torch.randn(channels))
        self.delta_bias = nn.Parameter(torch.randn(channels))
        self.route = route
        self.state = state

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = u.flatten(2)
        batch, _, length = u.shape
        bc = u[:, : 2 * self.state].reshape(batch, 1, 2, self.state, length)
        return selective_scan(u, u, self.A, bc[:, :, 0], bc[:, :, 1], D=self.D, z=u, delta_bias=self.delta_bias,
                              delta_softplus=True, route=self.route)


@pytest.mark.parametrize("routed", [False, True])
def test_a_model_whose_only_op_is_the_scan_counts_exactly_the_formula(routed: bool) -> None:
    channels, state, height, width, batch = 36, 4, 3, 5, 2
    length = height * width
    route = random_route(2, length, pad=3) if routed else None
    steps = route.shape[1] if routed else length
    model = ScanOnly(channels, state, route)
    expected = scan_flops(batch, channels, length, steps, state, has_D=True)
    assert expected == 9 * batch * steps * channels * state + batch * channels * length

    results = count_conventions(model, (channels, height, width), (Convention.MACS, Convention.FULL), batch=batch)
    assert results[Convention.MACS].total == expected and results[Convention.MACS].by_category == {"scan": expected}
    assert results[Convention.FULL].by_category["scan"] == expected
    # fvcore's op handle sees the same op and gives the same number
    assert fvcore_macs(model, (channels, height, width), batch=batch) == (expected, {"selective_scan": expected})


def test_the_scan_backward_counts_twice_its_forward() -> None:
    model = ScanOnly(16, 2)
    forward = scan_flops(1, 16, 12, 12, 2, has_D=True)
    result = count_flops(model, (16, 3, 4), Convention.FULL, backward=True)
    assert result.by_category["scan"] == 3 * forward


def test_linear_backward_counts_two_more_matmuls() -> None:
    model = nn.Linear(6, 5)
    result = count_flops(model, (4, 3, 6), Convention.FULL, batch=2, backward=True)
    forward = 2 * (2 * 4 * 3) * 6 * 5
    assert result.by_category["matmul"] == 3 * forward
    assert result.backward


class Attention(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = x, x * 2, x + 1
        return F.scaled_dot_product_attention(q, k, v)


def test_fused_cpu_attention_counts_what_the_math_path_counts() -> None:
    batch, heads, length, dim = 2, 3, 10, 8
    size = (heads, length, dim)
    expected = 2 * batch * heads * length * length * dim  # QK^T and PV, in multiply-adds
    fused = count_flops(Attention(), size, Convention.MACS, batch=batch, shape_only=False)
    assert fused.by_category == {"attention": expected}
    with sdpa_kernel(SDPBackend.MATH):
        math = count_flops(Attention(), size, Convention.MACS, batch=batch, shape_only=False)
    assert math.total == expected == fused.total
    assert fvcore_macs(Attention(), size, batch=batch)[0] == expected


def test_published_convention_needs_a_family_with_a_published_counter() -> None:
    with pytest.raises(ValueError, match="no published FLOP counter"):
        count_flops(ConvNormPoolLinear(), (3, 8, 8), Convention.PUBLISHED)
    with pytest.raises(ValueError, match="forward"):
        count_flops(ConvNormPoolLinear(), (3, 8, 8), "published", backward=True)
    with pytest.raises(ValueError):
        count_flops(ConvNormPoolLinear(), (3, 8, 8), "paper")

"""BiAttn against its formula (LayerNorm over E, token mean, two linears, sigmoid), in both of its forward modes."""

import pytest
import torch
from localmamba_reference import bi_attn
from torch import nn

import vssm.layers.bi_attn as bi_attn_module
from vssm.analysis.roofline import Mode, profile
from vssm.layers.bi_attn import BiAttn


@pytest.mark.parametrize("slices", [1, 2], ids=["one-slice", "sliced"])
@pytest.mark.parametrize("grad", [False, True])
def test_bi_attn_matches_its_formula_and_scales_in_place_only_without_autograd(
    grad: bool, slices: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if slices > 1:  # squares summed 4 of the 6 (B·K) rows at a time: a full slice, then a partial one
        monkeypatch.setattr(bi_attn_module, "_SLICE_ELEMENTS", 4 * 48 * 37)
    attn = BiAttn(48).double()
    y = torch.randn(2, 3, 48, 37, dtype=torch.float64, requires_grad=grad)
    expected = torch.stack([bi_attn(attn, y[:, k].detach().transpose(1, 2)).transpose(1, 2) for k in range(3)], 1)
    before = y.detach().clone()
    with torch.set_grad_enabled(grad):
        out = attn(y)
    torch.testing.assert_close(out.detach(), expected, rtol=1e-12, atol=1e-12)
    if grad:
        assert torch.equal(y.detach(), before)  # autograd needs y as it was
        out.square().sum().backward()
        assert y.grad is not None and torch.isfinite(y.grad).all()
    else:
        assert out.data_ptr() == y.data_ptr()  # the fresh scan output is reused, no second (B, K, E, L) tensor


@pytest.mark.parametrize("grad", [False, True])
def test_bi_attn_gates_in_slices_equal_the_one_pass_sums_of_squares_off_the_cpu(
    grad: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    attn = BiAttn(48).double()
    y = torch.randn(2, 3, 48, 37, dtype=torch.float64, requires_grad=grad)
    monkeypatch.setattr(bi_attn_module, "_SLICE_ELEMENTS", 48 * 37)  # one (E, L) row of the 6 at a time
    with torch.set_grad_enabled(grad):
        sliced = attn.gates(y)
    monkeypatch.setattr(bi_attn_module, "_SLICE_ELEMENTS", 6 * 48 * 37)  # all rows at once: the one-pass arithmetic
    with torch.set_grad_enabled(grad):
        one_pass = attn.gates(y)
    assert torch.equal(sliced, one_pass)


@pytest.mark.parametrize("mode", [Mode.INFERENCE, Mode.TRAIN])
def test_bi_attn_off_the_cpu_sums_squares_in_one_pass_whatever_the_size(mode: Mode) -> None:
    # (B·K = 64) rows of (E = 64, L = 4096) elements: 64 slices of _SLICE_ELEMENTS on the CPU
    routes, channels, steps = 4, 64, 4096
    profiled = profile(_ScaledBiAttn(channels), mode, batch=16, input_size=(routes, channels, steps))
    forward = [o for o in profiled.ops if o.module == "BiAttn"]
    assert sum(o.launches for o in forward if o.op == "aten.pow") == 1
    assert sum(o.launches for o in forward if o.op == "aten.sum") <= 2


class _ScaledBiAttn(nn.Module):
    """BiAttn of y scaled by a parameter: y has a history in training, as the scan's output in a model has."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones((), device="meta"))
        self.attn = BiAttn(channels, device="meta")

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.attn(y * self.scale)

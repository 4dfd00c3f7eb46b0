"""BiAttn against its formula (LayerNorm over E, token mean, two linears, sigmoid), in both of its forward modes."""

import pytest
import torch
from localmamba_reference import bi_attn

import vssm.layers.bi_attn as bi_attn_module
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

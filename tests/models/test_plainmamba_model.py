"""PlainMamba's own behaviour beyond the timm contract: `scan=` swaps the routes without changing a weight, orders
whose routes cannot be read step by step in token order are refused, any input size is taken (the position
embedding resampled), and the direction tokens are read."""

from __future__ import annotations

import pytest
import timm
import torch

from vssm import scans


def test_scan_swaps_the_routes_and_keeps_every_weight() -> None:
    ours = timm.create_model("test_plainmamba").eval()
    cross = timm.create_model("test_plainmamba", scan="cross").eval()
    assert {k: v.shape for k, v in cross.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    cross.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(cross(x), ours(x))
    per_layer = timm.create_model("test_plainmamba", scan=scans.zigzag_schedule(8)).eval()
    assert [order.num_routes for order in per_layer.layer_orders] == [1] * 4


def test_an_order_with_padding_steps_is_refused_at_construction() -> None:
    order = scans.Windowed(directions=("w7",), pad_oversized_windows=True)
    with pytest.raises(ValueError, match=r"visit every token of the 4×4 grid once \(16 steps, no padding\)"):
        timm.create_model("test_plainmamba", scan=order)


def test_an_unknown_scan_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scan order 'zigzig'"):
        timm.create_model("test_plainmamba", scan="zigzig")


@pytest.mark.parametrize("size", [(96, 64), (50, 33)])
def test_any_input_size_gives_its_grid(size: tuple[int, int]) -> None:
    model = timm.create_model("test_plainmamba").eval()
    x = torch.randn(2, 3, *size)
    grid = (-(-((size[0] + 1) // 2) // 8), -(-((size[1] + 1) // 2) // 8))
    with torch.no_grad():
        maps = model.forward_intermediates(x, indices=[1], intermediates_only=True)
        logits = model(x)
    assert maps[0].shape == (2, 32, *grid)
    assert torch.isfinite(logits).all()


def test_the_direction_tokens_are_read() -> None:
    model = timm.create_model("test_plainmamba").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        for layer in model.layers:
            layer.mamba.direction_Bs[[1, 3]] = layer.mamba.direction_Bs[[3, 1]].clone()
        assert not torch.allclose(model(x), before)


def test_a_nan_in_stays_a_nan_out() -> None:
    model = timm.create_model("test_plainmamba").eval()
    x = torch.randn(1, 3, 64, 64)
    x[0, 0, 10, 10] = float("nan")
    with torch.no_grad():
        assert torch.isnan(model(x)).any()

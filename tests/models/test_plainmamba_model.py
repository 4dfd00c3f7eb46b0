"""PlainMamba's own behaviour beyond the timm contract: `scan=` swaps the routes without changing a weight, orders
whose routes cannot be read step by step in token order are refused, any input size is taken (the position
embedding resampled), the direction tokens are read, and the released variants take the authors' stochastic depth."""

from __future__ import annotations

import pytest
import timm
import torch
from golden import load_golden, rel_l2

from vssm import scans
from vssm.models.plainmamba import checkpoint_filter_fn


def test_scan_swaps_the_routes_and_keeps_every_weight() -> None:
    ours, cross = (timm.create_model("test_plainmamba", depth=2, scan=scan).eval()
                   for scan in ("zigzag_bidirectional", "cross"))
    assert {k: v.shape for k, v in cross.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    # On the golden fixture's weights (every parameter non-trivial; at the initialisation the D skip dominates and the
    # routes move the logits by ~5e-6 only), cross's routes move them by 2.9e-3, float32 rounding by ~1e-7.
    golden = load_golden("plainmamba_test")
    ours.load_state_dict(checkpoint_filter_fn(golden.checkpoint, ours))
    cross.load_state_dict(ours.state_dict())
    with torch.no_grad():
        assert rel_l2(cross(golden.input), ours(golden.input)) > 1e-3
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


@pytest.mark.parametrize(("name", "rate"), [("plainmamba_l1", 0.2), ("plainmamba_l2", 0.2), ("plainmamba_l3", 0.4)])
def test_released_variants_train_with_the_originals_stochastic_depth(name: str, rate: float) -> None:
    """The authors' ImageNet configs (plain_mamba_configs/*_in1k_300e.py @ 0975a1d): drop_path_rate 0.2 / 0.2 / 0.4,
    linear over the layers, as the other families' builders set their recipes' rates."""
    model = timm.create_model(name, device="meta")
    assert isinstance(model.layers[0].drop_path, torch.nn.Identity)
    assert model.layers[-1].drop_path.drop_prob == pytest.approx(rate)
    overridden = timm.create_model(name, device="meta", drop_path_rate=0.0)
    assert isinstance(overridden.layers[-1].drop_path, torch.nn.Identity)

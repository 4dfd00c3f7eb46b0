"""VMamba models: exact parameter counts, every variant as a dense backbone at odd sizes, layouts, bad input, and
one training step with every registered scan order."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from vmamba_official import ALIASES, RELEASED, official_shapes

from vssm import scans
from vssm.layers.layout import Layout
from vssm.layers.ss2d import SS2D

VARIANTS = [name for name in timm.list_models(module="vmamba") if name != "test_vmamba"]
FULL_SIZE = ("vmamba_tiny_s1l8", "vmamba_tiny_s2l5", "vmamba_tiny_v0")  # cheap enough on 2 cores (and distinct)
TEST_DEPTHS = (1, 1, 2, 1)  # the other variants run with their own widths and switches at these depths

# The originals' parameter counts: exact from the code comment for T[s1l8], the README's (M, 2 decimals) for the rest.
PUBLISHED_M = {
    "vmamba_tiny_s2l5": 30.71, "vmamba_small_s2l15": 50.15, "vmamba_base_s2l15": 88.56, "vmamba_tiny_s1l8": 30.25,
    "vmamba_small_s1l20": 49.01, "vmamba_base_s1l20": 86.61, "vmamba_tiny_v0": 22.89, "vmamba_small_v0": 44.42,
    "vmamba_base_v0": 76.25,
}


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_equals_the_original(name: str) -> None:
    released = ALIASES.get(name, name)
    model = timm.create_model(name, device="meta")
    expected = sum(math.prod(shape) for shape in official_shapes(*RELEASED[released]).values())
    assert _num_params(model) == expected
    assert round(expected / 1e6, 2) == PUBLISHED_M[released]
    if released == "vmamba_tiny_s1l8":
        assert expected == 30_249_064


def _dense_model(name: str, **kwargs) -> torch.nn.Module:
    if name not in FULL_SIZE:
        kwargs["depths"] = TEST_DEPTHS
    return timm.create_model(name, **kwargs)


@pytest.mark.parametrize("name", VARIANTS)
def test_features_only_at_an_odd_size(name: str) -> None:
    """1×3×112×137 as a detection/segmentation input: four NCHW maps at strides 4/8/16/32, odd sizes padded the
    original's way (conv strides round up, the v1 patch stem rounds down, patch merging pads to even)."""
    model = _dense_model(name, features_only=True).eval()
    dims = model.feature_info.channels()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        maps = model(torch.randn(1, 3, 112, 137))
    v0 = RELEASED[ALIASES.get(name, name)][-1]
    widths = [34, 17, 9, 5] if v0 else [35, 18, 9, 5]
    assert [tuple(m.shape) for m in maps] == [(1, c, h, w) for c, h, w in zip(dims, [28, 14, 7, 4], widths)]
    assert all(torch.isfinite(m).all() for m in maps)


@pytest.mark.parametrize("name", [name for name in VARIANTS if name not in FULL_SIZE])
def test_test_configuration_trains(name: str) -> None:
    """The variants too big for the timm contract's full-size runs: forward, backward to every parameter and
    intermediates on their test configuration (grad checkpointing is the same code for all, checked on test_vmamba)."""
    model = _dense_model(name, num_classes=10, drop_path_rate=0.1).train()
    x = torch.randn(1, 3, 32, 32)
    model(x).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        final, stages = model.eval().forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
    assert [s.shape[-1] for s in stages] == [8, 4, 2, 1]


@pytest.mark.parametrize("name", ["test_vmamba", "vmamba_tiny_v0"])
def test_both_layouts_share_the_state_dict_and_the_outputs(name: str) -> None:
    kwargs = {"depths": TEST_DEPTHS, "dims": 16}
    first = timm.create_model(name, layout=Layout.CHANNELS_FIRST, **kwargs).eval()
    last = timm.create_model(name, layout="channels_last", **kwargs).eval()
    assert {k: v.shape for k, v in first.state_dict().items()} == {k: v.shape for k, v in last.state_dict().items()}
    last.load_state_dict(first.state_dict(), strict=True)
    x = torch.randn(2, 3, 67, 45)
    with torch.no_grad():
        torch.testing.assert_close(last(x), first(x), rtol=1e-5, atol=1e-5)
        for a, b in zip(last.forward_intermediates(x)[1], first.forward_intermediates(x)[1]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert first.output_fmt == "NCHW" and last.output_fmt == "NHWC"


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (97, 64)])
@pytest.mark.parametrize("name", ["test_vmamba", "vmamba_tiny_v0"])
def test_any_input_size_from_the_total_stride(name: str, size: tuple[int, int]) -> None:
    model = timm.create_model(name, depths=TEST_DEPTHS, dims=16, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_bad_input_is_a_value_error_with_expected_and_given() -> None:
    model = timm.create_model("test_vmamba").eval()
    with pytest.raises(ValueError, match=r"at least 32×32 .* got 31×64"):
        model(torch.randn(1, 3, 31, 64))
    with pytest.raises(ValueError, match="expected 3 input channels, got 4"):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="at least 32×32"):
        model.forward_intermediates(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="form"):
        timm.create_model("test_vmamba", form="v2")
    with pytest.raises(ValueError, match="global_pool"):
        timm.create_model("test_vmamba", global_pool="max")
    with pytest.raises(ValueError, match="unknown scan order"):
        timm.create_model("test_vmamba", scan="spiral-ish")


@pytest.mark.parametrize("scan", scans.list_orders())
def test_trains_one_step_with_every_registered_scan(scan: str) -> None:
    torch.manual_seed(0)
    order = scans.get(scan)
    model = timm.create_model("test_vmamba", scan=scan, num_classes=5).train()
    mixers = [m for m in model.modules() if isinstance(m, SS2D)]
    assert mixers and all(m.num_routes == order.num_routes for m in mixers)
    assert mixers[0].x_proj_weight.shape[0] == mixers[0].dt_projs_weight.shape[0] == order.num_routes
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # moves every parameter, even tiny-gradient dt ones
    # 128 px: the last stage's grid is 4 × 4. At 64 px (2 × 2) every atrous route visits one token, from the zero
    # initial state, so A cannot act there: its gradient is exactly 0 (the reference's; the C loop used to return
    # rounding noise instead).
    x, target = torch.randn(2, 3, 128, 128), torch.tensor([1, 3])
    loss = torch.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    optimizer.step()
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) == len(before)


def test_per_block_scan_schedule() -> None:
    schedule = scans.Cycle((scans.Cross(), scans.Bidirectional()))
    model = timm.create_model("test_vmamba", scan=schedule)
    routes = [m.num_routes for m in model.modules() if isinstance(m, SS2D)]
    assert routes == [4, 2, 4, 2, 4]
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_bfloat16_autocast_trains() -> None:
    """The AMP recipe (on CPU with bfloat16): finite outputs and gradients, logits near the float32 ones."""
    model = timm.create_model("test_vmamba", num_classes=10).train()
    x = torch.randn(2, 3, 64, 64)
    reference = model(x).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert (out.float() - reference).norm() / reference.norm() < 0.05


@pytest.mark.parametrize("route_addressing", [True, False], ids=["route", "materialised"])
def test_inference_mode_first_then_training(route_addressing: bool) -> None:
    """Route tables first built under `torch.inference_mode` must still serve autograd later (scans' cache)."""
    scans.clear_route_cache()
    model = timm.create_model("test_vmamba", route_addressing=route_addressing)
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        model.eval()(x)
    model.train()(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())

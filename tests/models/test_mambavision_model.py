"""MambaVision's architecture, mixer, windows, scan orders and input checks (faithfulness itself: the golden tests)."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from backend_runs import FAST
from timm.layers import Attention, DropPath

import vssm
from vssm import kernels, scans
from vssm.kernels.tolerances import assert_all_close_3way
from vssm.layers.mambavision_mixer import DtBias, MambaVisionMixer
from vssm.layers.window_partition import window_partition, window_reverse
from vssm.models.mambavision import MambaVision

# The originals' parameter and state-tensor counts (NVlabs/MambaVision @ 7860a50, every builder at its defaults).
ORIGINAL_COUNTS = {
    "mambavision_tiny": (31_794_248, 252),
    "mambavision_tiny2": (35_104_008, 298),
    "mambavision_small": (50_140_584, 285),
    "mambavision_base": (97_685_288, 356),
    "mambavision_base_21k": (97_685_288, 356),
    "mambavision_large": (227_961_048, 356),
    "mambavision_large_21k": (227_961_048, 356),
    "mambavision_large2": (241_554_824, 389),
    "mambavision_large2_512_21k": (241_554_824, 389),
    "mambavision_large3_256_21k": (739_570_472, 601),
    "mambavision_large3_512_21k": (739_570_472, 601),
}
def test_every_released_variant_is_registered() -> None:
    assert set(vssm.list_models("*mambavision*")) == {*ORIGINAL_COUNTS, "test_mambavision"}


@pytest.mark.parametrize("name", sorted(ORIGINAL_COUNTS))
def test_parameter_and_tensor_counts_equal_the_originals(name: str) -> None:
    model = timm.create_model(name, device="meta")
    params, tensors = ORIGINAL_COUNTS[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == tensors


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("mambavision_tiny", ("MMMMAAAA", "MMAA")),
        ("mambavision_tiny2", ("MMMMMMAAAAA", "MMAA")),
        ("mambavision_small", ("MMMMAAA", "MMMAA")),
        ("mambavision_large2", ("MMMMMMAAAAAA", "MMMAA")),
        ("mambavision_large3_256_21k", ("M" * 10 + "A" * 10, "MMMMMAAAAA")),
    ],
)
def test_hybrid_levels_run_mamba_blocks_then_attention_blocks(name: str, layout: tuple[str, str]) -> None:
    model = timm.create_model(name, device="meta")
    for level, expected in zip(model.levels[2:], layout, strict=True):
        kinds = "".join("M" if isinstance(b.mixer, MambaVisionMixer) else "A" for b in level.blocks)
        assert kinds == expected
        for block in level.blocks:
            assert isinstance(block.mixer, MambaVisionMixer | Attention)


def test_mixer_shapes_follow_the_spec() -> None:
    mixer = timm.create_model("mambavision_tiny", device="meta").levels[2].blocks[0].mixer  # C = 320
    shapes = {k: tuple(v.shape) for k, v in mixer.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (320, 320),
        "x_proj.weight": (36, 160),
        "dt_proj.weight": (160, 20),
        "dt_proj.bias": (160,),
        "A_log": (160, 8),
        "D": (160,),
        "conv1d_x.weight": (160, 1, 3),
        "conv1d_z.weight": (160, 1, 3),
        "out_proj.weight": (320, 320),
    }


def test_layer_scale_only_where_the_variant_has_it() -> None:
    tiny = timm.create_model("mambavision_tiny", device="meta").state_dict()
    base = timm.create_model("mambavision_base", device="meta").state_dict()
    assert not any("gamma" in k for k in tiny)
    assert base["levels.2.blocks.0.gamma_1"].shape == (512,) and "levels.3.blocks.4.gamma_2" in base
    assert not any(k.startswith("levels.0.") and "gamma" in k for k in base)


def test_drop_path_rate_is_honoured() -> None:
    model = timm.create_model("test_mambavision", drop_path_rate=0.3, device="meta")
    blocks = [block for level in model.levels for block in level.blocks]
    expected = torch.linspace(0, 0.3, len(blocks)).tolist()
    rates = [block.drop_path.drop_prob if isinstance(block.drop_path, DropPath) else 0.0 for block in blocks]
    assert rates == pytest.approx(expected)
    default = timm.create_model("mambavision_tiny", device="meta")
    assert default.levels[3].blocks[-1].drop_path.drop_prob == pytest.approx(0.2)


# ------------------------------------------------------------------------------------------------------ mixer


def _spec_mixer(mixer: MambaVisionMixer, x: torch.Tensor) -> torch.Tensor:
    """The mixer written from the spec's formula with the reference scan: Δ = softplus(W_dt·ρ + b_dt + b_dt)."""
    xz = F.linear(x, mixer.in_proj.weight).transpose(1, 2)
    u, z = xz.chunk(2, dim=1)
    channels = u.shape[1]
    u = F.silu(F.conv1d(u, mixer.conv1d_x.weight, padding=1, groups=channels))
    z = F.silu(F.conv1d(z, mixer.conv1d_z.weight, padding=1, groups=channels))
    rho, b, c = F.linear(u.transpose(1, 2), mixer.x_proj.weight).split([mixer.dt_rank, 8, 8], dim=-1)
    delta = F.linear(rho, mixer.dt_proj.weight, mixer.dt_proj.bias).transpose(1, 2)
    y = kernels.selective_scan_ref(
        u, delta, -torch.exp(mixer.A_log), b.transpose(1, 2), c.transpose(1, 2), mixer.D,
        delta_bias=mixer.dt_proj.bias, delta_softplus=True,
    )
    return F.linear(torch.cat([y, z], dim=1).transpose(1, 2), mixer.out_proj.weight)


def _randomise(module: torch.nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


def test_mixer_equals_the_spec_formula_with_the_dt_bias_applied_twice() -> None:
    mixer = MambaVisionMixer(48, dtype=torch.float64)
    _randomise(mixer)
    x = torch.randn(3, 25, 48, dtype=torch.float64)
    with kernels.use_backend("reference"), torch.no_grad():
        torch.testing.assert_close(mixer(x), _spec_mixer(mixer, x), rtol=1e-12, atol=1e-12)


def test_dt_bias_once_is_mambas_definition() -> None:
    twice = MambaVisionMixer(32, dtype=torch.float64)
    _randomise(twice)
    once = MambaVisionMixer(32, dt_bias=DtBias.ONCE, dtype=torch.float64)
    once.load_state_dict(twice.state_dict())
    x = torch.randn(2, 16, 32, dtype=torch.float64)
    with kernels.use_backend("reference"), torch.no_grad():
        assert (once(x) - twice(x)).abs().max() > 1e-3
        once.dt_proj.bias.mul_(2)  # once with 2b == twice with b
        torch.testing.assert_close(once(x), twice(x), rtol=1e-12, atol=1e-12)


def test_mixer_rejects_odd_widths_and_wrong_sequences() -> None:
    with pytest.raises(ValueError, match="even"):
        MambaVisionMixer(15)
    mixer = MambaVisionMixer(16, window_size=4, scan="cross")
    with pytest.raises(ValueError, match="16 tokens, got 9"):
        mixer(torch.randn(1, 9, 16))
    with pytest.raises(ValueError, match=r"\(B, L, C=16\)"):
        mixer(torch.randn(1, 16, 8))


# ---------------------------------------------------------------------------------------------------- windows


def test_window_partition_pads_orders_and_inverts() -> None:
    x = torch.randn(2, 3, 5, 7)
    windows = window_partition(x, 4)  # 5×7 -> 8×8: 2×2 windows per image
    assert windows.shape == (2 * 4, 16, 3)
    padded = F.pad(x, (0, 1, 0, 3))
    # batch -> window row -> window column; tokens row-major inside the window
    torch.testing.assert_close(windows[1], padded[0, :, 0:4, 4:8].reshape(3, 16).T)
    torch.testing.assert_close(windows[6], padded[1, :, 4:8, 0:4].reshape(3, 16).T)
    assert windows[3, -1].abs().sum() == 0  # bottom-right token of the last window is padding
    torch.testing.assert_close(window_reverse(windows, 4, 5, 7), x)


def test_padded_tokens_are_not_masked_between_blocks() -> None:
    """The original pads once per level with no mask: the blocks write into the padded tokens, which the next block
    (and the next level's input, after the crop, indirectly) sees."""
    model = timm.create_model("test_mambavision").eval()
    level = model.levels[2]  # window 4 on a 6×6 map at 96×96: padded to 8×8, 2×2 windows per image
    seen = []
    level.blocks[1].register_forward_hook(lambda module, args, output: seen.append(output))
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 96))
    last_window = seen[0].view(-1, 4, 4, 64)[3]  # its 2×2 bottom-right corner lies in the padding
    assert last_window[2:, 2:].abs().amax(dim=-1).min() > 0


# -------------------------------------------------------------------------------------------------- backends


def _run(model: torch.nn.Module, x: torch.Tensor, backend: str, backward: bool) -> list[torch.Tensor | None]:
    model.zero_grad(set_to_none=True)
    with kernels.use_backend(backend), torch.set_grad_enabled(backward):
        logits = model(x)
    if not backward:
        return [logits]
    logits.square().mean().backward()
    return [logits.detach(), *(p.grad for p in model.parameters())]


@pytest.mark.skipif(not FAST, reason="no fast selective-scan backend runs on this machine's CPU")
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize(("shape", "backward"), [((2, 3, 96, 96), True), ((1, 3, 200, 232), False)], ids=str)
def test_fast_backend_matches_the_float64_reference(backend: str, shape: tuple[int, ...], backward: bool) -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_mambavision").eval()
    _randomise_norm_statistics(model)
    x = torch.randn(*shape)
    fast = _run(model, x, backend, backward)
    ref = _run(model, x, "reference", backward)
    ref64 = _run(model.double(), x.double(), "reference", backward)
    names = ["logits"] + ([f"grad {n}" for n, _ in model.named_parameters()] if backward else [])
    assert_all_close_3way(fast, ref, ref64, names, dtype=torch.float32)


def _randomise_norm_statistics(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)


# ---------------------------------------------------------------------------------------------------- scan orders


def test_default_scan_is_the_windows_raster_order() -> None:
    model = timm.create_model("test_mambavision", device="meta")
    mixers = [m for m in model.modules() if isinstance(m, MambaVisionMixer)]
    assert len(mixers) == 2 and all(m.order == scans.Raster() for m in mixers)
    assert all(m._routes(m.window_size**2, torch.device("cpu")).identity for m in mixers)  # no gather, no scatter


def test_a_permuting_order_equals_raster_on_permuted_tokens() -> None:
    order = scans.get("hilbert")
    routed = MambaVisionMixer(16, window_size=4, scan=order, dtype=torch.float64)
    _randomise(routed)
    raster = MambaVisionMixer(16, dtype=torch.float64)
    raster.load_state_dict(routed.state_dict())
    route = order.route(4, 4)[0]
    assert not torch.equal(route, torch.arange(16))
    x = torch.randn(2, 16, 16, dtype=torch.float64)
    with kernels.use_backend("reference"), torch.no_grad():
        expected = torch.empty_like(x)
        expected[:, route] = raster(x[:, route])
        torch.testing.assert_close(routed(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scan", ["bidirectional", "cross", "atrous"])
def test_multi_route_orders_get_a_parameter_set_per_route_and_train(scan: str) -> None:
    order = scans.get(scan)
    model = timm.create_model("test_mambavision", scan=scan).train()
    keys = model.state_dict().keys()
    for k in range(order.num_routes):
        for name in ("x_proj", "dt_proj", "conv1d_x", "conv1d_z"):
            assert f"levels.2.blocks.0.mixer.{name}_{k}.weight" in keys
        assert f"levels.3.blocks.0.mixer.A_log_{k}" in keys
    out = model(torch.randn(2, 3, 64, 80))
    out.square().mean().backward()
    assert torch.isfinite(out).all()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_a_schedule_gives_each_mamba_block_its_order() -> None:
    schedule = scans.PerLayer((scans.get("raster"), scans.get("cross")))
    model = timm.create_model("test_mambavision", scan=schedule, device="meta")
    mixers = [m for m in model.modules() if isinstance(m, MambaVisionMixer)]
    assert [m.num_routes for m in mixers] == [1, 4]


@pytest.mark.parametrize("scan", ["raster", "cross", "atrous"])
def test_forward_runs_on_the_meta_device(scan: str) -> None:
    """Shape inference and FLOP counting without memory (the benchmark counts L3-512 this way)."""
    model = timm.create_model("test_mambavision", scan=scan, device="meta").eval()
    with torch.no_grad():
        maps = model.forward_intermediates(torch.empty(2, 3, 80, 96, device="meta"), intermediates_only=True)
    assert [tuple(m.shape) for m in maps] == [(2, 16, 20, 24), (2, 32, 10, 12), (2, 64, 5, 6), (2, 128, 3, 3)]
    assert all(m.device.type == "meta" for m in maps)


def test_unknown_scan_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown scan order"):
        timm.create_model("test_mambavision", scan="spiral", device="meta")


# ---------------------------------------------------------------------------------------------------- bad input


def test_input_smaller_than_the_stem_stride_is_a_value_error() -> None:
    model = timm.create_model("test_mambavision").eval()
    with pytest.raises(ValueError, match=r"at least 4×4 .* got 3×64"):
        model(torch.randn(1, 3, 3, 64))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 4, 4)).shape == (1, 1000)  # one stem pixel: every window is padding but one


def test_channel_mismatch_is_a_value_error_naming_both() -> None:
    model = timm.create_model("test_mambavision", in_chans=4).eval()
    with pytest.raises(ValueError, match="expected 4 input channels, got 3"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="expected 4 input channels, got 3"):
        model.forward_intermediates(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(depths=(1, 1, 2)), "depths: expected 4"),
        (dict(window_size=(8, 8, 0, 2)), "window_size: expected 4 positive"),
        (dict(num_heads=(2, 2, 3, 4)), r"num_heads\[2\]: 3 does not divide"),
        (dict(global_pool="max"), "global_pool"),
        (dict(dt_bias="thrice"), "thrice"),
    ],
)
def test_bad_configuration_is_a_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MambaVision(**{**dict(dim=16, in_dim=8, depths=(1, 1, 2, 2), num_heads=(2, 2, 2, 4)), **kwargs})


def test_feature_maps_are_pre_downsample_at_strides_4_to_32() -> None:
    model = timm.create_model("test_mambavision").eval()
    x = torch.randn(1, 3, 200, 232)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        assert [tuple(m.shape[1:]) for m in maps] == [(16, 50, 58), (32, 25, 29), (64, 13, 15), (128, 7, 8)]
        for i in range(3):
            following = model.levels[i + 1].forward_blocks(model.levels[i].downsample(maps[i]))
            torch.testing.assert_close(following, maps[i + 1])
        torch.testing.assert_close(final, model.norm(maps[-1]))
        torch.testing.assert_close(model.forward_head(final), model(x))

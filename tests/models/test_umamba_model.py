"""U-Mamba networks on small plans: 2D and 3D, Bot and Enc, deep supervision, channel tokens, scan orders, plans
(explicit and nnU-Net's two formats), block surgery, and the ValueErrors for bad plans and inputs."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from vssm.layers.map_mamba import MapMamba, MapTokens
from vssm.models.umamba import MambaPlacement, UMamba, UMambaPlan, num_segmentation_heads

PLAN_2D = UMambaPlan(
    features_per_stage=(4, 8, 16),
    kernel_sizes=((3, 3),) * 3,
    strides=((1, 1), (2, 2), (2, 2)),
    n_conv_per_stage=(2, 2, 2),
    n_conv_per_stage_decoder=(2, 2),
    patch_size=(16, 16),  # stage maps 16², 8², 4²: stage 2 has 16 positions <= 16 channels -> channel tokens (Enc)
)
PLAN_3D = UMambaPlan(
    features_per_stage=(4, 8, 32),
    kernel_sizes=((1, 3, 3), (3, 3, 3), (3, 3, 3)),
    strides=((1, 1, 1), (1, 2, 2), (2, 2, 2)),
    n_conv_per_stage=(2, 2, 2),
    n_conv_per_stage_decoder=(2, 2),
    patch_size=(4, 16, 16),  # stage maps (4,16,16), (4,8,8), (2,4,4): stage 2 has 32 <= 32 -> channel tokens (Enc)
)
PLANS = {2: PLAN_2D, 3: PLAN_3D}


def _input(plan: UMambaPlan, batch: int = 2, channels: int = 1) -> torch.Tensor:
    return torch.randn(batch, channels, *plan.patch_size)


# ---------------------------------------------------------------------------------------------------- plans


@pytest.mark.parametrize("n", range(2, 9))
def test_block_surgery_follows_the_original(n: int) -> None:
    plan = UMambaPlan(
        features_per_stage=[4] * n,
        kernel_sizes=[[3, 3]] * n,
        strides=[[1, 1]] * n,
        n_conv_per_stage=list(range(2, n + 2)),
        n_conv_per_stage_decoder=list(range(2, n + 1)),
    )
    encoder, decoder = list(range(2, n + 2)), list(range(2, n + 1))
    for s in range(math.ceil(n / 2), n):  # the original's loops, verbatim in meaning
        encoder[s] = 1
    for s in range(math.ceil((n - 1) / 2 + 0.5), n - 1):
        decoder[s] = 1
    assert plan.encoder_blocks() == tuple(encoder)
    assert plan.decoder_blocks() == tuple(decoder)
    assert plan.encoder_blocks(block_surgery=False) == plan.n_conv_per_stage
    model = UMamba(plan, num_classes=2, placement="bot", device="meta")
    assert [len(stage) for stage in model.encoder.stages] == encoder
    assert len(model.encoder.stem) == encoder[0]
    assert [len(stage) for stage in model.decoder.stages] == decoder


def test_fixture_plan_surgery() -> None:
    plan = UMambaPlan((8, 16, 32, 64, 64), [[3, 3]] * 5, [[1, 1]] + [[2, 2]] * 4, [2] * 5, [2] * 4)
    assert plan.encoder_blocks() == (2, 2, 2, 1, 1)
    assert plan.decoder_blocks() == (2, 2, 2, 1)


def _nnunet_configurations() -> tuple[dict, dict]:
    current = {
        "patch_size": [16, 16],
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 3,
                "features_per_stage": [4, 8, 16],
                "kernel_sizes": [[3, 3]] * 3,
                "strides": [[1, 1], [2, 2], [2, 2]],
                "n_conv_per_stage": [2, 2, 2],
                "n_conv_per_stage_decoder": [2, 2],
            },
        },
    }
    legacy = {  # nnU-Net 2.1.1, as the original U-Mamba's plans.json
        "patch_size": [16, 16],
        "UNet_base_num_features": 4,
        "unet_max_num_features": 16,
        "conv_kernel_sizes": [[3, 3]] * 3,
        "pool_op_kernel_sizes": [[1, 1], [2, 2], [2, 2]],
        "n_conv_per_stage_encoder": [2, 2, 2],
        "n_conv_per_stage_decoder": [2, 2],
    }
    return current, legacy


def test_plan_from_both_nnunet_formats() -> None:
    current, legacy = _nnunet_configurations()
    assert UMambaPlan.from_nnunet(current) == PLAN_2D
    assert UMambaPlan.from_nnunet(legacy) == PLAN_2D
    plans = {"configurations": {"2d_base": current, "2d": {"inherits_from": "2d_base", "batch_size": 12}}}
    assert UMambaPlan.from_nnunet_plans(plans, "2d") == PLAN_2D
    with pytest.raises(ValueError, match="no configuration '3d_fullres'"):
        UMambaPlan.from_nnunet_plans(plans, "3d_fullres")
    assert UMambaPlan(**PLAN_3D.to_dict()) == PLAN_3D


def test_network_from_nnunet_plans_and_dataset() -> None:
    current, _ = _nnunet_configurations()
    dataset = {"channel_names": {"0": "T1", "1": "T2"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3}}
    model = UMamba.from_nnunet_plans({"configurations": {"2d": current}}, "2d", dataset, placement="enc")
    assert (model.in_chans, model.num_classes, model.placement) == (2, 4, MambaPlacement.ENC)
    assert model(torch.randn(1, 2, 16, 16)).shape == (1, 4, 16, 16)


def test_segmentation_heads_like_nnunet() -> None:
    assert num_segmentation_heads({"labels": {"background": 0, "liver": 1, "tumour": 2}}) == 3
    assert num_segmentation_heads({"labels": {"background": 0, "organ": 1, "ignore": 2}}) == 2
    regions = {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3}
    assert num_segmentation_heads({"labels": regions}) == 3


# ---------------------------------------------------------------------------------------------------- networks


@pytest.mark.parametrize("placement", list(MambaPlacement))
@pytest.mark.parametrize("ndim", [2, 3])
def test_forward_backward_with_deep_supervision(ndim: int, placement: MambaPlacement) -> None:
    plan = PLANS[ndim]
    model = UMamba(plan, num_classes=3, in_chans=2, placement=placement, deep_supervision=True).train()
    x = _input(plan, channels=2)
    outputs = model(x)
    sizes = plan.feature_map_sizes(plan.patch_size)
    expected = [(2, 3, *plan.patch_size)] + [(2, 3, *size) for size in sizes[1:-1]]
    assert [tuple(o.shape) for o in outputs] == expected, "deep supervision: every decoder stage, highest res first"
    sum(o.square().mean() for o in outputs).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing[:5]}"
    mamba = [s for s in model.encoder.mamba_tokens if s is not None]
    if placement is MambaPlacement.BOT:
        assert model.encoder.mamba_tokens[:-1] == [None] * (plan.n_stages - 1)
        assert mamba == [(MapTokens.PATCH, plan.features_per_stage[-1])]
    else:
        # 3D: after every stage; 2D (3 stages): stages 0 and 2. The last stage's map is small: channel tokens.
        assert len(mamba) == (3 if ndim == 3 else 2)
        assert mamba[-1] == (MapTokens.CHANNEL, math.prod(sizes[-1]))


def test_deep_supervision_switch_is_the_decoder_attribute() -> None:
    """nnU-Net's trainer toggles `network.decoder.deep_supervision`; off gives the full-resolution logits alone."""
    model = UMamba(PLAN_2D, num_classes=3, deep_supervision=True).eval()
    x = _input(PLAN_2D)
    with torch.no_grad():
        outputs = model(x)
        model.decoder.deep_supervision = False
        assert not model.deep_supervision
        torch.testing.assert_close(model(x), outputs[0])
        maps = model.forward_decoder_features(x)
    assert [m.shape[1] for m in maps] == [4, 8]


def test_2d_decoder_does_not_use_the_full_resolution_skip() -> None:
    """The 2D original concatenates every skip but the full-resolution one (3D concatenates all)."""
    model2d = UMamba(PLAN_2D, num_classes=2)
    model3d = UMamba(PLAN_3D, num_classes=2)
    assert model2d.decoder.stages[-1][0].conv1.in_channels == 4
    assert model3d.decoder.stages[-1][0].conv1.in_channels == 8
    x = _input(PLAN_2D, batch=1)
    skips = model2d.encoder.forward_skips(x)
    changed = [s.clone() for s in skips]
    changed[0] = torch.randn_like(changed[0])
    with torch.no_grad():
        torch.testing.assert_close(model2d.decoder(changed), model2d.decoder(skips))


def test_channel_tokens_are_patch_tokens_of_the_transposed_map() -> None:
    """Channel tokens: the C channels are the sequence, each of width ∏S; the same as patch tokens of a map whose
    channels are the positions and whose 1 × C grid the raster order walks channel by channel."""
    layer = MapMamba(16, MapTokens.CHANNEL)
    patch = MapMamba(16, MapTokens.PATCH)
    patch.load_state_dict(layer.state_dict())
    x = torch.randn(2, 24, 4, 4)
    transposed = x.reshape(2, 24, 16).transpose(1, 2).reshape(2, 16, 1, 24)
    with torch.no_grad():
        expected = patch(transposed).reshape(2, 16, 24).transpose(1, 2).reshape(2, 24, 4, 4)
        torch.testing.assert_close(layer(x), expected)


def test_3d_patch_tokens_follow_raster_over_dhw() -> None:
    """A 3D map's tokens are its D×H×W positions in C order, i.e. the rows of the (D·H) × W map in raster order."""
    layer = MapMamba(6)
    x = torch.randn(2, 6, 3, 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer(x.reshape(2, 6, 12, 5)).reshape(2, 6, 3, 4, 5))
        flipped = layer(x.flip(-1))  # a different token order gives different outputs (the scan is causal)
    assert not torch.allclose(flipped.flip(-1), layer(x), atol=1e-4)


def test_mamba_layer_replaces_its_input_and_runs_in_float32() -> None:
    layer = MapMamba(8)
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        reference = layer(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x.bfloat16())
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, layer(x.bfloat16().float()))
        layer.mamba.out_proj.weight.zero_()
        assert layer(x).abs().max() == 0, "no residual: a zero Mamba output is a zero layer output"
    assert reference.abs().max() > 0


def test_network_under_autocast_and_without() -> None:
    model = UMamba(PLAN_2D, num_classes=3, placement="enc").eval()
    x = _input(PLAN_2D)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(x)
        model.allow_autocast = False
        full = model(x)
    assert full.dtype == torch.float32 and torch.isfinite(mixed).all()
    with torch.no_grad():
        torch.testing.assert_close(full, model(x))


@pytest.mark.parametrize(
    ("scan", "names"), [("bidirectional", ("A_log", "A_b_log")), ("cross", ("A_log_0", "A_log_3"))]
)
def test_2d_takes_any_scan_order(scan: str, names: tuple[str, ...]) -> None:
    model = UMamba(PLAN_2D, num_classes=2, placement="enc", scan=scan, deep_supervision=True)
    keys = model.state_dict().keys()
    assert all(f"encoder.mamba_layers.0.mamba.{n}" in keys for n in names)
    sum(o.mean() for o in model(_input(PLAN_2D))).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_3d_takes_one_dimensional_orders_only() -> None:
    assert UMamba(PLAN_3D, num_classes=2, placement="enc", scan="bidirectional")(_input(PLAN_3D)).shape[1] == 2
    with pytest.raises(ValueError, match="1-D orders"):
        UMamba(PLAN_3D, num_classes=2, scan="cross")


def test_builds_on_meta_device_and_initialises_like_nnunet() -> None:
    meta = UMamba(PLAN_3D, num_classes=2, placement="enc", device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())
    model = UMamba(PLAN_2D, num_classes=2, placement="enc")
    conv = model.encoder.stages[1][0].conv1
    assert conv.bias.abs().max() == 0
    fan_in = conv.weight[0].numel()
    assert abs(conv.weight.std().item() - math.sqrt(2 / (1 + 1e-4) / fan_in)) < 0.2 * math.sqrt(2 / fan_in)
    mamba = model.encoder.mamba_layers[0].mamba
    torch.testing.assert_close(mamba.A_log[0], torch.log(torch.arange(1, 17, dtype=torch.float32)))
    assert (mamba.D == 1).all()


# ---------------------------------------------------------------------------------------------------- bad input


def test_strides_that_do_not_divide_the_patch_name_the_plan_entry() -> None:
    with pytest.raises(ValueError, match=r"plan\.strides\[2\] = \(2, 2\) does not divide the map \(5, 5\)"):
        PLAN_2D.replace(patch_size=(10, 10))


def test_input_not_divisible_by_the_total_stride_names_the_plan_entry() -> None:
    model = UMamba(PLAN_2D, num_classes=2)
    with pytest.raises(ValueError, match=r"plan\.strides\[2\].*total stride is \(4, 4\)"):
        model(torch.randn(1, 1, 16, 18))
    with pytest.raises(ValueError, match="channel"):
        model(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.randn(1, 1, 16, 16, 16))
    assert model(torch.randn(1, 1, 32, 24)).shape == (1, 2, 32, 24), "Bot runs at any divisible size"


def test_enc_with_channel_tokens_needs_the_patch_size() -> None:
    model = UMamba(PLAN_2D, num_classes=2, placement="enc")
    with pytest.raises(ValueError, match=r"stage 2 uses channel tokens.*plan\.patch_size \(16, 16\)"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"plan\.patch_size: UMambaEnc needs"):
        UMamba(PLAN_2D.replace(patch_size=None), num_classes=2, placement="enc")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kernel_sizes": ((3, 3), (2, 2), (3, 3))}, r"plan\.kernel_sizes\[1\]: expected odd"),
        ({"strides": ((1, 1), (2, 2), (2, 2, 2))}, r"plan\.strides\[2\]: expected 2 entries"),
        ({"n_conv_per_stage_decoder": (2, 2, 2)}, r"plan\.n_conv_per_stage_decoder: expected 2 entries"),
        ({"features_per_stage": (4, 0, 16)}, r"plan\.features_per_stage\[1\]: expected an int >= 1"),
        ({"features_per_stage": (4,)}, r"at least 2 stages"),
        ({"patch_size": (16, 16, 16)}, r"plan\.patch_size: expected 2 entries"),
    ],
)
def test_bad_plan_entries_are_named(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PLAN_2D.replace(**change)


def test_an_input_leaving_the_deepest_stage_one_position_names_the_smallest_size() -> None:
    # umamba_bot_2d's plan has a total stride of 64: at 64 × 64 its deepest InstanceNorms would see one position.
    model = timm.create_model("umamba_bot_2d", in_chans=1).eval()
    with torch.no_grad(), pytest.raises(ValueError, match=r"the input \(64, 64\) leaves the deepest stage one "
                                                          r"position \(1, 1\).*expected at least 128×128"):
        model(torch.randn(1, 1, 64, 64))
    assert model.pretrained_cfg["min_input_size"] == (3, 128, 128)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 128, 64)).shape == (1, model.num_features)  # 2 × 1 positions are enough

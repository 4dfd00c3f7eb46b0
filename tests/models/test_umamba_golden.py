"""U-Mamba against the original code (tests/fixtures/umamba_{bot,enc}_2d_test, see GOLDEN.md).

Bot is judged in float32 and float64; Enc in float64 only (the original's own float32 noise on that fixture, 1.3e-5,
is above the float32 tolerance of 1e-5). The checkpoints are the original's nnU-Net layout (`network_weights`, with
the duplicated `decoder.encoder.*` and `all_modules.*` keys) and must load strictly through `checkpoint_filter_fn`.
"""

from __future__ import annotations

import pytest
import timm
import torch
from golden import Golden, assert_matches, load_golden

from vssm.models.umamba import MambaPlacement, UMamba, UMambaPlan, checkpoint_filter_fn

FIXTURES = {"umamba_bot_2d_test": MambaPlacement.BOT, "umamba_enc_2d_test": MambaPlacement.ENC}


def _plan(golden: Golden) -> UMambaPlan:
    kwargs = golden.kwargs
    return UMambaPlan(
        features_per_stage=kwargs["features_per_stage"],
        kernel_sizes=kwargs["kernel_sizes"],
        strides=kwargs["strides"],
        n_conv_per_stage=kwargs["n_conv_per_stage"],
        n_conv_per_stage_decoder=kwargs["n_conv_per_stage_decoder"],
        patch_size=kwargs.get("input_size", golden.meta["input_shape"][2:]),
    )


def _model(name: str) -> tuple[Golden, UMamba]:
    golden = load_golden(name)
    kwargs = golden.kwargs
    model = UMamba(
        _plan(golden),
        num_classes=kwargs["num_classes"],
        in_chans=kwargs["input_channels"],
        placement=FIXTURES[name],
        deep_supervision=kwargs["deep_supervision"],
    ).eval()
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    return golden, model


@pytest.fixture(scope="module", params=sorted(FIXTURES))
def loaded(request: pytest.FixtureRequest) -> tuple[Golden, UMamba]:
    return _model(request.param)


def test_float64_matches_the_original(loaded: tuple[Golden, UMamba]) -> None:
    golden, model = loaded
    model = UMamba(model.plan, model.num_classes, model.in_chans, model.placement).eval()
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    model.double()
    with torch.no_grad():
        out = model(golden.input.double())
    assert out.dtype == torch.float64
    assert_matches(out, golden.output_fp64, f"{golden.name} float64")


def test_bot_float32_matches_the_original() -> None:
    golden, model = _model("umamba_bot_2d_test")
    with torch.no_grad():
        out = model(golden.input)
    assert_matches(out, golden.output, "umamba_bot_2d_test float32")


def test_checkpoint_keeps_one_tensor_per_duplicated_key(loaded: tuple[Golden, UMamba]) -> None:
    golden, model = loaded
    original = golden.state_dict
    converted = checkpoint_filter_fn(golden.checkpoint, model)
    duplicates = [k for k in original if k.startswith("decoder.encoder.") or ".all_modules." in k]
    assert duplicates, "the fixture should carry the original's duplicated keys"
    assert len(converted) == len(original) - len(duplicates) == len(model.state_dict())
    # Every converted tensor is one of the original's (no values invented or changed).
    originals = {id(t) for t in original.values()}
    assert all(id(t) in originals for t in converted.values())


def test_a_corrupted_duplicate_is_rejected() -> None:
    golden, model = _model("umamba_bot_2d_test")
    state = dict(golden.state_dict)
    key = next(k for k in state if k.startswith("decoder.encoder.") and k.endswith("conv1.weight"))
    state[key] = state[key] + 1.0
    with pytest.raises(ValueError, match="duplicate"):
        checkpoint_filter_fn({"network_weights": state}, model)


def test_a_checkpoint_of_another_plan_names_the_model_and_keys() -> None:
    golden, _ = _model("umamba_bot_2d_test")
    other = UMamba(_plan(golden).replace(features_per_stage=(8, 16, 32, 64, 128)), 3, 1, MambaPlacement.BOT)
    with pytest.raises(ValueError, match=r"UMamba \(bot, 2D.*shape.*encoder\.stages\.4"):
        checkpoint_filter_fn(golden.checkpoint, other)


def test_bot_checkpoint_does_not_fit_enc() -> None:
    golden, _ = _model("umamba_bot_2d_test")
    enc = UMamba(_plan(golden), 3, 1, MambaPlacement.ENC)
    with pytest.raises(ValueError, match=r"missing: \['encoder\.mamba_layers\.0"):
        checkpoint_filter_fn(golden.checkpoint, enc)


def test_january_2024_layout_is_rejected() -> None:
    golden, model = _model("umamba_bot_2d_test")
    state = {k: v for k, v in golden.state_dict.items() if not k.startswith("mamba_layer.")}
    state["ln.weight"] = torch.ones(64)
    state["decoder.transpconvs.0.weight"] = torch.ones(64, 64, 2, 2)
    with pytest.raises(ValueError, match="January 2024"):
        checkpoint_filter_fn({"network_weights": state}, model)


def test_our_own_state_dict_passes_through(loaded: tuple[Golden, UMamba]) -> None:
    _, model = loaded
    ours = {f"module.{k}": v for k, v in model.state_dict().items()}  # as saved from a DDP-wrapped network
    converted = checkpoint_filter_fn({"network_weights": ours}, model)
    assert converted.keys() == model.state_dict().keys()


def test_timm_encoder_loads_the_original_checkpoint(tmp_path) -> None:
    """The timm backbone takes the encoder part of an nnU-Net checkpoint; its skip maps are the network's."""
    golden, model = _model("umamba_enc_2d_test")
    path = tmp_path / "checkpoint_final.pth"
    torch.save(golden.checkpoint, path)
    encoder = timm.create_model(
        "test_umamba_enc_2d", pretrained=True, pretrained_cfg_overlay={"file": str(path)}, in_chans=1
    ).eval()
    features = timm.create_model(
        "test_umamba_enc_2d", pretrained=True, pretrained_cfg_overlay={"file": str(path)}, in_chans=1,
        features_only=True,
    ).eval()
    with torch.no_grad():
        skips = model.forward_features(golden.input)
        for ours, theirs in zip(encoder.forward_skips(golden.input), skips, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        for ours, theirs in zip(features(golden.input), skips, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)

"""Released MambaVision checkpoint layouts load strictly; other variants' checkpoints fail naming both; cfgs."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from golden import assert_matches, load_golden

import vssm  # noqa: F401  (registers the models)
from vssm.models.mambavision import checkpoint_filter_fn

GOLDEN = "mambavision_test"


def _layouts(state_dict: dict[str, torch.Tensor]) -> dict[str, dict]:
    return {
        "state_dict": {"state_dict": state_dict, "epoch": 300},  # the released .pth.tar files
        "model": {"model": state_dict},
        "bare": dict(state_dict),
        "ddp": {"state_dict": {f"module.{k}": v for k, v in state_dict.items()}},
        # Hugging Face trust_remote_code wrappers hold the network as `self.model`
        "hugging_face": {f"model.{k}": v for k, v in state_dict.items()},
    }


@pytest.mark.parametrize("layout", list(_layouts({})))
def test_released_layouts_load_strictly_and_reproduce_the_original(layout: str) -> None:
    golden = load_golden(GOLDEN)
    checkpoint = _layouts(golden.state_dict)[layout]
    model = timm.create_model("test_mambavision").eval()
    model.load_state_dict(checkpoint_filter_fn(checkpoint, model), strict=True)
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, f"logits from the {layout} layout")


def test_pretrained_file_through_timm(tmp_path: Path) -> None:
    golden = load_golden(GOLDEN)
    path = tmp_path / "mambavision_hf.pth"
    torch.save({f"model.{k}": v for k, v in golden.state_dict.items()}, path)
    model = timm.create_model("test_mambavision", pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, "logits via pretrained_cfg_overlay")
    # timm adapts the classifier and the first conv after our filter
    adapted = timm.create_model(
        "test_mambavision", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), num_classes=7, in_chans=1
    )
    a_log = "levels.2.blocks.0.mixer.A_log"
    torch.testing.assert_close(adapted.state_dict()[a_log], golden.state_dict[a_log])
    assert adapted.head.out_features == 7 and adapted.patch_embed.conv_down[0].in_channels == 1


def test_detection_checkpoint_feeds_a_headless_backbone() -> None:
    """OpenMMLab checkpoints: `backbone.` keys next to the neck and heads, `outnorm{i}`, no `norm`/`head`."""
    golden = load_golden(GOLDEN)
    body = {k: v for k, v in golden.state_dict.items() if not k.startswith(("norm.", "head."))}
    checkpoint = {"state_dict": {
        **{f"backbone.{k}": v for k, v in body.items()},
        **{f"backbone.outnorm{i}.weight": torch.ones(16 * 2**i) for i in range(4)},
        "neck.lateral_convs.0.conv.weight": torch.zeros(256, 16, 1, 1),
    }}
    model = timm.create_model("test_mambavision").eval()
    model.prune_intermediate_layers(indices=4, prune_norm=True, prune_head=True)
    model.load_state_dict(checkpoint_filter_fn(checkpoint, model), strict=True)
    with torch.no_grad():
        maps = model.forward_intermediates(golden.input, intermediates_only=True)
    for i, (ours, ref) in enumerate(zip(maps, golden.features["stages"], strict=True)):
        assert_matches(ours, ref, f"stage {i}")


def test_another_variants_checkpoint_fails_naming_both() -> None:
    tiny = timm.create_model("mambavision_tiny", device="meta").state_dict()
    small = timm.create_model("mambavision_small", device="meta")
    with pytest.raises(ValueError, match="does not fit mambavision_small") as info:
        checkpoint_filter_fn({"state_dict": tiny}, small)
    assert "the checkpoint is dim 80, in_dim 32, depths (1, 3, 8, 4), without layer scale = mambavision_tiny" in str(
        info.value
    )
    assert "shape (checkpoint vs model)" in str(info.value)


def test_a_checkpoint_without_layer_scale_fails_for_base() -> None:
    """The HF configs' layer-scale wiring is unverified: a missing gamma must be caught, not silently default."""
    base = timm.create_model("mambavision_base", device="meta")
    no_gamma = {k: v for k, v in base.state_dict().items() if ".gamma_" not in k}
    with pytest.raises(ValueError, match=r"missing: \['levels\.2\.blocks\.0\.gamma_1'") as info:
        checkpoint_filter_fn(no_gamma, base)
    assert "depths (3, 3, 10, 5), without layer scale: missing" in str(info.value)  # no registered variant matches


def test_variants_with_the_same_weights_are_all_named() -> None:
    large3 = timm.create_model("mambavision_large3_256_21k", device="meta").state_dict()
    with pytest.raises(ValueError, match="= mambavision_large3_256_21k, mambavision_large3_512_21k"):
        checkpoint_filter_fn(large3, timm.create_model("mambavision_large2", device="meta"))


# pretrained_cfg: (hf repo, file, input size, crop_pct, crop_mode), NVlabs/MambaVision's default_cfgs
RELEASES = {
    "mambavision_tiny": ("nvidia/MambaVision-T-1K", "mambavision_tiny_1k.pth.tar", 224, 1.0, "center"),
    "mambavision_tiny2": ("nvidia/MambaVision-T2-1K", "mambavision_tiny2_1k.pth.tar", 224, 0.98, "center"),
    "mambavision_small": ("nvidia/MambaVision-S-1K", "mambavision_small_1k.pth.tar", 224, 0.93, "center"),
    "mambavision_base": ("nvidia/MambaVision-B-1K", "mambavision_base_1k.pth.tar", 224, 1.0, "center"),
    "mambavision_base_21k": ("nvidia/MambaVision-B-21K", "mambavision_base_21k.pth.tar", 224, 1.0, "center"),
    "mambavision_large": ("nvidia/MambaVision-L-1K", "mambavision_large_1k.pth.tar", 224, 1.0, "center"),
    "mambavision_large_21k": ("nvidia/MambaVision-L-21K", "mambavision_large_21k.pth.tar", 224, 1.0, "center"),
    "mambavision_large2": ("nvidia/MambaVision-L2-1K", "mambavision_large2_1k.pth.tar", 224, 1.0, "center"),
    "mambavision_large2_512_21k": (
        "nvidia/MambaVision-L2-512-21K", "mambavision_L2_21k_240m_512.pth.tar", 512, 0.93, "squash"
    ),
    "mambavision_large3_256_21k": (
        "nvidia/MambaVision-L3-256-21K", "mambavision_L3_21k_740m_256.pth.tar", 256, 1.0, "center"
    ),
    "mambavision_large3_512_21k": (
        "nvidia/MambaVision-L3-512-21K", "mambavision_L3_21k_740m_512.pth.tar", 512, 0.93, "squash"
    ),
}


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_pretrained_cfg_has_the_original_location_and_crop(name: str) -> None:
    repo, file, size, crop_pct, crop_mode = RELEASES[name]
    cfg = timm.create_model(name, device="meta").pretrained_cfg
    assert cfg["hf_hub_id"] == repo and cfg["hf_hub_filename"] == file
    assert cfg["url"] == f"https://huggingface.co/{repo}/resolve/main/{file}"
    assert cfg["input_size"] == (3, size, size)
    assert (cfg["crop_pct"], cfg["crop_mode"], cfg["interpolation"]) == (crop_pct, crop_mode, "bicubic")
    assert cfg["num_classes"] == 1000 and cfg["license"] == "cc-by-nc-sa-4.0"
    data = timm.data.resolve_data_config({}, model=timm.create_model(name, device="meta"))
    assert data["crop_pct"] == crop_pct and data["crop_mode"] == crop_mode

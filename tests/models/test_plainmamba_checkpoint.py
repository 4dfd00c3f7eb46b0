"""Loading PlainMamba checkpoints in the released format (mmcls: `{'meta': ..., 'state_dict': {'backbone.*',
'head.fc.*'}}`, as l1/l2/l3.pth on the authors' Hugging Face page), read with `weights_only=True`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from vssm.models import _registry
from vssm.models.plainmamba import checkpoint_filter_fn


def _official(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict in the original's names (the inverse of `checkpoint_filter_fn`'s renaming)."""
    renamed = {}
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            renamed["head.fc." + key[len("head."):]] = value
        elif key.startswith("norm."):
            renamed["backbone.ln1." + key[len("norm."):]] = value
        else:
            renamed["backbone." + key] = value
    return renamed


def _mmcls_file(path: Path, state_dict: dict[str, torch.Tensor]) -> Path:
    meta = {"mmcv_version": "1.7.0", "time": "Mon Mar 25 10:00:00 2024", "epoch": 300, "iter": 375300,
            "CLASSES": ["tench", "goldfish"]}
    torch.save({"meta": meta, "state_dict": state_dict}, path)
    return path


def test_the_released_format_loads_through_timm_and_gives_the_same_outputs(tmp_path: Path) -> None:
    source = timm.create_model("test_plainmamba").eval()
    file = _mmcls_file(tmp_path / "l1.pth", _official(source))
    loaded = timm.create_model("test_plainmamba", pretrained=True, pretrained_cfg_overlay=dict(file=str(file))).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)


def test_the_keys_are_renamed_and_every_tensor_kept() -> None:
    model = timm.create_model("test_plainmamba")
    converted = checkpoint_filter_fn({"state_dict": _official(model)}, model)
    assert converted.keys() == model.state_dict().keys()
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items())


def test_a_detection_checkpoint_gives_its_backbone() -> None:
    """mmdet / mmseg checkpoints hold the backbone under `backbone.` beside necks, heads and the dense backbone's
    extra output norms: the backbone loads, the rest is left out."""
    model = timm.create_model("test_plainmamba", num_classes=0)
    official = {k: v for k, v in _official(model).items() if not k.startswith("head.")}
    official |= {"neck.lateral_convs.0.conv.weight": torch.randn(8, 32, 1, 1),
                 "backbone.norm_layer0.weight": torch.randn(32), "roi_head.bbox_head.fc_cls.weight": torch.randn(3, 8)}
    model.load_state_dict(checkpoint_filter_fn({"state_dict": official}, model), strict=True)


def test_another_variants_checkpoint_is_refused_naming_both() -> None:
    l2 = timm.create_model("plainmamba_l2", device="meta")
    l1 = timm.create_model("plainmamba_l1", device="meta")
    message = ("checkpoint does not fit plainmamba_l1 (embed_dim 192, depth 24, 1 stem convs, dwconv after layers "
               "[0]); the checkpoint is embed_dim 384, depth 24, 2 stem convs, dwconv after layers [] = plainmamba_l2")
    with pytest.raises(ValueError, match=re.escape(message)):
        checkpoint_filter_fn({"state_dict": _official(l2)}, l1)


def test_a_position_embedding_for_another_grid_is_resampled() -> None:
    model = timm.create_model("test_plainmamba", img_size=96)  # 6 × 6 tokens; the checkpoint's are 4 × 4
    official = _official(timm.create_model("test_plainmamba"))
    converted = checkpoint_filter_fn({"state_dict": official}, model)
    pos = official["backbone.pos_embed"].reshape(1, 4, 4, 32).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(pos, size=(6, 6), mode="bicubic", align_corners=False)
    torch.testing.assert_close(converted["pos_embed"], expected.flatten(2).transpose(1, 2))


def test_pretrained_loading_adapts_in_chans_and_num_classes(tmp_path: Path) -> None:
    """timm adapts the first conv and drops the classifier after `checkpoint_filter_fn`: the filter must let both
    through (the variant check would otherwise name a 3-channel stem as another network)."""
    source = timm.create_model("test_plainmamba").eval()
    file = _mmcls_file(tmp_path / "l1.pth", _official(source))
    model = timm.create_model("test_plainmamba", pretrained=True, pretrained_cfg_overlay=dict(file=str(file)),
                              in_chans=1, num_classes=7).eval()
    stem = source.patch_embed.stem[0].weight
    torch.testing.assert_close(model.patch_embed.stem[0].weight, stem.sum(dim=1, keepdim=True))
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)


@pytest.mark.parametrize("name", ["plainmamba_l1", "plainmamba_l2", "plainmamba_l3"])
def test_pretrained_downloads_the_released_file_from_the_hub(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub download is faked: the file the authors' README links
    (huggingface.co/ChenhongyiYang/PlainMamba/resolve/main/l{1,2,3}.pth) is asked for, and the mmcls checkpoint it
    gives is read by our reader (a numpy scalar in mmcv's `meta`, which timm's hub reader refuses, reads), converted
    and loaded."""
    source = timm.create_model("test_plainmamba").eval()
    path = tmp_path / "l1.pth"
    torch.save({"meta": {"epoch": 300, "hook_msgs": {"best_score": np.float64(77.9)}},
                "state_dict": _official(source)}, path)
    requested = []

    def download(model_id: str, filename: str, cache_dir: object = None) -> str:
        requested.append((model_id, filename))
        return str(path)

    monkeypatch.setattr(_registry, "download_from_hf", download)
    monkeypatch.setattr(timm.models._builder, "has_hf_hub", lambda necessary=False: True)
    overlay = timm.create_model(name, device="meta").pretrained_cfg
    model = timm.create_model("test_plainmamba", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    assert requested == [("ChenhongyiYang/PlainMamba", f"l{name[-1]}.pth")]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)

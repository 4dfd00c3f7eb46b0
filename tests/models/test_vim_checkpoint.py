"""Official-format Vim checkpoints (keys and shapes from the spec, random values, written here) load strictly."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import timm
import torch
from vim_spec_reference import official_shapes, random_official_state_dict

import vssm  # noqa: F401  (registers the models)
from vssm.models.vim import checkpoint_filter_fn

# name -> (embed_dim, num_tokens) of the released variants (depth 24, patch 16; stride 8 gives 27 × 27 + 1 tokens)
RELEASED = {
    "vim_tiny": (192, 197),
    "vim_tiny_stride8": (192, 730),
    "vim_small": (384, 197),
    "vim_small_stride8": (384, 730),
    "vim_base": (768, 197),
}


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_official_keys_and_shapes_are_ours(name: str) -> None:
    dim, tokens = RELEASED[name]
    shapes = official_shapes(dim, 24, tokens)
    assert len(shapes) == 415
    model = timm.create_model(name, device="meta")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == shapes


def _write(path: Path, state: dict[str, torch.Tensor], **extra: object) -> Path:
    torch.save({"model": state, "epoch": 299, **extra}, path)
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = random_official_state_dict(official_shapes(192, 24, 197), seed=1)
    return _write(tmp_path_factory.mktemp("vim") / "vim_t_midclstok_76p1acc.pth", state), state


def test_pretrained_cfg_overlay_loads_an_official_file_strictly(tiny_checkpoint) -> None:
    path, state = tiny_checkpoint
    model = timm.create_model("vim_tiny", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_official_file_with_argparse_args_loads_under_safe_globals(tmp_path: Path) -> None:
    # main.py saves `args` (an argparse.Namespace), which weights_only=True refuses unless allow-listed.
    state = random_official_state_dict(official_shapes(64, 4, 17), seed=2)
    path = _write(tmp_path / "ckpt.pth", state, args=argparse.Namespace(model="vim"))
    with torch.serialization.safe_globals([argparse.Namespace]):
        model = timm.create_model("test_vim", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(model.pos_embed.detach(), state["pos_embed"])


def test_wrong_variant_names_the_variant_and_first_keys(tiny_checkpoint) -> None:
    path, _ = tiny_checkpoint
    with pytest.raises(ValueError, match=r"does not fit vim_small .*cls_token \(1, 1, 192\) vs \(1, 1, 384\)") as info:
        timm.create_model("vim_small", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert "embed_dim 192" in str(info.value)  # what the checkpoint is


def test_stride8_checkpoint_into_stride16_model_fails_on_pos_embed() -> None:
    state = random_official_state_dict(official_shapes(64, 4, 50), seed=3)  # a 7 × 7 grid: test_vim at stride 8
    model = timm.create_model("test_vim")
    with pytest.raises(ValueError, match=r"test_vim .*pos_embed has 50 entries, the model needs 17"):
        checkpoint_filter_fn({"model": state}, model)
    stride8 = timm.create_model("test_vim", stride=8)
    stride8.load_state_dict(checkpoint_filter_fn({"model": state}, stride8), strict=True)


def test_other_resolution_resamples_pos_embed_around_the_class_slot() -> None:
    state = random_official_state_dict(official_shapes(64, 4, 17), seed=4)  # 4 × 4 grid, class entry at 8
    model = timm.create_model("test_vim", img_size=96)  # 6 × 6 grid, class entry at 18
    model.load_state_dict(checkpoint_filter_fn({"model": state}, model), strict=True)
    pos = model.pos_embed.detach()
    assert pos.shape == (1, 37, 64)
    torch.testing.assert_close(pos[:, 18], state["pos_embed"][:, 8], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda sd: sd.update({"rope.freqs_cos": torch.zeros(4, 4)}), "RoPE"),
        (lambda sd: sd.pop("cls_token"), "no cls_token"),
        (lambda sd: [sd.pop(k) for k in list(sd) if "conv1d_b" in k or "x_proj_b" in k or "dt_proj_b" in k], "v1"),
    ],
)
def test_older_vim_checkpoints_are_refused_by_name(edit, match: str) -> None:
    state = random_official_state_dict(official_shapes(64, 4, 17), seed=5)
    edit(state)
    with pytest.raises(ValueError, match=match):
        checkpoint_filter_fn(state, timm.create_model("test_vim"))


def test_ddp_prefix_and_bare_state_dicts_are_accepted() -> None:
    state = random_official_state_dict(official_shapes(64, 4, 17), seed=6)
    model = timm.create_model("test_vim")
    model.load_state_dict(checkpoint_filter_fn({f"module.{k}": v for k, v in state.items()}, model), strict=True)
    assert torch.equal(model.cls_token.detach(), state["cls_token"])


def test_other_num_classes_keeps_the_backbone(tmp_path: Path) -> None:
    state = random_official_state_dict(official_shapes(64, 4, 17), seed=7)
    path = _write(tmp_path / "ckpt.pth", state)
    model = timm.create_model("test_vim", pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.out_features == 10
    assert torch.equal(model.state_dict()["layers.3.mixer.A_b_log"], state["layers.3.mixer.A_b_log"])

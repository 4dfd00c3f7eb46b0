"""Released LocalMamba checkpoint layouts (localmamba.md §5, written out here from the spec's key tables) load strictly;
wrong files, search supernets and other input sizes are handled; pretrained_cfg names the release files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F

import vssm  # noqa: F401  (registers the models)
from vssm.models.localmamba import checkpoint_filter_fn

RELEASES = "https://github.com/hunto/LocalMamba/releases/download/v1.0.0/"
LOCAL_VIM = {  # name -> (embed_dim, class token)
    "local_vim_tiny": (192, False),
    "local_vim_tiny_midcls": (192, True),
    "local_vim_small": (384, False),
}
LOCAL_VSSM = {"local_vssm_tiny": (2, 2, 9, 2), "local_vssm_small": (2, 2, 27, 2)}


def local_vim_layout(embed_dim: int, class_token: bool, depth: int = 20, grid: int = 14) -> dict[str, tuple]:
    """The original LocalVim state dict: key -> shape (E = 2D, R = ⌈D/16⌉, r = ⌊E/8⌋)."""
    d, e = embed_dim, 2 * embed_dim
    rank, reduced = math.ceil(d / 16), e // 8
    keys: dict[str, tuple] = {
        "patch_embed.proj.weight": (d, 3, 16, 16),
        "patch_embed.proj.bias": (d,),
        "pos_embed": (1, grid * grid + int(class_token), d),
    }
    if class_token:
        keys["cls_token"] = (1, 1, d)
    else:
        keys["rope.freqs_cos"] = keys["rope.freqs_sin"] = (grid * grid, d)
    for i in range(depth):
        m = f"layers.{i}.mixer."
        keys[f"layers.{i}.norm.weight"] = (d,)
        keys[m + "in_proj.weight"] = (2 * e, d)
        for k in range(4):
            keys.update({
                f"{m}A_log_{k}": (e, 16), f"{m}conv1d_{k}.weight": (e, 1, 4), f"{m}conv1d_{k}.bias": (e,),
                f"{m}x_proj_{k}.weight": (rank + 32, e), f"{m}dt_proj_{k}.weight": (e, rank),
                f"{m}dt_proj_{k}.bias": (e,), f"{m}D_{k}": (e,),
            })  # fmt: skip
        keys[m + "out_proj.weight"] = (d, e)
        keys.update({
            m + "attn.norm.weight": (e,), m + "attn.norm.bias": (e,), m + "attn.global_reduce.weight": (reduced, e),
            m + "attn.global_reduce.bias": (reduced,), m + "attn.channel_select.weight": (e, reduced),
            m + "attn.channel_select.bias": (e,),
        })  # fmt: skip
    keys.update({"norm_f.weight": (d,), "head.weight": (1000, d), "head.bias": (1000,)})
    return keys


def local_vssm_layout(depths: tuple[int, ...], dims: tuple[int, ...] = (96, 192, 384, 768)) -> dict[str, tuple]:
    """The original LocalVMamba state dict: key -> shape (E = 2C, R = ⌈C/16⌉, r = ⌊E/8⌋)."""
    keys: dict[str, tuple] = {
        "patch_embed.0.weight": (dims[0], 3, 4, 4), "patch_embed.0.bias": (dims[0],),
        "patch_embed.2.weight": (dims[0],), "patch_embed.2.bias": (dims[0],),
    }  # fmt: skip
    for s, (depth, c) in enumerate(zip(depths, dims)):
        e, rank = 2 * c, math.ceil(c / 16)
        for j in range(depth):
            b = f"layers.{s}.blocks.{j}."
            keys.update({
                b + "norm.weight": (c,), b + "norm.bias": (c,), b + "op.in_proj.weight": (2 * e, c),
                b + "op.conv2d.weight": (e, 1, 3, 3), b + "op.conv2d.bias": (e,),
                b + "op.x_proj_weight": (4, rank + 32, e), b + "op.dt_projs_weight": (4, e, rank),
                b + "op.dt_projs_bias": (4, e), b + "op.A_logs": (4 * e, 16), b + "op.Ds": (4 * e,),
                b + "op.out_norm.weight": (e,), b + "op.out_norm.bias": (e,), b + "op.out_proj.weight": (c, e),
                b + "op.multi_scan.attn.norm.weight": (e,), b + "op.multi_scan.attn.norm.bias": (e,),
                b + "op.multi_scan.attn.global_reduce.weight": (e // 8, e),
                b + "op.multi_scan.attn.global_reduce.bias": (e // 8,),
                b + "op.multi_scan.attn.channel_select.weight": (e, e // 8),
                b + "op.multi_scan.attn.channel_select.bias": (e,),
            })  # fmt: skip
        if s < len(depths) - 1:
            keys.update({
                f"layers.{s}.downsample.reduction.weight": (2 * c, 4 * c),
                f"layers.{s}.downsample.norm.weight": (4 * c,), f"layers.{s}.downsample.norm.bias": (4 * c,),
            })  # fmt: skip
    last = dims[-1]
    keys.update({"classifier.norm.weight": (last,), "classifier.norm.bias": (last,),
                 "classifier.head.weight": (1000, last), "classifier.head.bias": (1000,)})  # fmt: skip
    return keys


def layout(name: str) -> dict[str, tuple]:
    if name in LOCAL_VIM:
        return local_vim_layout(*LOCAL_VIM[name])
    return local_vssm_layout(LOCAL_VSSM[name])


def released(name: str, device: str = "cpu", seed: int = 0) -> dict[str, torch.Tensor]:
    """A `{'state_dict': ...}` file's content in the original layout, with DDP prefixes, random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout(name).items():
        state[f"module.{key}"] = (torch.empty(shape, device="meta") if device == "meta"
                                  else torch.randn(shape, generator=generator))  # fmt: skip
    return {"state_dict": state}


@pytest.mark.parametrize("name", [*LOCAL_VIM, *LOCAL_VSSM])
def test_the_original_layout_converts_to_exactly_our_state_dict(name: str) -> None:
    model = timm.create_model(name, device="meta")
    converted = checkpoint_filter_fn(released(name, device="meta"), model)
    ours = model.state_dict()
    assert converted.keys() == ours.keys()
    assert all(converted[k].shape == ours[k].shape for k in ours)
    result = model.load_state_dict(converted, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("name", ["local_vim_tiny", "local_vim_tiny_midcls", "local_vssm_tiny"])
def test_a_release_file_loads_strictly_through_timm(name: str, tmp_path: Path) -> None:
    checkpoint = released(name)
    path = tmp_path / f"{name}.ckpt"
    torch.save(checkpoint, path)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    ours = model.state_dict()
    originals = {k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()}
    renamed = checkpoint_filter_fn(checkpoint, model)
    for key, value in renamed.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0, msg=key)
    if "local_vim" in name:
        for k in range(4):  # LocalMamba#16: four distinct A_log_k after a CPU load
            torch.testing.assert_close(ours[f"layers.5.mixer.A_log_{k}"], originals[f"layers.5.mixer.A_log_{k}"])
        assert len({ours[f"layers.5.mixer.A_log_{k}"].data_ptr() for k in range(4)}) == 4


def test_an_aliased_checkpoint_does_not_alias_our_parameters(tmp_path: Path) -> None:
    """A state dict saved from the original on the CPU stores A_log_0..3 as one tensor; ours stay four parameters."""
    model = timm.create_model("test_local_vim")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    shared = torch.randn_like(state["layers.0.mixer.A_log_0"])
    for k in range(4):
        state[f"layers.0.mixer.A_log_{k}"] = shared
    torch.save({"state_dict": state}, tmp_path / "aliased.ckpt")
    state = torch.load(tmp_path / "aliased.ckpt", weights_only=True)
    model.load_state_dict(checkpoint_filter_fn(state, model), strict=True)
    with torch.no_grad():
        model.layers[0].mixer.route_views("A_log")[1].add_(1.0)
    a_log = model.layers[0].mixer.route_views("A_log")
    torch.testing.assert_close(a_log[0], shared)
    torch.testing.assert_close(a_log[1], shared + 1.0)


def test_the_readme_link_for_local_vim_small_is_refused_by_name() -> None:
    """LocalMamba#43: the README's LocalVim-S link is the LocalVMamba-S file."""
    model = timm.create_model("local_vim_small", device="meta")
    expected = r"a LocalVMamba checkpoint \(depths \[2, 2, 27, 2\], dims \[96, 192, 384, 768\]\) does not fit "
    with pytest.raises(ValueError, match=expected + r"local_vim_small: missing: \['pos_embed'"):
        checkpoint_filter_fn(released("local_vssm_small", device="meta"), model)


def test_a_checkpoint_of_another_variant_is_refused_by_name() -> None:
    model = timm.create_model("local_vim_tiny_midcls", device="meta")
    expected = r"a LocalVim checkpoint \(embed_dim 192, depth 20, RoPE\) does not fit local_vim_tiny_midcls: "
    with pytest.raises(ValueError, match=expected + r"missing: \['cls_token'\]"):
        checkpoint_filter_fn(released("local_vim_tiny", device="meta"), model)


def test_a_search_supernet_is_refused() -> None:
    model = timm.create_model("test_local_vim", device="meta")
    checkpoint = {"state_dict": {**model.state_dict(), "layers.0.mixer.multi_scan.weights": torch.zeros(8, 1, 1, 1)}}
    with pytest.raises(ValueError, match="direction-search supernet"):
        checkpoint_filter_fn(checkpoint, model)


def test_dense_backbone_output_norms_are_dropped() -> None:
    model = timm.create_model("local_vssm_tiny", device="meta")
    checkpoint = released("local_vssm_tiny", device="meta")
    checkpoint["state_dict"]["outnorm0.weight"] = torch.empty(96, device="meta")
    assert "outnorm0.weight" not in checkpoint_filter_fn(checkpoint, model)


def test_a_model_for_another_size_gets_resized_positions_and_rope_tables() -> None:
    """As the original's dense backbones: the 14 × 14 checkpoint tables resized bicubically, not rebuilt."""
    model = timm.create_model("local_vim_tiny", img_size=320, dynamic_img_size=True, device="meta")
    checkpoint = released("local_vim_tiny")
    converted = checkpoint_filter_fn(checkpoint, model)
    source = checkpoint["state_dict"]

    def resized(table: torch.Tensor) -> torch.Tensor:
        image = table.reshape(1, 14, 14, -1).permute(0, 3, 1, 2)
        return F.interpolate(image, size=(20, 20), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)

    torch.testing.assert_close(converted["pos_embed"], resized(source["module.pos_embed"]))
    torch.testing.assert_close(converted["rope.freqs_cos"], resized(source["module.rope.freqs_cos"])[0])
    model.load_state_dict(converted, strict=True, assign=True)


def test_pretrained_weights_load_for_another_number_of_classes(tmp_path: Path) -> None:
    path = tmp_path / "local_vssm_tiny.ckpt"
    torch.save(released("local_vssm_tiny"), path)
    model = timm.create_model("local_vssm_tiny", pretrained=True, num_classes=7,
                              pretrained_cfg_overlay=dict(file=str(path)))  # fmt: skip
    assert model.classifier.head.out_features == 7


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("local_vim_tiny", "local_vim_tiny.ckpt"),
        ("local_vim_tiny_midcls", "local_vim_tiny_middle_cls_token.ckpt"),
        ("local_vssm_small", "local_vssm_small.ckpt"),
        ("local_vim_small", None),  # the README's link is LocalVMamba-S's file (LocalMamba#43)
        ("local_vssm_tiny", None),  # "retraining..." (LocalMamba#40, #42)
    ],
)
def test_pretrained_cfg_names_the_release_files(name: str, file: str | None) -> None:
    cfg = timm.create_model(name, device="meta").pretrained_cfg
    assert (cfg["input_size"], cfg["crop_pct"], cfg["interpolation"]) == ((3, 224, 224), 0.875, "bicubic")
    if file is None:
        assert not cfg.get("url") and cfg["tag"] == "untrained" and "LocalMamba#4" in cfg["notes"]
    else:
        assert cfg["url"] == RELEASES + file and cfg["tag"] == "in1k"

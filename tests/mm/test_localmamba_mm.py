"""LocalMamba for dense prediction: every config in configs/localmamba builds its detector / segmentor with the
backbone the original wires in (one Runner iteration of each config: tests/mm/test_mm_configs.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import timm
import torch
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import vssm.mm  # noqa: F401  (registers the backbones)

pytestmark = pytest.mark.mm

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs" / "localmamba").glob("*.py"))
# config stem -> (backbone type, timm name, out_indices, channels feeding the neck / decode head)
EXPECTED = {
    "mask-rcnn_local-vmamba-t_fpn_1x_coco": ("LocalVMambaBackbone", "local_vssm_tiny", (0, 1, 2, 3),
                                             [96, 192, 384, 768]),
    "mask-rcnn_local-vmamba-s_fpn_1x_coco": ("LocalVMambaBackbone", "local_vssm_small", (0, 1, 2, 3),
                                             [96, 192, 384, 768]),
    "mask-rcnn_local-vmamba-t_fpn_ms-crop-3x_coco": ("LocalVMambaBackbone", "local_vssm_tiny", (0, 1, 2, 3),
                                                     [96, 192, 384, 768]),
    "mask-rcnn_local-vmamba-s_fpn_ms-crop-3x_coco": ("LocalVMambaBackbone", "local_vssm_small", (0, 1, 2, 3),
                                                     [96, 192, 384, 768]),
    "mask-rcnn_local-vim-t_simple-fpn_lsj-100e_coco": ("LocalVimBackbone", "local_vim_tiny", (19,), [192]),
    "mask-rcnn_local-vim-s_simple-fpn_lsj-100e_coco": ("LocalVimBackbone", "local_vim_small", (19,), [384]),
    "upernet_local-vmamba-t_8xb2-160k_ade20k-512x512": ("LocalVMambaBackbone", "local_vssm_tiny", (0, 1, 2, 3),
                                                        [96, 192, 384, 768]),
    "upernet_local-vmamba-s_8xb2-160k_ade20k-512x512": ("LocalVMambaBackbone", "local_vssm_small", (0, 1, 2, 3),
                                                        [96, 192, 384, 768]),
    "upernet_local-vim-t_8xb2-160k_ade20k-512x512": ("LocalVimBackbone", "local_vim_tiny", (4, 9, 14, 19),
                                                     [192] * 4),
    "upernet_local-vim-s_8xb2-160k_ade20k-512x512": ("LocalVimBackbone", "local_vim_small", (4, 9, 14, 19),
                                                     [384] * 4),
}  # fmt: skip


def _build(cfg: Config) -> torch.nn.Module:
    init_default_scope(cfg.default_scope)
    registry = importlib.import_module(f"{cfg.default_scope}.registry").MODELS
    importlib.import_module(f"{cfg.default_scope}.models")
    with torch.device("meta"):
        return registry.build(cfg.model)


def test_every_config_is_checked() -> None:
    assert {path.stem for path in CONFIGS} == set(EXPECTED)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_builds_with_the_original_backbone(path: Path) -> None:
    cfg = Config.fromfile(path)
    kind, name, indices, channels = EXPECTED[path.stem]
    model = _build(cfg)
    backbone = model.backbone
    assert type(backbone).__name__ == kind and backbone.model_name == name
    assert backbone.out_indices == indices and backbone.out_channels == channels
    if cfg.default_scope == "mmseg":
        wired = list(model.decode_head.in_channels)
    elif cfg.model.neck.type == "SimpleFPN":  # ViTDet's neck: the last block's map, resampled to four levels
        wired = [model.neck.backbone_channel]
        assert model.neck.in_channels == [channels[0] // 4, channels[0] // 2, channels[0], channels[0]]
    else:
        wired = list(model.neck.in_channels)
    assert wired == channels
    # The backbone is the whole network up to its last output (built at the config's size), plus one LayerNorm per
    # output.
    size = cfg.model.backbone.get("img_size")
    network = timm.create_model(name, device="meta", **({"img_size": size} if size else {}))
    network.prune_intermediate_layers(list(indices), prune_norm=True, prune_head=True)
    out_norms = sum(2 * c for c in channels)
    assert sum(p.numel() for p in backbone.parameters()) == sum(p.numel() for p in network.parameters()) + out_norms
    init = cfg.model.backbone.init_cfg
    if name == "local_vim_small":
        assert init is None  # the README's file is LocalVMamba-S's (LocalMamba#43)
    else:
        assert init.checkpoint.endswith(f"/{name}.ckpt")


def test_local_vim_detection_optimizer_has_the_originals_effective_groups() -> None:
    """The original's ViTDet layer-decay rule (rate 0.7, 12 layers) finds no `backbone.blocks.N` in LocalVim: its
    patch_embed and pos_embed train at 0.7^13 of the lr, pos_embed without weight decay; everything else at the full
    lr with weight decay."""
    cfg = Config.fromfile(ROOT / "configs" / "localmamba" / "mask-rcnn_local-vim-t_simple-fpn_lsj-100e_coco.py")
    model = _build(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): name for name, p in model.named_parameters()}
    stem = []
    for group in wrapper.optimizer.param_groups:
        for param in group["params"]:
            name = names[id(param)]
            in_stem = name.startswith(("backbone.patch_embed.", "backbone.pos_embed"))
            stem += [name] if in_stem else []
            assert group["lr"] == pytest.approx(1e-4 * (0.7**13 if in_stem else 1.0)), name
            assert group["weight_decay"] == (0.0 if name == "backbone.pos_embed" else 0.05), name
    assert sorted(stem) == ["backbone.patch_embed.proj.bias", "backbone.patch_embed.proj.weight", "backbone.pos_embed"]

"""LocalMamba for dense prediction: every config in configs/localmamba builds its detector / segmentor with the
backbone the original wires in, and the test backbones train for an iteration under MMEngine's Runner (tools/train.py)
from those configs, shrunk only where a CPU needs it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import uuid
from pathlib import Path

import mm_tiny_data
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


# ---------------------------------------------------------------------------------------------------- Runner


def _train_tool():
    spec = importlib.util.spec_from_file_location("tools_train_localmamba", ROOT / "tools" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _losses(work_dir: Path) -> list[float]:
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    lines = [line for path in files for line in path.read_text().splitlines()]
    return [r["loss"] for r in map(json.loads, lines) if "loss" in r]


def _run(cfg: Config, root: Path) -> list[float]:
    work_dir = root / "work"
    cfg.work_dir = str(work_dir)
    cfg.visualizer.name = f"visualizer-{uuid.uuid4().hex}"  # one visualizer instance per run in this process
    cfg.randomness = dict(seed=0)
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = []
    cfg.optim_wrapper.type = "OptimWrapper"  # mixed precision needs a GPU
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].update(num_workers=0, persistent_workers=False)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    path = root / "cfg.py"
    cfg.dump(str(path))
    assert _train_tool().main([str(path)]) == 0
    return _losses(work_dir)


def test_mask_rcnn_with_the_local_vmamba_test_backbone_trains_an_iteration(tmp_path: Path) -> None:
    data = mm_tiny_data.make_coco(tmp_path / "coco", {"train": 2})
    cfg = Config.fromfile(ROOT / "configs" / "localmamba" / "mask-rcnn_local-vmamba-t_fpn_1x_coco.py")
    model = cfg.model
    model.backbone.update(model="test_local_vssm", init_cfg=None)  # 128 px: its w7 pads on 4 x 4 as the original
    model.neck.update(in_channels=[16, 32, 64, 128], out_channels=32)
    model.rpn_head.update(in_channels=32, feat_channels=32)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = 32
    roi.bbox_head.update(in_channels=32, fc_out_channels=64, num_classes=2)
    roi.mask_head.update(in_channels=32, conv_out_channels=32, num_classes=2)
    pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
                dict(type="Resize", scale=(128, 128), keep_ratio=True), dict(type="PackDetInputs")]  # fmt: skip
    cfg.train_dataloader.dataset.update(
        data_root=str(data), ann_file="annotations/train.json", data_prefix=dict(img="train/"),
        metainfo=dict(classes=mm_tiny_data.CLASSES), pipeline=pipeline)
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1)
    losses = _run(cfg, tmp_path)
    assert len(losses) == 1 and math.isfinite(losses[0])


def test_upernet_with_the_local_vim_test_backbone_trains_an_iteration(tmp_path: Path) -> None:
    data = mm_tiny_data.make_ade20k(tmp_path / "ade", {"training": 2}, size=128)
    cfg = Config.fromfile(ROOT / "configs" / "localmamba" / "upernet_local-vim-t_8xb2-160k_ade20k-512x512.py")
    crop = (112, 112)  # 7 x 7 patches: w7 is one window, w2 pads
    model = cfg.model
    model.data_preprocessor.size = crop
    model.backbone.update(model="test_local_vim", img_size=112, out_indices=(0, 1, 2, 3), init_cfg=None)
    model.decode_head.update(in_channels=[64] * 4, channels=32, num_classes=3)
    model.auxiliary_head.update(in_channels=64, channels=16, num_classes=3)
    pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", reduce_zero_label=True),
                dict(type="RandomCrop", crop_size=crop), dict(type="PackSegInputs")]  # fmt: skip
    cfg.train_dataloader.dataset.update(
        data_root=str(data), data_prefix=dict(img_path="images/training", seg_map_path="annotations/training"),
        pipeline=pipeline)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=1)
    cfg.default_hooks.checkpoint.update(interval=1, save_best=None)
    losses = _run(cfg, tmp_path)
    assert len(losses) == 1 and math.isfinite(losses[0])


def test_vitdet_mask_rcnn_with_the_local_vim_test_backbone_trains_an_iteration(tmp_path: Path) -> None:
    """The LSJ pipeline, batch padding, SimpleFPN and LN2d heads under the Runner, at 128 px instead of 1024."""
    data = mm_tiny_data.make_coco(tmp_path / "coco", {"train": 2})
    cfg = Config.fromfile(ROOT / "configs" / "localmamba" / "mask-rcnn_local-vim-t_simple-fpn_lsj-100e_coco.py")
    size = (128, 128)  # 8 x 8 tokens: the searched w7 pads, as on the original's 64 x 64
    model = cfg.model
    model.data_preprocessor.batch_augments[0].size = size
    model.backbone.update(model="test_local_vim", img_size=size, out_indices=(3,), init_cfg=None)
    model.neck.update(backbone_channel=64, in_channels=[16, 32, 64, 64], out_channels=32)
    model.rpn_head.update(in_channels=32, feat_channels=32)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = 32
    roi.bbox_head.update(in_channels=32, conv_out_channels=32, fc_out_channels=64, num_classes=2)
    roi.mask_head.update(in_channels=32, conv_out_channels=32, num_classes=2)
    pipeline = cfg.train_dataloader.dataset.pipeline
    for step in pipeline:  # the original's steps, at 128 px
        for key in ("scale", "crop_size", "size"):
            if key in step:
                step[key] = size
    cfg.train_dataloader.dataset.update(
        data_root=str(data), ann_file="annotations/train.json", data_prefix=dict(img="train/"),
        metainfo=dict(classes=mm_tiny_data.CLASSES))
    cfg.train_cfg.update(max_iters=1, dynamic_intervals=None)
    losses = _run(cfg, tmp_path)
    assert len(losses) == 1 and math.isfinite(losses[0])

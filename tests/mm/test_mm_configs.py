"""Every config in configs/: it parses, builds its full model (on the meta device: the real sizes, no memory) with the
published parameter counts where the original states them, wires the backbone's channels into neck and heads, builds
its optimizer (layer decay included), and trains one step on a small image with the family's test backbone swapped in
(full heads, fewer sampled proposals). A few configs also run their real backbone on a small image."""

from __future__ import annotations

import difflib
import importlib
import math
from pathlib import Path

import pytest
import timm
import torch
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData, PixelData

from vssm.mm import VSSMBackbone
from vssm.mm.checkpoint import is_url
from vssm.models.umamba import UMamba

pytestmark = pytest.mark.mm

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*/*.py"))

# Parameters (millions) the original repositories publish for these configs.
PUBLISHED_PARAMS_M = {
    "mask-rcnn_vmamba-t_fpn_1x_coco": 50, "mask-rcnn_vmamba-t-s2l5_fpn_1x_coco": 50,
    "mask-rcnn_vmamba-s_fpn_1x_coco": 70, "mask-rcnn_vmamba-b_fpn_1x_coco": 108,
    "mask-rcnn_vmamba-t_fpn_ms-crop-3x_coco": 50, "mask-rcnn_vmamba-t-s2l5_fpn_ms-crop-3x_coco": 50,
    "mask-rcnn_vmamba-s_fpn_ms-crop-3x_coco": 70,
    "upernet_vmamba-t_8xb2-160k_ade20k-512x512": 62, "upernet_vmamba-t-s2l5_8xb2-160k_ade20k-512x512": 62,
    "upernet_vmamba-s_8xb2-160k_ade20k-512x512": 82, "upernet_vmamba-b_8xb2-160k_ade20k-512x512": 122,
    # MambaVision's README lists 86/108/145M (Cascade T/S/B) and 55/84/126M (UperNet T/S/B), which its own
    # configs do not give (89.2/107.5/154.9M and 62.5/81.8/131.2M built here); S-Cascade and L3 agree.
    "cascade-mask-rcnn_mambavision-s_fpn_4conv1fc-giou_amp-ms-crop-3x_coco": 108,
    "upernet_mambavision-l3-512-21k_16xb1-160k_ade20k-640x640": 780,
}  # fmt: skip


# Input side for the test backbones: LocalVim's searched 7 x 7 windows need a grid of 8 tokens a side.
SMALL_INPUT = {"LocalVimBackbone": 128}


def _detector(model_cfg: Config) -> bool:
    return bool(model_cfg.get("roi_head"))


def _registry(cfg: Config):
    init_default_scope(cfg.default_scope)
    importlib.import_module(f"{cfg.default_scope}.models")
    return importlib.import_module(f"{cfg.default_scope}.registry").MODELS


def _heads(model_cfg: Config) -> list:
    aux = model_cfg.get("auxiliary_head") or []
    return [model_cfg.decode_head, *(aux if isinstance(aux, list) else [aux])] if model_cfg.get("decode_head") else []


def _neck_input(neck: torch.nn.Module) -> list[int]:
    """The backbone channels a detector's neck takes: FPN one per map, ViTDet's SimpleFPN its single map's."""
    return [neck.backbone_channel] if hasattr(neck, "backbone_channel") else list(neck.in_channels)


def _wire(model_cfg: Config, channels: list[int]) -> None:
    """Neck and heads take the backbone's `channels`; heads reading a map the backbone does not have are dropped."""
    if _detector(model_cfg):
        neck = model_cfg.neck
        if "backbone_channel" in neck:  # SimpleFPN: one map resampled to four levels
            (width,) = channels
            neck.update(backbone_channel=width, in_channels=[width // 4, width // 2, width, width])
        else:
            neck.in_channels = channels
        return
    heads = []
    for head in _heads(model_cfg):
        index = head.get("in_index", -1)
        if isinstance(index, int) and index >= len(channels):
            continue
        head.in_channels = [channels[i] for i in index] if isinstance(index, list) else channels[index]
        if head.type == "FCNHead" and head.get("num_convs", 2) == 0:
            head.channels = head.in_channels
        heads.append(head)
    model_cfg.decode_head, aux = heads[0], heads[1:]
    if model_cfg.get("auxiliary_head"):
        model_cfg.auxiliary_head = aux if isinstance(model_cfg.auxiliary_head, list) else aux[0]


def _sample_less(model_cfg: Config) -> None:
    """Detectors: fewer proposals and sampled RoIs (the cost of a step on a CPU is in the RoI heads)."""
    train_cfg = model_cfg.get("train_cfg") or {}
    if "rpn_proposal" not in train_cfg:
        return
    train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=50)
    stages = train_cfg.rcnn if isinstance(train_cfg.rcnn, list) else [train_cfg.rcnn]
    for stage in stages:
        stage.sampler.num = 32


def _test_variant(backbone_cfg: Config) -> str:
    cls = _registry_backbone(backbone_cfg.type)
    tests = [name for name in cls.valid_models() if name.startswith("test_")]
    return difflib.get_close_matches(f"test_{backbone_cfg.model}", tests, n=1, cutoff=0)[0]


def _registry_backbone(name: str) -> type[VSSMBackbone]:
    from mmengine.registry import MODELS

    return MODELS.get(name)


def _batch(model: torch.nn.Module, model_cfg: Config, in_chans: int, size: int) -> tuple[torch.Tensor, list]:
    """Two normalised images (2, C, size, size) and their data samples: two objects each (detection) or label maps
    (two images: the heads' BatchNorms see more than one value on their 1 x 1 pooled maps)."""
    x = torch.randn(2, in_chans, size, size)
    meta = dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
                batch_input_shape=(size, size), scale_factor=(1.0, 1.0))
    if _detector(model_cfg):
        from mmdet.structures import DetDataSample
        from mmdet.structures.mask import BitmapMasks

        boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [28.0, 20.0, 60.0, 58.0]])
        masks = torch.zeros(2, size, size, dtype=torch.uint8)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
            mask[y0:y1, x0:x1] = 1
        labels = torch.tensor([0, 1])
        instances = InstanceData(bboxes=boxes, labels=labels, masks=BitmapMasks(masks.numpy(), size, size))
        return x, [DetDataSample(metainfo=meta, gt_instances=instances) for _ in range(2)]
    from mmseg.structures import SegDataSample

    classes = model.decode_head.num_classes
    labels = [PixelData(data=torch.randint(0, classes, (1, size, size))) for _ in range(2)]
    return x, [SegDataSample(metainfo=meta, gt_sem_seg=label) for label in labels]


def _train_step(cfg: Config, size: int) -> VSSMBackbone:
    model = revert_sync_batchnorm(_registry(cfg).build(cfg.model))  # as MMEngine's Runner does without a cluster
    model.train()
    x, samples = _batch(model, cfg.model, model.backbone._net.in_chans, size)
    loss, _ = model.parse_losses(model(x, samples, mode="loss"))
    assert math.isfinite(loss.item())
    loss.backward()
    missing = [n for n, p in model.backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached {missing[:5]}"
    return model.backbone


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_builds_its_full_model_and_optimizer(path: Path) -> None:
    cfg = Config.fromfile(path)
    assert "vssm.mm" in cfg.custom_imports.imports and not cfg.custom_imports.allow_failed_imports
    with torch.device("meta"):
        model = _registry(cfg).build(cfg.model)
    backbone = model.backbone
    assert isinstance(backbone, VSSMBackbone) and backbone.model_name == cfg.model.backbone.model
    if _detector(cfg.model):
        assert _neck_input(model.neck) == backbone.out_channels
    for head in _heads(cfg.model):
        index = head.in_index
        expected = [backbone.out_channels[i] for i in index] if isinstance(index, list) else (
            backbone.out_channels[index])
        assert head.in_channels == expected, f"{head.type} reads {head.in_channels}, the backbone gives {expected}"
    params = sum(p.numel() for p in model.parameters())
    if path.stem in PUBLISHED_PARAMS_M:  # within the rounding of the published figure (1 %)
        assert params / 1e6 == pytest.approx(PUBLISHED_PARAMS_M[path.stem], rel=0.01), f"{params / 1e6:.2f}M"
    init = cfg.model.backbone.get("init_cfg")
    if init is not None:
        assert init.type == "Pretrained" and is_url(init.checkpoint)
    optim = cfg.optim_wrapper.copy()
    optim.type = "OptimWrapper"  # mixed precision needs a GPU; the parameter groups are the same
    optim.pop("loss_scale", None)
    wrapper = build_optim_wrapper(model, optim)
    grouped = sum(p.numel() for group in wrapper.optimizer.param_groups for p in group["params"])
    assert grouped == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_umamba_config_is_the_whole_network() -> None:
    """Backbone + 1x1 heads = U-Mamba with deep supervision, less the lowest output's conv (its weight is 0)."""
    cfg = Config.fromfile(ROOT / "configs" / "umamba" / "umamba-bot_1xb12-250k_synapse-256x256.py")
    with torch.device("meta"):
        model = _registry(cfg).build(cfg.model)
        plan = timm.create_model("umamba_bot_2d").plan
        network = UMamba(plan, num_classes=9, in_chans=1, deep_supervision=True)
    lowest = sum(p.numel() for p in network.decoder.seg_layers[0].parameters())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in network.parameters()) - lowest


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_a_step_with_its_test_backbone(path: Path) -> None:
    cfg = Config.fromfile(path)
    backbone_cfg = cfg.model.backbone
    single_output = len(backbone_cfg.get("out_indices") or ()) == 1
    for key in ("init_cfg", "out_indices", "window_size"):  # the test variant's own windows and blocks
        backbone_cfg.pop(key, None)
    backbone_cfg.model = _test_variant(backbone_cfg)
    with torch.device("meta"):
        backbone = _registry(cfg).build(backbone_cfg)
        if single_output:  # ViTDet-style: the test variant's last block alone
            backbone_cfg.out_indices = backbone.out_indices[-1:]
            backbone = _registry(cfg).build(backbone_cfg)
    _wire(cfg.model, backbone.out_channels)
    _sample_less(cfg.model)
    _train_step(cfg, size=SMALL_INPUT.get(backbone_cfg.type, 64))


@pytest.mark.parametrize(("name", "size"), [
    ("mask-rcnn_vmamba-t_fpn_1x_coco", 64),
    ("upernet_vim-t_4xb8-60k_ade20k-512x512", 64),
    ("umamba-bot_1xb12-250k_synapse-256x256", 128),  # 7 stages: a 2 x 2 bottleneck for its InstanceNorm
])
def test_config_trains_a_step_with_its_real_backbone_on_a_small_image(name: str, size: int) -> None:
    """The full-size backbone (Vim-Ti at img_size 512 resampling its position embedding to the 4 x 4 grid).
    MambaVision's real backbones are not run: their det/seg windows pad every small map to 112 / 64 tokens a side."""
    cfg = Config.fromfile(next(path for path in CONFIGS if path.stem == name))
    cfg.model.backbone.init_cfg = None
    _sample_less(cfg.model)
    _train_step(cfg, size=size)

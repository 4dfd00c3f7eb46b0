"""Every config in configs/: it parses, builds its full model (on the meta device: the real sizes, no memory) with the
published parameter counts where the original states them, wires the backbone's channels into neck and heads, builds
its optimizer (layer decay included), and trains one iteration on the CPU through tools/train.py and its own Runner,
changed only through `--cfg-options` (a tiny data set in the config's layout, smaller images, the family's test
backbone with the full neck and heads, fewer sampled proposals; four configs keep their released backbone)."""

from __future__ import annotations

import difflib
import importlib
import math
import uuid
from pathlib import Path

import mm_tiny_data
import mm_tools
import pytest
import timm
import torch
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmengine.config import Config
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from vssm.mm import VSSMBackbone
from vssm.mm.checkpoint import is_url
from vssm.mm.runner import build_runner, runner_checkpoints
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
    # MSVMamba's README (Micro's Mask R-CNN, 31.5M built here, is printed as 32M: outside 1 %, within its rounding).
    "mask-rcnn_msvmamba-t_fpn_1x_coco": 53, "mask-rcnn_msvmamba-t_fpn_ms-crop-3x_coco": 53,
    "upernet_msvmamba-m_4xb4-160k_ade20k-512x512": 42, "upernet_msvmamba-t_4xb4-160k_ade20k-512x512": 65,
    # MambaVision's README lists 86/108/145M (Cascade T/S/B) and 55/84/126M (UperNet T/S/B), which its own
    # configs do not give (89.2/107.5/154.9M and 62.5/81.8/131.2M built here); S-Cascade and L3 agree.
    "cascade-mask-rcnn_mambavision-s_fpn_4conv1fc-giou_amp-ms-crop-3x_coco": 108,
    "upernet_mambavision-l3-512-21k_16xb1-160k_ade20k-640x640": 780,
    # PlainMamba's README prints 35/55/81M for its UperNets, cut to whole millions as its ImageNet counts are (35.46M
    # and 55.87M built here for L1 / L2, outside 1 % of the cut numbers); L3 agrees.
    "upernet_plainmamba-l3_8xb2-160k_ade20k-512x512": 81,
    # Its detectors' counts are cut the same way (Mask R-CNN L1 / L2 / L3 31.21 / 53.20 / 79.78M, RetinaNet 19.20 /
    # 40.69 / 67.03M built here, printed 31 / 53 / 79 and 19 / 40 / 67); those within 1 % of the cut numbers:
    "mask-rcnn_plainmamba-adapter-l1_fpn_1x_coco": 31, "mask-rcnn_plainmamba-adapter-l2_fpn_1x_coco": 53,
    "mask-rcnn_plainmamba-adapter-l3_fpn_1x_coco": 79, "retinanet_plainmamba-adapter-l3_fpn_1x_coco": 67,
}  # fmt: skip


def _detector(model_cfg: Config) -> bool:
    """Two-stage (RoI heads) or single-stage (a box head on the neck, RetinaNet)."""
    return bool(model_cfg.get("roi_head") or model_cfg.get("bbox_head"))


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


# ---------------------------------------------------------------------------------------------------- one iteration


train_tool = mm_tools.load_tool("train")

# Configs run with their released backbone rather than the family's test variant: U-Mamba's (the test plan has fewer
# decoder maps than the configs have deep-supervision heads) and one per kind of adapter (hierarchical, Vim's plain
# network resampling its 512-px position embedding).
REAL_BACKBONE = {"umamba-bot_1xb12-250k_synapse-256x256", "umamba-enc_1xb12-250k_synapse-256x256",
                 "mask-rcnn_vmamba-t_fpn_1x_coco", "upernet_vim-t_4xb8-60k_ade20k-512x512"}
# The side the training pipeline's sizes shrink to (default 64): LocalVim's searched 7 x 7 windows need 8 tokens a
# side; U-Mamba's 7 stages a 2 x 2 bottleneck for its InstanceNorm (and its plan's patch becomes that size: Enc's
# channel-token stages run at the patch size only); PlainMamba-Adapter's RetinaNet a stride-128 level of 2 x 2 (its
# FPN's SyncBN needs more than one value a channel; the tiny COCO's one square image gives 1 x 1 up to 128 px).
TRAIN_SIDE = {"LocalVimBackbone": 128, "UMambaBackbone": 128, "PlainMambaAdapter": 160}
SIZE_KEYS = ("scale", "scales", "crop_size", "size")  # the image sizes of mmdet's / mmseg's transforms
# Backbone settings that depend on the network's width and depth, for the family's test variant (PlainMamba-Adapter
# over test_plainmamba, D 32, depth 4: heads of 8 channels, one layer per interaction block). Its out_indices pick
# pyramid levels, not layers, and stay as the config has them.
TEST_VARIANT_SETTINGS = {"PlainMambaAdapter": {"deform_num_heads": 4, "interaction_indexes": None}}


# Per dataset type: its tiny stand-in, the split the configs train on (their own layout, so only `data_root` changes)
# and how many images it holds, one batch: ADE20K two (UperNet's pooled 1 x 1 maps need two values per BatchNorm
# channel), the others one.
TINY_SETS = {
    "CocoDataset": (mm_tiny_data.make_coco, "train2017", 1),
    "ADE20KDataset": (mm_tiny_data.make_ade20k, "training", 2),
    "SynapseDataset": (mm_tiny_data.make_synapse, "train", 1),
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {kind: make(root / kind, {split: images}) for kind, (make, split, images) in TINY_SETS.items()}


def _literal(value: object) -> str:
    """`value` as `--cfg-options` parses it back (mmengine's DictAction): numbers, names, None, lists, tuples."""
    if isinstance(value, (list, tuple)):
        items = ",".join(map(_literal, value))
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if len(value) == 1 else ''})"
    return str(value)


def _sizes(node: object, path: str) -> list[tuple[str, object]]:
    """(dotted key, value) of every image size in a transform, a pipeline or RandomChoice's nested lists."""
    if isinstance(node, (list, tuple)):
        return [found for i, item in enumerate(node) for found in _sizes(item, f"{path}.{i}")]
    if not isinstance(node, dict):
        return []
    found = [(f"{path}.{key}", node[key]) for key in SIZE_KEYS if key in node]
    return found + _sizes(node.get("transforms", []), f"{path}.transforms")


def _shrink(size: object, factor: float) -> object:
    if isinstance(size, (list, tuple)):
        return type(size)(_shrink(s, factor) for s in size)
    return max(1, round(size / factor))


def _pairs(size: object) -> list[tuple[int, ...]]:
    if isinstance(size, (list, tuple)) and isinstance(size[0], (list, tuple)):
        return [tuple(s) for s in size]
    return [tuple(size) if isinstance(size, (list, tuple)) else (size,)]


def _image_size_options(cfg: Config, side: int) -> dict[str, object]:
    """Every size of the training pipeline and the data preprocessor divided by one factor, which brings the
    pipeline's largest short side (512 crop, 800 x 1333 resize, 1024 LSJ) to `side`."""
    pipeline = _sizes(cfg.train_dataloader.dataset.pipeline, "train_dataloader.dataset.pipeline")
    preprocessor = _sizes(cfg.model.data_preprocessor, "model.data_preprocessor")
    preprocessor += _sizes(cfg.model.data_preprocessor.get("batch_augments", []),
                           "model.data_preprocessor.batch_augments")
    factor = max(min(pair) for _, size in pipeline for pair in _pairs(size)) / side
    return {key: _shrink(size, factor) for key, size in pipeline + preprocessor}


def _network_options(cfg: Config, real: bool) -> tuple[dict[str, object], int]:
    """The backbone (its test variant unless `real`, no pretrained weights), the neck and heads wired to its
    channels, fewer sampled proposals; and the side its input shrinks to."""
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.init_cfg = None
    options: dict[str, object] = {"model.backbone.init_cfg": None}
    settings = TEST_VARIANT_SETTINGS.get(backbone_cfg.type)
    if not real:
        single_output = len(backbone_cfg.get("out_indices") or ()) == 1 and not settings
        for key in ("window_size",) if settings else ("out_indices", "window_size"):  # the test variant's own
            backbone_cfg.pop(key, None)
        backbone_cfg.update(settings or {})
        backbone_cfg.model = _test_variant(backbone_cfg)
    with torch.device("meta"):
        backbone = _registry(cfg).build(backbone_cfg)
    channels = backbone.out_channels
    if not real:
        out_indices = backbone.out_indices
        if single_output:  # ViTDet-style: the last block alone
            out_indices, channels = out_indices[-1:], channels[-1:]
        options.update({"model.backbone.model": backbone_cfg.model, "model.backbone.out_indices": out_indices})
        options.update({f"model.backbone.{key}": value for key, value in (settings or {}).items()})
        if "window_size" in cfg.model.backbone:
            options["model.backbone.window_size"] = backbone._net.window_size
    options.update(_wiring_options(cfg.model, channels))
    if "num_layers" in cfg.optim_wrapper.get("paramwise_cfg", {}):  # layer decay checks the depth it is given
        options["optim_wrapper.paramwise_cfg.num_layers"] = backbone.layer_ids()[1]
    train_cfg = cfg.model.get("train_cfg") or {}
    if "rpn_proposal" in train_cfg:  # a detector's CPU time is in its RoI heads
        options.update({"model.train_cfg.rpn_proposal.nms_pre": 200, "model.train_cfg.rpn_proposal.max_per_img": 50})
        stages = range(len(train_cfg.rcnn)) if isinstance(train_cfg.rcnn, list) else [None]
        for i in stages:
            options["model.train_cfg.rcnn" + ("" if i is None else f".{i}") + ".sampler.num"] = 32
    side = TRAIN_SIDE.get(backbone_cfg.type, 64)
    if backbone_cfg.type == "UMambaBackbone":
        options["model.backbone.img_size"] = side
    return options, side


def _wiring_options(model_cfg: Config, channels: list[int]) -> dict[str, object]:
    """Neck and heads take the backbone's `channels` (as the configs wire the released backbones)."""
    if _detector(model_cfg):
        if "backbone_channel" not in model_cfg.neck:
            return {"model.neck.in_channels": channels}
        (width,) = channels  # SimpleFPN: one map resampled to four levels
        return {"model.neck.backbone_channel": width, "model.neck.in_channels": [width // 4, width // 2, width, width]}
    aux = model_cfg.get("auxiliary_head")
    keys = ["model.decode_head"] + (
        [f"model.auxiliary_head.{i}" for i in range(len(aux))] if isinstance(aux, list) else
        ["model.auxiliary_head"] if aux else [])
    options = {}
    for key, head in zip(keys, _heads(model_cfg)):
        index = head.in_index
        options[f"{key}.in_channels"] = [channels[i] for i in index] if isinstance(index, list) else channels[index]
        if head.type == "FCNHead" and head.get("num_convs", 2) == 0:
            options[f"{key}.channels"] = options[f"{key}.in_channels"]
    return options


def _test_variant(backbone_cfg: Config) -> str:
    tests = [name for name in MODELS.get(backbone_cfg.type).valid_models() if name.startswith("test_")]
    return difflib.get_close_matches(f"test_{backbone_cfg.model}", tests, n=1, cutoff=0)[0]


def _runner_options(cfg: Config, stem: str, datasets: dict[str, Path]) -> dict[str, object]:
    """What a CPU needs changed, as `--cfg-options`: the tiny data set, one iteration of as many images as it holds,
    no validation, checkpoint or data-loading workers, smaller images and network (see `_network_options`)."""
    dataset = cfg.train_dataloader.dataset
    options: dict[str, object] = {
        "train_dataloader.dataset.data_root": datasets[dataset.type],
        "train_dataloader.batch_size": TINY_SETS[dataset.type][2],
        "train_dataloader.num_workers": 0, "train_dataloader.persistent_workers": False,
        "train_dataloader.dataset.serialize_data": False,  # its pickling ends in a gc.collect() of ~1 s
        "train_cfg." + ("max_epochs" if cfg.train_cfg.type == "EpochBasedTrainLoop" else "max_iters"): 1,
        "val_cfg": None, "val_dataloader": None, "val_evaluator": None, "default_hooks.checkpoint": None,
        # MMEngine's visualizer is one instance per name in a process: each run needs its own.
        "visualizer.name": f"visualizer-{uuid.uuid4().hex}",
    }
    if dataset.type == "CocoDataset":
        options["train_dataloader.dataset.metainfo.classes"] = list(mm_tiny_data.CLASSES)
    network, side = _network_options(cfg, real=stem in REAL_BACKBONE)
    return {**options, **network, **_image_size_options(cfg, side)}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_trains_an_iteration_with_its_runner(path: Path, datasets: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """tools/train.py on a machine without a GPU: the config's own Runner, model, optimizer wrapper, parameter
    schedulers, hooks and training pipeline, changed only through `--cfg-options` (`_runner_options`: a tiny data set
    in the config's layout, one iteration, the pipeline's image sizes shrunk by one factor, fewer sampled proposals),
    train one iteration on the CPU; a config asking for mixed precision trains in float32 and logs it once. The
    backbone is the family's `test_*` variant, with the full neck and heads, except in `REAL_BACKBONE`: the released
    ones cost too much for every config (measured, one thread: VMamba-B's Mask R-CNN iteration 2.8 s of CPU against
    1.0 s with `test_vmamba`, MambaVision-T's Cascade Mask R-CNN 59 s against 2.1 s, its windows padding each map to
    112 x 112 and 56 x 56; MambaVision-L3 has 740 M parameters)."""
    monkeypatch.setattr(train_tool, "amp_device_available", lambda: False)
    cfg = Config.fromfile(path)
    options = [f"{key}={_literal(value)}" for key, value in _runner_options(cfg, path.stem, datasets).items()]
    with mm_tools.log_messages() as messages:
        train_cfg = train_tool.configure([str(path), "--work-dir", str(tmp_path), "--cfg-options", *options])
    float32 = [message for message in messages if "training in float32" in message]
    assert len(float32) == (1 if train_tool.uses_amp(cfg.optim_wrapper) else 0), messages
    # The Runner writes its config out four times (log, work-dir dump, visualizer), each formatted by yapf: 3 s of a
    # config's 8 here (profiled on a loaded 2-core machine); the unformatted text is the same config.
    train_cfg = Config(train_cfg.to_dict(), filename=train_cfg.filename, format_python_code=False)
    runner = build_runner(train_cfg)
    reached = set()
    for name, param in runner.model.backbone.named_parameters():
        if param.requires_grad:
            param.register_post_accumulate_grad_hook(lambda _, name=name: reached.add(name))
    with runner_checkpoints():
        runner.train()
    assert runner.iter == 1 and type(runner.optim_wrapper) is OptimWrapper
    assert math.isfinite(runner.message_hub.get_scalar("train/loss").current())
    missing = [name for name, param in runner.model.backbone.named_parameters()
               if param.requires_grad and name not in reached]
    assert not missing, f"no gradient reached {missing[:5]}"

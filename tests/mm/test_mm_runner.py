"""End to end with MMEngine's Runner on CPU, through tools/train.py and tools/test.py, on tiny generated datasets:
Mask R-CNN (VMamba test backbone) on COCO with CocoMetric, UperNet (Vim test backbone, layer decay) on ADE20K with
IoUMetric, U-Mamba on a Synapse-layout medical set. Each run starts from the repository's config and shrinks only what
a CPU needs (backbone variant, head widths, image size, learning-rate schedule)."""

from __future__ import annotations

import json
import math
import shlex
import uuid
from pathlib import Path

import mm_tiny_data
import mm_tools
import pytest
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmengine.config import Config

pytestmark = pytest.mark.mm

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"

train_tool = mm_tools.load_tool("train")
test_tool = mm_tools.load_tool("test")


def _train_records(work_dir: Path) -> list[dict]:
    """Every logged training iteration of a work dir's runs, in order."""
    files = sorted(work_dir.glob("*/vis_data/scalars.json"))
    lines = [line for path in files for line in path.read_text().splitlines()]
    return [r for r in map(json.loads, lines) if "loss" in r]


def _test_metrics(work_dir: Path) -> dict:
    """The metrics of the latest test run in a work dir (its `<timestamp>/<timestamp>.json`)."""
    run = sorted(p for p in work_dir.iterdir() if p.is_dir())[-1]
    return json.loads((run / f"{run.name}.json").read_text())


def _assert_trains(records: list[dict], window: int) -> None:
    losses = [r["loss"] for r in records]
    assert losses and all(math.isfinite(v) for v in losses), losses
    first, last = losses[:window], losses[-window:]
    assert sum(last) / window < sum(first) / window, f"loss did not decrease: {losses}"


def _common(cfg: Config, work_dir: Path) -> Config:
    cfg.work_dir = str(work_dir)
    # MMEngine's visualizer is a process-wide instance per name: a second run in this process with the same name
    # would log into the first run's directory.
    cfg.visualizer.name = f"visualizer-{uuid.uuid4().hex}"
    cfg.randomness = dict(seed=0)
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor.window_size = 1  # log each iteration's own loss, not a running mean
    cfg.param_scheduler = []  # a constant learning rate: the configs' warm-ups last longer than these runs
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].update(num_workers=0, persistent_workers=False)
    return cfg


def _dump(cfg: Config, path: Path) -> str:
    cfg.dump(str(path))
    return str(path)


# ---------------------------------------------------------------------------------------------------- command line


def test_train_command_line_sets_up_the_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(train_tool, "amp_device_available", lambda: True)
    config = str(CONFIGS / "vmamba" / "mask-rcnn_vmamba-t_fpn_1x_coco.py")
    cfg = train_tool.configure([config, "--amp", "--auto-scale-lr", "--launcher", "pytorch", "--cfg-options",
                                "train_dataloader.batch_size=3", "model.backbone.drop_path_rate=0.1"])
    assert cfg.work_dir == str(Path("work_dirs") / "mask-rcnn_vmamba-t_fpn_1x_coco") and cfg.launcher == "pytorch"
    assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.loss_scale == "dynamic"
    assert cfg.auto_scale_lr.enable and cfg.train_dataloader.batch_size == 3
    assert cfg.model.backbone.drop_path_rate == 0.1 and not cfg.resume
    cfg = train_tool.configure([config, "--work-dir", "run", "--resume"])
    assert cfg.work_dir == "run" and cfg.resume and cfg.load_from is None
    cfg = train_tool.configure([config, "--resume", "run/epoch_3.pth"])
    assert cfg.resume and cfg.load_from == "run/epoch_3.pth"


AMP_CONFIG = str(CONFIGS / "vim" / "upernet_vim-t_4xb8-60k_ade20k-512x512.py")  # AmpOptimWrapper
FP32_CONFIG = str(CONFIGS / "vmamba" / "mask-rcnn_vmamba-t_fpn_1x_coco.py")  # OptimWrapper


def _float32_messages(messages: list[str]) -> list[str]:
    return [message for message in messages if "training in float32" in message]


def test_a_config_asking_for_amp_trains_in_float32_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """mmengine's AmpOptimWrapper refuses to build without a GPU: such a config gets OptimWrapper, without the AMP-only
    settings, and one log line; --no-amp does it silently."""
    monkeypatch.setattr(train_tool, "amp_device_available", lambda: False)
    with mm_tools.log_messages() as messages:
        cfg = train_tool.configure([AMP_CONFIG, "--cfg-options", "optim_wrapper.dtype=bfloat16"])
    assert cfg.optim_wrapper.type == "OptimWrapper" and not {"loss_scale", "dtype"} & set(cfg.optim_wrapper)
    assert cfg.optim_wrapper.constructor == "VSSMLayerDecayOptimizerConstructor"  # everything else as configured
    assert len(_float32_messages(messages)) == 1, messages
    with mm_tools.log_messages() as messages:
        cfg = train_tool.configure([AMP_CONFIG, "--no-amp"])
        assert train_tool.configure([FP32_CONFIG]).optim_wrapper.type == "OptimWrapper"
    assert cfg.optim_wrapper.type == "OptimWrapper" and not _float32_messages(messages)


def test_amp_follows_the_config_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_tool, "amp_device_available", lambda: True)
    with mm_tools.log_messages() as messages:
        assert train_tool.configure([AMP_CONFIG]).optim_wrapper.type == "AmpOptimWrapper"
        assert train_tool.configure([FP32_CONFIG]).optim_wrapper.type == "OptimWrapper"
        assert train_tool.configure([AMP_CONFIG, "--no-amp"]).optim_wrapper.type == "OptimWrapper"
        cfg = train_tool.configure([AMP_CONFIG, "--amp", "--cfg-options", "optim_wrapper.loss_scale=512.0"])
        assert cfg.optim_wrapper.type == "AmpOptimWrapper" and cfg.optim_wrapper.loss_scale == 512.0
    assert not _float32_messages(messages)


def test_amp_without_a_gpu_is_a_command_line_error(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(train_tool, "amp_device_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        train_tool.configure([FP32_CONFIG, "--amp"])
    assert exit_info.value.code == 2
    assert "--amp: mixed precision (mmengine's AmpOptimWrapper) needs a CUDA" in capsys.readouterr().err


def _readme_data_commands() -> list[list[str]]:
    """The commands of the README's code block after its **Data.** paragraph, as argument lists."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("**Data.**"):].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(command)[2:] for command in block.replace("\\\n", " ").splitlines() if command.strip()]


def _paths_under_data(node: object) -> list[str]:
    if isinstance(node, dict):
        return [path for value in node.values() for path in _paths_under_data(value)]
    if isinstance(node, (list, tuple)):
        return [path for value in node for path in _paths_under_data(value)]
    return [node] if isinstance(node, str) and node.startswith("data/") else []


def test_readme_data_options_move_every_dataset_path() -> None:
    """The README's `--cfg-options` for a dataset stored elsewhere leave no loader or metric reading under data/."""
    commands = _readme_data_commands()
    assert len(commands) == 2
    for argv in commands:
        cfg = train_tool.configure(argv)
        for key in ("train_dataloader", "val_dataloader", "test_dataloader", "val_evaluator", "test_evaluator"):
            assert not _paths_under_data(cfg[key]), key
        assert cfg.train_dataloader.dataset.data_root.startswith("/datasets/")


def test_command_line_errors() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_tool.configure(["configs/nope.py"])
    segmentation = str(CONFIGS / "vim" / "upernet_vim-t_4xb8-60k_ade20k-512x512.py")  # mmseg configs: no LR scaling
    with pytest.raises(ValueError, match=r"auto_scale_lr\.base_batch_size"):
        train_tool.configure([segmentation, "--auto-scale-lr"])


# ---------------------------------------------------------------------------------------------------- Mask R-CNN


def _mask_rcnn_config(data: Path, work_dir: Path, epochs: int) -> Config:
    cfg = Config.fromfile(CONFIGS / "vmamba" / "mask-rcnn_vmamba-t_fpn_1x_coco.py")
    model = cfg.model
    model.backbone.update(model="test_vmamba", drop_path_rate=0.0, init_cfg=None)
    model.neck.update(in_channels=[16, 32, 64, 128], out_channels=32)
    model.rpn_head.update(in_channels=32, feat_channels=32)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = 32
    roi.bbox_head.update(in_channels=32, fc_out_channels=128, num_classes=2)
    roi.mask_head.update(in_channels=32, conv_out_channels=32, num_classes=2)
    model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
    model.train_cfg.rcnn.sampler.num = 64
    model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    model.test_cfg.rcnn.max_per_img = 20
    load = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True, with_mask=True)]
    resize = dict(type="Resize", scale=(128, 128), keep_ratio=True)
    train_pipeline = [*load, resize, dict(type="RandomFlip", prob=0.5), dict(type="PackDetInputs")]
    test_pipeline = [load[0], resize, load[1], dict(
        type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"))]
    for loader, split, pipeline in (("train_dataloader", "train", train_pipeline),
                                    ("val_dataloader", "val", test_pipeline)):
        cfg[loader].dataset.update(
            data_root=str(data), ann_file=f"annotations/instances_{split}.json", data_prefix=dict(img=f"{split}/"),
            metainfo=dict(classes=mm_tiny_data.CLASSES), pipeline=pipeline)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator.ann_file = str(data / "annotations" / "instances_val.json")
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg.update(max_epochs=epochs, val_interval=100)
    cfg.optim_wrapper.optimizer.lr = 1e-3
    return _common(cfg, work_dir)


@pytest.fixture(scope="module")
def mask_rcnn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mask_rcnn")
    data = mm_tiny_data.make_coco(root / "coco", {"train": 8, "val": 4})
    work_dir = root / "work"
    assert train_tool.main([_dump(_mask_rcnn_config(data, work_dir, epochs=3), root / "cfg.py")]) == 0
    return root, work_dir


def test_mask_rcnn_loss_is_finite_and_decreases(mask_rcnn_run: tuple[Path, Path]) -> None:
    _, work_dir = mask_rcnn_run
    records = _train_records(work_dir)
    assert [r["step"] for r in records] == list(range(1, 13))  # 3 epochs of 8 images, 2 per batch
    _assert_trains(records, window=4)


def test_mask_rcnn_saves_checkpoints_and_resumes(mask_rcnn_run: tuple[Path, Path]) -> None:
    root, work_dir = mask_rcnn_run
    assert {p.name for p in work_dir.glob("epoch_*.pth")} >= {"epoch_1.pth", "epoch_2.pth", "epoch_3.pth"}
    longer = _dump(_mask_rcnn_config(root / "coco", work_dir, epochs=4), root / "cfg_4.py")
    assert train_tool.main([longer, "--resume"]) == 0
    records = _train_records(work_dir)
    assert [r["step"] for r in records] == list(range(1, 17))  # continued after epoch 3, not from scratch
    assert all(math.isfinite(r["loss"]) for r in records)
    assert (work_dir / "epoch_4.pth").is_file()


def test_mask_rcnn_evaluates_with_coco_metric(mask_rcnn_run: tuple[Path, Path]) -> None:
    root, work_dir = mask_rcnn_run
    out = root / "predictions.pkl"
    eval_dir = root / "eval"
    args = [str(root / "cfg.py"), str(work_dir / "epoch_3.pth"), "--work-dir", str(eval_dir), "--out", str(out)]
    assert test_tool.main(args) == 0
    metrics = _test_metrics(eval_dir)
    for key in ("coco/bbox_mAP", "coco/bbox_mAP_50", "coco/segm_mAP"):
        assert 0.0 <= metrics[key] <= 1.0, metrics
    assert out.is_file() and out.stat().st_size > 0


# ---------------------------------------------------------------------------------------------------- UperNet


def _upernet_config(data: Path, work_dir: Path, iters: int) -> Config:
    cfg = Config.fromfile(CONFIGS / "vim" / "upernet_vim-t_4xb8-60k_ade20k-512x512.py")
    crop = (64, 64)
    model = cfg.model
    model.data_preprocessor.size = crop
    model.backbone.update(model="test_vim", img_size=64, out_indices=(0, 1, 2, 3), init_cfg=None)
    model.decode_head.update(in_channels=[64, 64, 64, 64], channels=64)
    model.auxiliary_head.update(in_channels=64, channels=32)
    model.test_cfg.update(crop_size=crop, stride=(32, 32))
    load = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", reduce_zero_label=True)]
    train_pipeline = [*load, dict(type="RandomCrop", crop_size=crop, cat_max_ratio=0.75),
                      dict(type="RandomFlip", prob=0.5), dict(type="PackSegInputs")]
    test_pipeline = [*load, dict(type="PackSegInputs")]
    for loader, split, pipeline in (("train_dataloader", "training", train_pipeline),
                                    ("val_dataloader", "validation", test_pipeline)):
        cfg[loader].dataset.update(
            data_root=str(data), data_prefix=dict(img_path=f"images/{split}", seg_map_path=f"annotations/{split}"),
            pipeline=pipeline)
    cfg.train_dataloader.batch_size = 2
    cfg.test_dataloader = cfg.val_dataloader
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.optim_wrapper.paramwise_cfg.num_layers = 4  # test_vim's depth
    cfg.train_cfg.update(max_iters=iters, val_interval=1000)
    cfg.default_hooks.checkpoint.update(interval=4, save_best=None)
    return _common(cfg, work_dir)


@pytest.fixture(scope="module")
def upernet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("upernet")
    data = mm_tiny_data.make_ade20k(root / "ade", {"training": 6, "validation": 3})
    work_dir = root / "work"
    assert train_tool.main([_dump(_upernet_config(data, work_dir, iters=12), root / "cfg.py")]) == 0
    return root, work_dir


def test_upernet_loss_is_finite_and_decreases(upernet_run: tuple[Path, Path]) -> None:
    _, work_dir = upernet_run
    records = _train_records(work_dir)
    assert [r["step"] for r in records] == list(range(1, 13))
    _assert_trains(records, window=4)


def test_upernet_saves_checkpoints_and_resumes(upernet_run: tuple[Path, Path]) -> None:
    root, work_dir = upernet_run
    assert {p.name for p in work_dir.glob("iter_*.pth")} >= {"iter_4.pth", "iter_8.pth", "iter_12.pth"}
    longer = _dump(_upernet_config(root / "ade", work_dir, iters=14), root / "cfg_14.py")
    assert train_tool.main([longer, "--resume", str(work_dir / "iter_12.pth")]) == 0
    assert [r["step"] for r in _train_records(work_dir)] == list(range(1, 15))
    assert (work_dir / "iter_14.pth").is_file()


def test_upernet_evaluates_with_iou_metric(upernet_run: tuple[Path, Path]) -> None:
    root, work_dir = upernet_run
    eval_dir = root / "eval"
    assert test_tool.main([str(root / "cfg.py"), str(work_dir / "iter_12.pth"), "--work-dir", str(eval_dir)]) == 0
    metrics = _test_metrics(eval_dir)
    for key in ("aAcc", "mIoU", "mAcc"):
        assert 0.0 <= metrics[key] <= 100.0, metrics


# ---------------------------------------------------------------------------------------------------- U-Mamba


def test_umamba_trains_on_a_synapse_layout(tmp_path: Path) -> None:
    data = mm_tiny_data.make_synapse(tmp_path / "synapse", {"train": 4, "val": 2})
    cfg = Config.fromfile(CONFIGS / "umamba" / "umamba-bot_1xb12-250k_synapse-256x256.py")
    crop = (64, 64)  # the test plan's patch size: 5 stages of 8..64 features, 4 decoder maps
    model = cfg.model
    model.data_preprocessor.size = crop
    model.backbone.model = "test_umamba_bot_2d"
    model.decode_head.update(in_channels=8, channels=8)
    heads = model.auxiliary_head
    model.auxiliary_head = [dict(heads[i], in_channels=c, channels=c) for i, c in enumerate((16, 32, 64))]
    model.test_cfg.update(crop_size=crop, stride=(32, 32))
    pipeline = cfg.train_dataloader.dataset.pipeline
    pipeline[2].scale = pipeline[3].crop_size = crop
    cfg.train_dataloader.update(batch_size=2, dataset=dict(data_root=str(data)))
    cfg.val_dataloader.dataset.data_root = str(data)
    cfg.train_cfg.update(max_iters=2, val_interval=1000)
    cfg.default_hooks.checkpoint.interval = 2
    cfg = _common(cfg, tmp_path / "work")
    assert train_tool.main([_dump(cfg, tmp_path / "cfg.py")]) == 0
    records = _train_records(tmp_path / "work")
    assert len(records) == 2 and all(math.isfinite(r["loss"]) for r in records)
    assert {"decode.loss_ce", "decode.loss_dice", "aux_0.loss_ce", "aux_2.loss_dice"} <= set(records[0])
    assert (tmp_path / "work" / "iter_2.pth").is_file()

"""Train an MMDetection or MMSegmentation config (vssm's or any) with MMEngine's Runner, as mmdet's tools/train.py.

    python tools/train.py configs/vmamba/mask-rcnn_vmamba-t_fpn_1x_coco.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --amp --cfg-options train_dataloader.batch_size=4
    python tools/train.py CONFIG --no-amp                      # float32 even where the config asks for AMP
    python tools/train.py CONFIG --resume                      # from the latest checkpoint in the work dir
    python tools/train.py CONFIG --resume work_dirs/run1/iter_4000.pth
    torchrun --nproc-per-node 8 tools/train.py CONFIG --launcher pytorch

Precision: the config's optimizer wrapper (AmpOptimWrapper: mixed precision) unless --amp or --no-amp says otherwise.
mmengine's AmpOptimWrapper needs a GPU (CUDA, NPU, MLU or MUSA): without one a config that asks for it trains in
float32 (OptimWrapper) and the log says so; --amp without one is an error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mmengine.config import Config, ConfigDict
from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from vssm.mm.runner import add_common_arguments, build_runner, load_config, runner_checkpoints


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument(
        "--amp", action=argparse.BooleanOptionalAction, default=None,
        help="--amp: mixed precision (AmpOptimWrapper; needs a GPU), --no-amp: float32 (OptimWrapper); default: as "
             "the config says, in float32 where there is no GPU",
    )
    parser.add_argument(
        "--auto-scale-lr", action="store_true",
        help="scale the learning rate to the actual batch size (the config's auto_scale_lr.base_batch_size)",
    )
    parser.add_argument(
        "--resume", nargs="?", const="auto",
        help="resume from this checkpoint, or without a value from the latest one in the work directory",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.amp and not amp_device_available():
        parser.error("--amp: mixed precision (mmengine's AmpOptimWrapper) needs a CUDA, NPU, MLU or MUSA device and "
                     "this machine has none; leave --amp out to train in float32")
    return args


# What only AmpOptimWrapper takes (loss scaler, autocast dtype, FSDP scaler): OptimWrapper refuses these arguments.
_AMP_ONLY_KEYS = ("loss_scale", "dtype", "use_fsdp")


def amp_device_available() -> bool:
    """Whether mmengine's AmpOptimWrapper can run here: it asserts a CUDA, NPU, MLU or MUSA device at construction."""
    return is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()


def uses_amp(optim_wrapper: ConfigDict) -> bool:
    """Whether an `optim_wrapper` config builds an AmpOptimWrapper (by registered name or class, subclasses too)."""
    wrapper = optim_wrapper.get("type", "OptimWrapper")
    cls = wrapper if isinstance(wrapper, type) else OPTIM_WRAPPERS.get(wrapper)
    return isinstance(cls, type) and issubclass(cls, AmpOptimWrapper)


def set_precision(cfg: Config, amp: bool | None) -> None:
    """`amp` True: AmpOptimWrapper (dynamic loss scale unless the config's wrapper already is one); False: float32
    OptimWrapper; None: the config's wrapper, except that an AmpOptimWrapper becomes OptimWrapper, with a log line,
    where there is no GPU."""
    wrapper = cfg.optim_wrapper
    if amp is None:
        if not uses_amp(wrapper) or amp_device_available():
            return
        name = getattr(wrapper.type, "__name__", wrapper.type)
        print_log(f"no GPU: the config's mixed precision ({name}) needs one, training in float32 (OptimWrapper) "
                  "instead", logger="current", level=logging.WARNING)
        amp = False
    if amp and not uses_amp(wrapper):
        wrapper.type = "AmpOptimWrapper"
        wrapper.loss_scale = "dynamic"
    elif not amp and uses_amp(wrapper):
        wrapper.type = "OptimWrapper"
        for key in _AMP_ONLY_KEYS:
            wrapper.pop(key, None)


def configure(argv: list[str] | None = None) -> Config:
    """The config the command line asks for: `--cfg-options`, work dir, launcher, precision, LR scaling, resume."""
    args = parse_args(argv)
    cfg = load_config(args)
    set_precision(cfg, args.amp)
    if args.auto_scale_lr:
        if "base_batch_size" not in cfg.get("auto_scale_lr", {}):
            raise ValueError("--auto-scale-lr: the config has no auto_scale_lr.base_batch_size")
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = configure(argv)
    with runner_checkpoints():
        build_runner(cfg).train()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train an MMDetection or MMSegmentation config (vssm's or any) with MMEngine's Runner, as mmdet's tools/train.py.

    python tools/train.py configs/vmamba/mask-rcnn_vmamba-t_fpn_1x_coco.py
    python tools/train.py CONFIG --work-dir work_dirs/run1 --amp --cfg-options train_dataloader.batch_size=4
    python tools/train.py CONFIG --resume                      # from the latest checkpoint in the work dir
    python tools/train.py CONFIG --resume work_dirs/run1/iter_4000.pth
    torchrun --nproc-per-node 8 tools/train.py CONFIG --launcher pytorch
"""

from __future__ import annotations

import argparse
import sys

from mmengine.config import Config

from vssm.mm.runner import add_common_arguments, build_runner, load_config, runner_checkpoints


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument("--amp", action="store_true", help="mixed-precision training (AmpOptimWrapper)")
    parser.add_argument(
        "--auto-scale-lr", action="store_true",
        help="scale the learning rate to the actual batch size (the config's auto_scale_lr.base_batch_size)",
    )
    parser.add_argument(
        "--resume", nargs="?", const="auto",
        help="resume from this checkpoint, or without a value from the latest one in the work directory",
    )
    add_common_arguments(parser)
    return parser.parse_args(argv)


def configure(argv: list[str] | None = None) -> Config:
    """The config the command line asks for: `--cfg-options`, work dir, launcher, AMP, LR scaling, resume."""
    args = parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
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

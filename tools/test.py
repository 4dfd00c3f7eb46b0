"""Evaluate a trained checkpoint of an MMDetection or MMSegmentation config with MMEngine's Runner (the config's
test dataloader and evaluator), as mmdet's tools/test.py.

    python tools/test.py configs/vmamba/upernet_vmamba-t_8xb2-160k_ade20k-512x512.py work_dirs/run1/iter_160000.pth
    python tools/test.py CONFIG CHECKPOINT --out results.pkl --cfg-options test_dataloader.batch_size=1
    torchrun --nproc-per-node 8 tools/test.py CONFIG CHECKPOINT --launcher pytorch
"""

from __future__ import annotations

import argparse
import sys

from mmengine.evaluator import DumpResults

from vssm.mm.runner import add_common_arguments, build_runner, load_config, runner_checkpoints


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="config file")
    parser.add_argument("checkpoint", help="checkpoint file (a path or URL)")
    parser.add_argument("--out", help="also dump the raw predictions to this .pkl file")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    runner = build_runner(cfg)
    if args.out is not None:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    with runner_checkpoints():
        runner.test()
    return 0


if __name__ == "__main__":
    sys.exit(main())

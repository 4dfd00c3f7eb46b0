"""What `tools/train.py` and `tools/test.py` share: MMDetection's command-line conventions over MMEngine's Runner.

Options as in mmdet's and mmseg's tools: `--work-dir` (default ./work_dirs/<config name>), `--cfg-options key=value`,
`--launcher {none,pytorch,slurm,mpi}` (`torchrun --nproc-per-node N tools/train.py CONFIG --launcher pytorch`).

MMEngine 0.10 reads its own checkpoints with a plain `torch.load`, which PyTorch >= 2.6 runs weights-only: resuming
and testing then fail on the message hub's `HistoryBuffer` and the numpy arrays it holds. `runner_checkpoints()`
allow-lists exactly those objects (its statistics methods through a `getattr` that resolves nothing else), so the
runner's checkpoints load weights-only.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import HistoryBuffer
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

__all__ = ["add_common_arguments", "build_runner", "load_config", "runner_checkpoints"]

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
_STATISTICS = ("min", "max", "current", "mean")  # HistoryBuffer's built-in statistics methods


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work-dir", help="where logs and checkpoints go (default: ./work_dirs/<config name>)")
    parser.add_argument(
        "--cfg-options", nargs="+", action=DictAction, default={},
        help="override config settings, key=value (nested keys with dots, lists as key='[a,b]')",
    )
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none", help="job launcher for distributed runs")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)


def load_config(args: argparse.Namespace) -> Config:
    """The config with `--cfg-options` merged, the work directory and the launcher set (FileNotFoundError for a
    missing config file)."""
    if not Path(args.config).is_file():
        raise FileNotFoundError(f"config {args.config!r} does not exist")
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = str(Path("work_dirs") / Path(args.config).stem)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """MMEngine's Runner, or the config's `runner_type`."""
    return RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)


def _statistics_method(cls: type, name: str) -> object:
    """`getattr` as a checkpoint may use it: only a HistoryBuffer statistics method (its pickled method table)."""
    if cls is not HistoryBuffer or name not in {*_STATISTICS, *HistoryBuffer._statistics_methods}:
        raise pickle.UnpicklingError(f"checkpoint asks for {getattr(cls, '__name__', cls)}.{name}; only "
                                     f"HistoryBuffer statistics methods are allowed")
    return getattr(cls, name)


@contextmanager
def runner_checkpoints() -> Iterator[None]:
    """Within: MMEngine's runner checkpoints (message hub, numpy history) load with `weights_only=True`."""
    core = getattr(np, "_core", None) or np.core
    allowed = [HistoryBuffer, np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
               (_statistics_method, "builtins.getattr")]
    allowed += [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    with torch.serialization.safe_globals(allowed):
        yield

"""The loops behind the classification tools: evaluation and training epochs, metrics, precision and torchrun, and
the tools' shared command-line options."""

from .arguments import Range, add_amp_argument, default_workers
from .distributed import Distributed, ShardSampler, cleanup_distributed, resolve_device, setup_distributed
from .evaluate import EvalResult, evaluate
from .metrics import Accuracy, AccuracyMeter, RealLabels
from .precision import Precision, autocast
from .train import EpochResult, StepOptions, train_one_epoch

__all__ = [
    "Accuracy",
    "AccuracyMeter",
    "Distributed",
    "EpochResult",
    "EvalResult",
    "Precision",
    "Range",
    "RealLabels",
    "ShardSampler",
    "StepOptions",
    "add_amp_argument",
    "autocast",
    "cleanup_distributed",
    "default_workers",
    "evaluate",
    "resolve_device",
    "setup_distributed",
    "train_one_epoch",
]

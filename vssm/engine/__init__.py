"""The loops behind the classification tools: evaluation and training epochs, metrics, precision and torchrun."""

from .distributed import Distributed, ShardSampler, cleanup_distributed, setup_distributed
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
    "RealLabels",
    "ShardSampler",
    "StepOptions",
    "autocast",
    "cleanup_distributed",
    "evaluate",
    "setup_distributed",
    "train_one_epoch",
]

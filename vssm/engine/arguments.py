"""Command-line options of the classification tools: numbers checked against their range as argparse parses them,
the data-loader workers a machine affords, and the one `--amp` spelling."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass

from .precision import Precision

MAX_DEFAULT_WORKERS = 8  # per process, as torchvision's reference scripts cap it; more rarely speeds up decoding


@dataclass(frozen=True)
class Range:
    """An argparse `type`: a finite `kind` (int or float) between `low` and `high` (None: unbounded), the bounds
    included unless `low_open` / `high_open`. Anything else ends the parse with
    `error: argument --x: expected a number in [0, 1), got 2`."""

    kind: type[int] | type[float] = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    @property
    def expected(self) -> str:
        """What the option takes, e.g. 'a number in [0, 1)' or 'an integer >= 1'."""
        noun = "an integer" if self.kind is int else "a number"
        low, high = (f"{b:g}" if isinstance(b, float) else str(b) for b in (self.low, self.high))
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {high}"
        return noun

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __call__(self, text: str) -> int | float:
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text!r}") from None
        if not self.contains(value):
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text}")
        return value


PROBABILITY = Range(float, 0, 1)
NON_NEGATIVE = Range(float, 0)
POSITIVE = Range(float, 0, low_open=True)
COUNT = Range(int, 0)
POSITIVE_COUNT = Range(int, 1)


def default_workers() -> int:
    """Data-loading processes for each training/evaluation process: the CPUs this process may run on, shared by the
    processes torchrun starts on the node (LOCAL_WORLD_SIZE), at most MAX_DEFAULT_WORKERS."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return min(MAX_DEFAULT_WORKERS, cpus // max(local_processes, 1))


def add_amp_argument(parser: argparse.ArgumentParser) -> None:
    """`--amp {bf16,fp16}`: autocast precision; left out, fp32 (`Precision.from_flag` reads the value)."""
    parser.add_argument("--amp", choices=[p.value for p in Precision if p is not Precision.FP32],
                        help="autocast to bf16 or fp16 (default: fp32, no autocast)")

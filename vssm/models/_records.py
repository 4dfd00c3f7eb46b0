"""What a family records about its variants beyond timm's pretrained config, for the tools to read.

A family module (`vssm/models/<family>.py`) keeps, next to its `default_cfgs`, these module constants (each optional;
`vssm.zoo.family_module(family)` finds the module through timm's registry):

* `HEADLINE_VARIANT`: the variant `tools/flops.py`, `tools/benchmark.py` and `tools/report.py` show by default (a
  family without one shows its smallest released variant);
* `PUBLISHED_COUNTS`: {variant: `PublishedCount`}, the FLOP counts its authors published, with their source;
* `GOLDEN_FIXTURES`: {fixture folder under tests/fixtures: `GoldenFixture`}, our model for each golden fixture;
* `SPEED_TARGETS` and `TEST_SPEED_TARGETS`: the family issue's CPU speed targets (`SpeedTarget`, timed by
  `benchmarks/targets.py`), and the same comparisons on the tiny test variants (`--test-variants`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class PublishedCount:
    """A FLOP count the original authors published (in G, their unit: MACs), at the model's default input size.

    `printed` is the number as printed (README, paper, code comment); `derived` the original counter's rule worked
    through the network layer by layer to more digits, where the authors printed a rounded number only; `exact` an
    integer count printed in the original code. `source` names where each comes from (repository, commit, file).
    Numbers are kept as text so that their published digits (trailing zeros included) are known.
    """

    printed: str
    source: str
    derived: str | None = None
    exact: int | None = None
    note: str = ""  # why ours differs, where it knowingly does

    @property
    def reference(self) -> str:
        """The most precise published value, in G, as text."""
        if self.exact is not None:
            return f"{self.exact / 1e9:.9f}".rstrip("0")
        return self.derived if self.derived is not None else self.printed


@dataclass(frozen=True)
class GoldenFixture:
    """Our model for a golden fixture (tests/fixtures/<folder>/, GOLDEN.md: the original code's checkpoint, input and
    outputs for one small configuration).

    `model` is the registered name built with `kwargs` (the original constructor's arguments translated) plus the
    original arguments named in `from_original`, as the fixture gives them. A fixture whose network is not a
    registered model is built by `build(original constructor arguments, input shape (B, C, *spatial))`; `model`
    then only names it in the tables.
    """

    model: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    from_original: tuple[str, ...] = ()
    build: Callable[[Mapping[str, Any], Sequence[int]], nn.Module] | None = None


class Metric(str, enum.Enum):
    """How a speed target compares ours with the baseline."""

    SPEED = "speed"  # ours images/s over the baseline's; the threshold is a minimum
    TIME = "time"  # ours time per forward over the baseline's; the threshold is a maximum

    @property
    def meaning(self) -> str:
        return "images/s ratio" if self is Metric.SPEED else "time ratio"


@dataclass(frozen=True)
class TimedNetwork:
    """A network a speed target times that is not just a registered model by its name: `name` as the tables show
    it, built as the registered (vssm or timm) `model` with `kwargs`, or by `build(input size (C, H, W))`."""

    name: str
    model: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    build: Callable[[tuple[int, int, int]], nn.Module] | None = None


@dataclass(frozen=True)
class SpeedTarget:
    """`ours` against `baseline` (a registered model's name, or a `TimedNetwork`) in float32 CPU inference at batch
    `batch` and input `input_size`. `threshold` is the issue's acceptance criterion (a minimum images/s ratio, or with
    `Metric.TIME` a maximum time ratio); None marks a reference row the model card discusses."""

    ours: str | TimedNetwork
    baseline: str | TimedNetwork
    threshold: float | None
    metric: Metric = Metric.SPEED
    batch: int = 8
    input_size: tuple[int, int, int] = (3, 224, 224)

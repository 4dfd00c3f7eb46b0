"""Where a forward spends its time: wall time per kind of op, and how many ops it dispatches.

    split = time_split(model, inputs)        # split.shares: {'matmul': 0.45, 'scan': 0.2, ...}, split.ops: 655

Every op that reaches the dispatcher is timed where it is dispatched (a `TorchDispatchMode`: composite ops such as
`aten.linear` count as one op, the selective scan as one `vssm` op) and its time is booked to a kind by name. The mode
adds a few microseconds per op, so shares of models with many small ops lean slightly towards the small ops.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

# (kind, name fragments of the op packets booked to it), checked in this order.
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("scan", ("vssm.",)),
    ("attention", ("attention",)),
    ("conv", ("conv",)),
    ("matmul", ("linear", "matmul", "addmm", "bmm", ".mm", "einsum")),
    ("norm", ("norm",)),
    ("data movement", ("cat", "stack", "gather", "scatter", "index", "flip", "roll", "pad", "copy", "clone",
                       "contiguous", ".to", "repeat")),
)
OTHER = "elementwise and other"


def kind_of(op: str) -> str:
    """The kind an op packet ('aten.linear', 'vssm.selective_scan') is booked to."""
    for kind, fragments in KINDS:
        if any(fragment in op for fragment in fragments):
            return kind
    return OTHER


@dataclass(frozen=True)
class TimeSplit:
    """Share of the dispatched ops' wall time per kind (sums to 1) and the number of non-view ops dispatched."""

    shares: dict[str, float]
    ops: int

    def text(self, at_least: float = 0.02) -> str:
        """'matmul 45 %, conv 33 %, ...', largest first; kinds under `at_least` left out."""
        shown = sorted(((s, k) for k, s in self.shares.items() if s >= at_least), reverse=True)
        return ", ".join(f"{kind} {100 * share:.0f} %" for share, kind in shown)


class _OpTimer(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: Counter[str] = Counter()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        self.seconds[kind_of(str(func.overloadpacket))] += time.perf_counter() - start
        self.ops += not getattr(func, "is_view", False)
        return out


def time_split(model: nn.Module, inputs: Tensor) -> TimeSplit:
    """One inference forward of `model` on `inputs` under the op timer."""
    timer = _OpTimer()
    with torch.inference_mode(), timer:
        model(inputs)
    total = sum(timer.seconds.values()) or 1.0
    return TimeSplit({kind: seconds / total for kind, seconds in timer.seconds.items()}, timer.ops)

"""Throughput (images/s) and peak memory of a model: inference or one training step, CPU or CUDA.

    settings = BenchSettings(mode=Mode.INFERENCE, batch=8, image_size=(224, 224), repeats=10)
    measurement = measure(model, "vim_small", settings)
    ours, theirs = measure_alternately({"vim_small": vim, "deit_small": deit}, settings).values()

Protocol: `warmup` untimed steps (which also absorb torch.compile's compilation), then `repeats` timed steps, each
between device synchronisations; the median is reported with the fastest and slowest step as the spread. Models
measured together take turns, one step each per round, so that drifting machine load hits them alike. A training
step is forward + backward of the output's mean + an SGD update. Peak memory comes from one extra untimed step of
each model: on CUDA its weights and gradients plus the allocator's high-water mark above what was allocated before
the step (`cuda_step_peak_mb`); on CPU the most tensor memory alive at once (weights and input included;
`tensor_peak_mb`), None there with torch.compile. None with `track_memory=False`.
"""

from __future__ import annotations

import contextlib
import enum
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from tqdm import tqdm


class Mode(str, enum.Enum):
    INFERENCE = "inference"
    TRAIN = "train"


AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class BenchSettings:
    """One benchmark configuration."""

    mode: Mode = Mode.INFERENCE
    batch: int = 1
    image_size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    warmup: int = 2
    repeats: int = 5
    device: str = "cpu"
    track_memory: bool = True  # peak memory from one more untimed step per model

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))
        for name in ("batch", "repeats", "in_chans"):
            if getattr(self, name) < 1:
                raise ValueError(f"BenchSettings.{name}: expected >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"BenchSettings.warmup: expected >= 0, got {self.warmup}")
        if self.amp_dtype not in (None, *AMP_DTYPES.values()):
            raise ValueError(f"BenchSettings.amp_dtype: expected None, float16 or bfloat16, got {self.amp_dtype}")

    @property
    def precision(self) -> str:
        return "float32" if self.amp_dtype is None else f"amp {str(self.amp_dtype).removeprefix('torch.')}"


@dataclass(frozen=True)
class Measurement:
    """Result of `measure`: step times in ms (median, fastest, slowest) and what they mean in images/s."""

    model: str
    mode: str
    device: str
    precision: str
    channels_last: bool
    compiled: bool
    batch: int
    height: int
    width: int
    repeats: int
    ms_median: float
    ms_min: float
    ms_max: float
    peak_memory_mb: float | None
    params: int

    @property
    def images_per_s(self) -> float:
        return self.batch / self.ms_median * 1e3

    @property
    def images_per_s_range(self) -> tuple[float, float]:
        """(slowest step, fastest step) in images/s."""
        return self.batch / self.ms_max * 1e3, self.batch / self.ms_min * 1e3

    @property
    def spread_pct(self) -> float:
        """(slowest - fastest) / median step time, in percent."""
        return 100.0 * (self.ms_max - self.ms_min) / self.ms_median


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _LiveStorages(TorchDispatchMode):
    """Tracks the bytes of every tensor storage alive (weights and inputs given up front, the rest as ops create
    them; a storage leaves when freed) and the peak of their sum."""

    def __init__(self, tensors: Iterable[Tensor]) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.refs: dict[int, weakref.ref] = {}
        self.current = self.peak = 0
        for tensor in tensors:
            self._add(tensor)

    def _add(self, tensor: Tensor) -> None:
        if tensor.is_meta:
            return
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self.live:
            return
        self.live[key] = storage.nbytes()
        self.refs[key] = weakref.ref(storage, lambda _, key=key: self._drop(key))
        self.current += self.live[key]
        self.peak = max(self.peak, self.current)

    def _drop(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)
        self.refs.pop(key, None)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, Tensor):
                self._add(tensor)
        return out


def tensor_peak_mb(step: Callable[[], None], model: nn.Module, inputs: Tensor) -> float:
    """Most tensor memory (MB) alive at once while `step` runs, counting the model's weights and the input."""
    with _LiveStorages([*model.parameters(), *model.buffers(), inputs]) as tracker:
        step()
    return tracker.peak / 2**20


def _loss(out: object) -> Tensor:
    return sum(t.float().mean() for t in tree_leaves(out) if isinstance(t, Tensor) and t.is_floating_point())


def _step_fn(model: nn.Module, inputs: Tensor, settings: BenchSettings) -> Callable[[], None]:
    device = inputs.device
    autocast = (lambda: torch.autocast(device.type, dtype=settings.amp_dtype)) if settings.amp_dtype else (
        contextlib.nullcontext)
    if settings.mode is Mode.INFERENCE:
        def infer() -> None:
            with torch.inference_mode(), autocast():
                model(inputs)

        return infer

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=settings.amp_dtype == torch.float16)

    def train() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = _loss(model(inputs))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return train


def time_alternately(steps: Mapping[str, Callable[[], object]], warmup: int, repeats: int,
                     sync: Callable[[], None] = lambda: None, progress: tqdm | None = None) -> dict[str, list[float]]:
    """Milliseconds of `repeats` timed runs of every step, after `warmup` untimed runs of each.

    The steps take turns (one run each per round), so drifting machine load hits them alike; `progress` (if given)
    advances by one per timed run.
    """
    for _ in range(warmup):
        for step in steps.values():
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append((time.perf_counter() - start) * 1e3)
            if progress is not None:
                progress.update()
    return times


def cuda_step_peak_mb(step: Callable[[], None], model: nn.Module, device: torch.device) -> float:
    """One more (untimed) step of `model` alone: its weights, buffers and gradients plus the allocator's high-water
    mark above what was allocated before the step (other models measured in the same run are left out)."""
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    step()
    _sync(device)
    tensors = [*model.parameters(), *model.buffers(), *(p.grad for p in model.parameters() if p.grad is not None)]
    own = sum(t.numel() * t.element_size() for t in tensors)
    return (torch.cuda.max_memory_allocated(device) - before + own) / 2**20


def measure(model: nn.Module, name: str, settings: BenchSettings) -> Measurement:
    """Time `settings.repeats` steps of `model` (moved to the settings' device, eval or train mode) after warm-up."""
    return measure_alternately({name: model}, settings)[name]


def measure_alternately(models: Mapping[str, nn.Module], settings: BenchSettings,
                        progress: tqdm | None = None) -> dict[str, Measurement]:
    """`measure` for several models at the same settings and on the same input, taking turns step by step."""
    device = torch.device(settings.device)
    inputs = torch.randn(settings.batch, settings.in_chans, *settings.image_size, device=device)
    if settings.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    steps, peaks, params = {}, {}, {}
    for name, model in models.items():
        model = model.to(device).train(settings.mode is Mode.TRAIN)
        if settings.channels_last:
            model = model.to(memory_format=torch.channels_last)
        params[name] = sum(p.numel() for p in model.parameters())
        steps[name] = _step_fn(torch.compile(model) if settings.compile else model, inputs, settings)
        peaks[name] = None
        if device.type != "cuda" and not settings.compile and settings.track_memory:
            peaks[name] = tensor_peak_mb(steps[name], model, inputs)
    times = time_alternately(steps, settings.warmup, settings.repeats, lambda: _sync(device), progress)
    if device.type == "cuda" and settings.track_memory:
        peaks = {name: cuda_step_peak_mb(steps[name], models[name], device) for name in models}
    return {
        name: Measurement(
            model=name,
            mode=settings.mode.value,
            device=str(device),
            precision=settings.precision,
            channels_last=settings.channels_last,
            compiled=settings.compile,
            batch=settings.batch,
            height=settings.image_size[0],
            width=settings.image_size[1],
            repeats=settings.repeats,
            ms_median=statistics.median(times[name]),
            ms_min=min(times[name]),
            ms_max=max(times[name]),
            peak_memory_mb=peaks[name],
            params=params[name],
        )
        for name in models
    }

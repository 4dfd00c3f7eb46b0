"""One training epoch of a classifier on the timm toolbox: Mixup/CutMix, autocast (with loss scaling for fp16),
gradient clipping, a per-update learning-rate schedule and a model EMA."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from timm.data import Mixup
from timm.scheduler.scheduler import Scheduler
from timm.utils import ModelEmaV3, NativeScaler, dispatch_clip_grad
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.images import BadImages, Unreadable, check_unreadable
from .distributed import Distributed, all_gather_lists, all_reduce_sum
from .evaluate import to_device
from .precision import Precision, autocast

CLIP_MODES = ("norm", "value", "agc")  # timm's dispatch_clip_grad


@dataclass(frozen=True)
class StepOptions:
    """precision: autocast (fp16 also scales the loss); clip_grad: gradient clipping threshold (None: off) in
    `clip_mode` ('norm', 'value' or 'agc', timm's dispatch_clip_grad); channels_last: input memory format;
    bad_images: what an unreadable image does."""

    precision: Precision = Precision.FP32
    clip_grad: float | None = None
    clip_mode: str = "norm"
    channels_last: bool = False
    bad_images: BadImages = BadImages.FAIL

    def __post_init__(self) -> None:
        # timm takes a negative threshold without a word: 'norm' and 'agc' then flip the gradients' sign, 'value' sets
        # every gradient to it (checked with timm 1.0.31's dispatch_clip_grad and a threshold of -1).
        if self.clip_grad is not None and not (math.isfinite(self.clip_grad) and self.clip_grad > 0):
            raise ValueError(f"clip_grad: expected a positive threshold or None (off), got {self.clip_grad}")
        if self.clip_mode not in CLIP_MODES:
            raise ValueError(f"clip_mode: expected one of {CLIP_MODES}, got {self.clip_mode!r}")


@dataclass(frozen=True)
class EpochResult:
    """loss: mean training loss over the samples; images: samples trained on; seconds: wall time."""

    loss: float
    images: int
    seconds: float
    skipped: list[Unreadable] = field(default_factory=list)


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    ctx: Distributed,
    num_updates: int,
    options: StepOptions,
    scheduler: Scheduler | None = None,
    mixup: Mixup | None = None,
    ema: ModelEmaV3 | None = None,
    scaler: NativeScaler | None = None,
    desc: str = "train",
    progress: bool = True,
) -> tuple[EpochResult, int]:
    """Train `model` (maybe DDP-wrapped) for one pass over `loader`; returns the epoch's result and the number of
    optimizer updates so far (the schedule's and the EMA's step). `desc` names the pass (progress bar, errors). A
    non-finite loss stops with FloatingPointError."""
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    totals = torch.zeros(2, dtype=torch.float64)  # loss sum, samples
    skipped: list[Unreadable] = []
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, unit="batch", disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for batch in bar:
        check_unreadable(batch, options.bad_images, lambda line: bar.write(line, file=sys.stderr))
        skipped.extend(batch.unreadable)
        images, targets = (None, None) if not len(batch) else to_device(batch, ctx.device, options.channels_last)
        if mixup is not None and images is not None and len(images) % 2:
            images, targets = images[:-1], targets[:-1]  # Mixup pairs the batch with its flip: needs an even size
        if images is None or not len(images):
            continue
        if mixup is not None:
            images, targets = mixup(images, targets)
        with autocast(options.precision, ctx.device):
            loss = loss_fn(model(images), targets)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss is {loss.item()} in {desc}, update {num_updates + 1}; "
                                     "lower the learning rate, clip gradients (--clip-grad) or train in fp32")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler(loss, optimizer, clip_grad=options.clip_grad, clip_mode=options.clip_mode, parameters=parameters)
        else:
            loss.backward()
            if options.clip_grad is not None:
                dispatch_clip_grad(parameters, options.clip_grad, mode=options.clip_mode)
            optimizer.step()
        num_updates += 1
        if ema is not None:
            ema.update(model.module if isinstance(model, DistributedDataParallel) else model, step=num_updates)
        if scheduler is not None:
            scheduler.step_update(num_updates=num_updates)
        totals += torch.tensor([loss.item() * len(images), len(images)], dtype=torch.float64)
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.3g}")
    loss_sum, images_seen = all_reduce_sum(totals, ctx).tolist()
    result = EpochResult(
        loss=loss_sum / images_seen if images_seen else float("nan"),
        images=int(images_seen),
        seconds=time.perf_counter() - start,
        skipped=all_gather_lists(skipped, ctx),
    )
    return result, num_updates

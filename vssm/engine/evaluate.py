"""One evaluation pass over a classification data loader (shared by eval_imagenet.py and train_cls.py, so the
training log's accuracy and a later evaluation of the saved checkpoint are the same computation)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.images import BadImages, Batch, Unreadable, check_unreadable
from .distributed import Distributed, all_gather_lists, all_reduce_max
from .metrics import Accuracy, AccuracyMeter, RealLabels
from .precision import Precision, autocast


@dataclass(frozen=True)
class EvalResult:
    """accuracy over the readable images; seconds: wall time of the pass (data loading included); real: ImageNet-ReaL
    (top-1, top-5) when asked for; skipped: the unreadable images left out."""

    accuracy: Accuracy
    seconds: float
    real: tuple[float, float] | None = None
    skipped: list[Unreadable] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.accuracy.images / self.seconds if self.seconds > 0 else float("nan")


def to_device(batch: Batch, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's (images, targets) on `device` (images channels-last when asked)."""
    images = batch.images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, batch.targets.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    ctx: Distributed,
    precision: Precision = Precision.FP32,
    channels_last: bool = False,
    bad_images: BadImages = BadImages.FAIL,
    real_labels: RealLabels | None = None,
    desc: str = "eval",
    progress: bool = True,
) -> EvalResult:
    """Top-1 / top-5 accuracy and mean cross-entropy of `model` over `loader` (batches from `collate_samples`),
    summed over the ranks. Unreadable images stop the pass or are left out and reported, as `bad_images` says."""
    model.eval()
    meter = AccuracyMeter()
    skipped: list[Unreadable] = []
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, unit="batch", disable=not (progress and ctx.is_main), dynamic_ncols=True)
    for batch in bar:
        check_unreadable(batch, bad_images, lambda line: bar.write(line, file=sys.stderr))
        skipped.extend(batch.unreadable)
        if not len(batch):
            continue
        images, targets = to_device(batch, ctx.device, channels_last)
        with autocast(precision, ctx.device):
            logits = model(images)
        meter.update(logits, targets)
        if real_labels is not None:
            real_labels.update(logits, batch.indices)
        bar.set_postfix(top1=f"{meter.running_top1:.2f}")
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    seconds = all_reduce_max(torch.tensor([time.perf_counter() - start], dtype=torch.float64), ctx)  # the slowest rank
    return EvalResult(
        accuracy=meter.result(ctx),
        seconds=float(seconds[0]),
        real=real_labels.result(ctx) if real_labels is not None else None,
        skipped=all_gather_lists(skipped, ctx),
    )

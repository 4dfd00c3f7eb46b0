"""Classification metrics accumulated over batches and ranks: top-1 / top-5 accuracy, mean loss, and ImageNet-ReaL
accuracy."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributed import Distributed, all_reduce_sum


@dataclass(frozen=True)
class Accuracy:
    """images counted; top1 / top5 in percent; loss: mean cross-entropy (nats)."""

    images: int
    top1: float
    top5: float
    loss: float


def _hits(logits: Tensor, k: int) -> Tensor:
    """(B, C) logits -> (B, k) predicted classes, best first."""
    return logits.topk(min(k, logits.shape[1]), dim=1).indices


class AccuracyMeter:
    """Counts of correct top-1 / top-5 predictions and the summed cross-entropy (float32 logits)."""

    def __init__(self) -> None:
        self.totals = torch.zeros(4, dtype=torch.float64)  # images, loss sum, top-1 hits, top-5 hits

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """logits: (B, C); targets: (B,) class indices."""
        logits, targets = logits.float(), targets.to(logits.device)
        top5 = _hits(logits, 5)
        correct = top5 == targets[:, None]
        loss = F.cross_entropy(logits, targets, reduction="sum")
        batch = torch.stack([torch.tensor(float(len(targets))), loss.detach().double().cpu(),
                             correct[:, 0].sum().double().cpu(), correct.any(dim=1).sum().double().cpu()])
        self.totals += batch

    @property
    def running_top1(self) -> float:
        return 100.0 * float(self.totals[2] / self.totals[0]) if self.totals[0] else 0.0

    def result(self, ctx: Distributed) -> Accuracy:
        images, loss, top1, top5 = all_reduce_sum(self.totals.clone(), ctx).tolist()
        if not images:
            return Accuracy(0, float("nan"), float("nan"), float("nan"))
        return Accuracy(int(images), 100.0 * top1 / images, 100.0 * top5 / images, loss / images)


class RealLabels:
    """ImageNet-ReaL labels (Beyer et al. 2020, `real.json`: one list of labels per validation image, in
    ILSVRC2012_val_%08d order) for the images of a dataset, by file name. Images with an empty list are not counted."""

    def __init__(self, real_json: str | os.PathLike, paths: Sequence[str | os.PathLike]) -> None:
        labels = json.loads(Path(real_json).read_text())
        by_name = {f"ILSVRC2012_val_{i + 1:08d}.JPEG": set(v) for i, v in enumerate(labels)}
        unknown = [str(p) for p in paths if Path(p).name not in by_name]
        if unknown:
            raise ValueError(f"real labels {real_json}: no labels for {len(unknown)} images (first: {unknown[:2]}); "
                             "expected ImageNet validation file names ILSVRC2012_val_%08d.JPEG")
        self.labels = [by_name[Path(p).name] for p in paths]
        self.totals = torch.zeros(3, dtype=torch.float64)  # images with labels, top-1 hits, top-5 hits

    def update(self, logits: Tensor, indices: Tensor) -> None:
        """logits: (B, C); indices: (B,) dataset indices of the images."""
        top5 = _hits(logits.float(), 5).tolist()
        for predicted, index in zip(top5, indices.tolist()):
            real = self.labels[index]
            if real:
                self.totals += torch.tensor([1.0, float(predicted[0] in real), float(bool(real & set(predicted)))])

    def result(self, ctx: Distributed) -> tuple[float, float]:
        """(top-1, top-5) in percent."""
        images, top1, top5 = all_reduce_sum(self.totals.clone(), ctx).tolist()
        return (100.0 * top1 / images, 100.0 * top5 / images) if images else (float("nan"), float("nan"))

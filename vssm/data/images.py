"""A dataset over `Samples` that reports unreadable images instead of crashing a data-loader worker, and the
collate function and policy that decide what happens to them."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from .folders import Samples


class BadImages(enum.Enum):
    """What to do with an image that cannot be decoded: stop with its path, or leave it out and report it."""

    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Unreadable:
    """An image that could not be decoded: its path and why."""

    path: str
    reason: str


class UnreadableImageError(ValueError):
    """An image that cannot be decoded, under `BadImages.FAIL`."""

    def __init__(self, image: Unreadable) -> None:
        super().__init__(f"cannot read image {image.path} ({image.reason}); fix or remove it, or skip unreadable "
                         "images with --bad-images skip")
        self.image = image


class ImageSamples(Dataset):
    """`samples` as (image, label, index); image: `transform(PIL RGB image)` or an `Unreadable` record.

    Decoding errors are caught here, inside the worker, so a corrupt file reaches the main process as data naming its
    path (and never as another sample in its place, which would count an image twice in an evaluation).
    """

    def __init__(self, samples: Samples, transform: Callable[[Image.Image], Tensor]) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor | Unreadable, int, int]:
        path, label = self.samples.items[index]
        try:
            with Image.open(path) as image:
                rgb = image.convert("RGB")  # decodes the pixels: truncated files fail here
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            return Unreadable(str(path), f"{type(exc).__name__}: {exc}"), label, index
        return self.transform(rgb), label, index


@dataclass
class Batch:
    """images: (B, C, H, W); targets, indices: (B,) of the readable samples; unreadable: the others."""

    images: Tensor | None
    targets: Tensor
    indices: Tensor
    unreadable: list[Unreadable] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.targets)


def collate_samples(items: Sequence[tuple[Tensor | Unreadable, int, int]]) -> Batch:
    """Stack the readable samples of `ImageSamples` items; set the unreadable ones aside."""
    good = [item for item in items if not isinstance(item[0], Unreadable)]
    return Batch(
        images=torch.stack([image for image, _, _ in good]) if good else None,
        targets=torch.tensor([label for _, label, _ in good], dtype=torch.long),
        indices=torch.tensor([index for _, _, index in good], dtype=torch.long),
        unreadable=[image for image, _, _ in items if isinstance(image, Unreadable)],
    )


def check_unreadable(batch: Batch, policy: BadImages, report: Callable[[str], None]) -> None:
    """Apply `policy` to a batch's unreadable images: raise `UnreadableImageError` for the first, or `report` each."""
    for image in batch.unreadable:
        if policy is BadImages.FAIL:
            raise UnreadableImageError(image)
        report(f"skipped unreadable image {image.path} ({image.reason})")

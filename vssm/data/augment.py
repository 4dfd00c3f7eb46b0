"""Training augmentation on albumentations: the DeiT / timm ImageNet recipe (random resized crop, flip, colour
jitter, a RandAugment-like policy, random erasing), applied to PIL images and returning normalised tensors."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor

INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}
MAX_MAGNITUDE = 10.0  # RandAugment's scale: magnitude 9 of 10 is timm's / DeiT's `rand-m9`


@dataclass(frozen=True)
class TrainAugmentation:
    """What the training pipeline does to each image.

    size: output (H, W); scale, ratio: RandomResizedCrop's area fraction and aspect range; hflip: flip probability;
    color_jitter: brightness/contrast/saturation strength (0: off); rand_ops / rand_magnitude: operations per image
    and strength (0-10) of the RandAugment-like policy (0 ops: off); erase_prob: random-erasing probability;
    interpolation: resampling for crops and geometric operations; mean / std: normalisation (0-1 pixel scale).
    """

    size: tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    color_jitter: float = 0.4
    rand_ops: int = 2
    rand_magnitude: float = 9.0
    erase_prob: float = 0.25
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size: expected (H, W) of positive integers, got {self.size}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale: expected 0 < min <= max <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio: expected 0 < min <= max, got {self.ratio}")
        for name in ("hflip", "erase_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {getattr(self, name)}")
        if self.color_jitter < 0:
            raise ValueError(f"color_jitter: expected >= 0, got {self.color_jitter}")
        if self.rand_ops < 0 or not 0 <= self.rand_magnitude <= MAX_MAGNITUDE:
            raise ValueError(f"rand_ops, rand_magnitude: expected >= 0 and 0-{MAX_MAGNITUDE:g}, got "
                             f"{self.rand_ops}, {self.rand_magnitude}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation: expected one of {sorted(INTERPOLATIONS)}, got {self.interpolation!r}")


def rand_augment_ops(magnitude: float, interpolation: int = cv2.INTER_CUBIC) -> list[A.BasicTransform]:
    """RandAugment's operations (timm's `rand-m*` set without Invert) at `magnitude` of 10, each applied with
    probability 0.5 once chosen; the strengths at magnitude 10 are timm's."""
    m = magnitude / MAX_MAGNITUDE
    geometric = dict(interpolation=interpolation, border_mode=cv2.BORDER_CONSTANT, fill=128, p=0.5)
    return [
        A.Affine(rotate=(-30 * m, 30 * m), **geometric),
        A.Affine(shear={"x": (-17 * m, 17 * m), "y": (0, 0)}, **geometric),
        A.Affine(shear={"x": (0, 0), "y": (-17 * m, 17 * m)}, **geometric),
        A.Affine(translate_percent={"x": (-0.45 * m, 0.45 * m), "y": (0, 0)}, **geometric),
        A.Affine(translate_percent={"x": (0, 0), "y": (-0.45 * m, 0.45 * m)}, **geometric),
        A.AutoContrast(p=0.5),
        A.Equalize(p=0.5),
        A.Posterize(num_bits=(max(1, round(8 - 4 * m)), 8), p=0.5),
        A.Solarize(threshold_range=(1 - m, 1.0), p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.9 * m, contrast_limit=0, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0, contrast_limit=0.9 * m, p=0.5),
        A.ColorJitter(brightness=0, contrast=0, saturation=0.9 * m, hue=0, p=0.5),
        A.Sharpen(alpha=(0, 0.9 * m), lightness=(1.0, 1.0), p=0.5),
    ]


class AlbumentationsTransform:
    """An albumentations pipeline as a `PIL image -> (C, H, W) float tensor` callable (what `ImageSamples` calls)."""

    def __init__(self, pipeline: A.Compose) -> None:
        self.pipeline = pipeline

    def __call__(self, image: Image.Image) -> Tensor:
        return self.pipeline(image=np.asarray(image))["image"]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pipeline!r})"


def build_train_transform(aug: TrainAugmentation) -> AlbumentationsTransform:
    """The training pipeline `aug` describes: crop, flip, colour jitter, RandAugment-like ops, erasing, normalise."""
    interpolation = INTERPOLATIONS[aug.interpolation]
    steps: list[A.BasicTransform] = [
        A.RandomResizedCrop(size=aug.size, scale=aug.scale, ratio=aug.ratio, interpolation=interpolation),
    ]
    if aug.hflip > 0:
        steps.append(A.HorizontalFlip(p=aug.hflip))
    if aug.color_jitter > 0:
        cj = aug.color_jitter
        steps.append(A.ColorJitter(brightness=cj, contrast=cj, saturation=cj, hue=0, p=1.0))
    if aug.rand_ops > 0:
        steps.append(A.SomeOf(rand_augment_ops(aug.rand_magnitude, interpolation), n=aug.rand_ops, p=1.0))
    if aug.erase_prob > 0:
        steps.append(A.Erasing(scale=(0.02, 1 / 3), ratio=(0.3, 3.3), fill="random", p=aug.erase_prob))
    steps += [A.Normalize(mean=aug.mean, std=aug.std, max_pixel_value=255.0), ToTensorV2()]
    return AlbumentationsTransform(A.Compose(steps))

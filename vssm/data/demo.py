"""A small ImageFolder dataset from images an installed package ships: scikit-learn's handwritten digits (1797
8 × 8 images of 0-9, UCI), upscaled, split into train/ and val/ class folders with list files beside them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SPLITS = ("train", "val")


@dataclass(frozen=True)
class DemoImage:
    """split: 'train' or 'val'; label: the digit; index: its position in scikit-learn's digits."""

    split: str
    label: int
    index: int

    @property
    def relative_path(self) -> Path:
        return Path(self.split) / str(self.label) / f"digit_{self.index:04d}.png"


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) grey levels 0-16 and (N,) labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the demo dataset needs scikit-learn: pip install 'vssm[demo]'") from None
    digits = load_digits()
    return digits.images, digits.target


def split_digits(labels: np.ndarray, val_fraction: float, seed: int, per_class: int | None = None) -> list[DemoImage]:
    """A stratified split: per class, a seeded shuffle, the first `val_fraction` to val (at least one image each
    side); `per_class` keeps only that many images of each class (before splitting)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a fraction in (0, 1), got {val_fraction}")
    if per_class is not None and per_class < 2:
        raise ValueError(f"per_class: expected at least 2 (one image per split), got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))[:per_class]
        n_val = min(max(1, round(val_fraction * len(indices))), len(indices) - 1)
        chosen += [DemoImage("val", int(label), int(i)) for i in indices[:n_val]]
        chosen += [DemoImage("train", int(label), int(i)) for i in indices[n_val:]]
    return sorted(chosen, key=lambda d: (d.split, d.label, d.index))


def render_digit(grey: np.ndarray, size: int) -> Image.Image:
    """An (8, 8) 0-16 digit as a size × size RGB image (bicubic upscaling: smooth strokes, as in a photo)."""
    pixels = np.clip(np.rint(grey * (255 / 16)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC).convert("RGB")


def write_digits(output: str | os.PathLike, size: int = 32, val_fraction: float = 0.2, seed: int = 0,
                 per_class: int | None = None) -> Iterator[DemoImage]:
    """Write the digits under `output`/{train,val}/<digit>/ as `size` px PNGs, yielding each as it is written, then
    `output`/{train,val}.txt ('<path> <label>' lines relative to `output`). Refuses to write over existing split
    folders."""
    if size < 8:
        raise ValueError(f"size: expected at least 8 (the digits' own resolution), got {size}")
    output = Path(output)
    existing = [str(output / s) for s in SPLITS if (output / s).exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} already exist: choose another output folder or remove them")
    images, labels = _load_digits()
    chosen = split_digits(labels, val_fraction, seed, per_class)
    for item in chosen:
        path = output / item.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        render_digit(images[item.index], size).save(path)
        yield item
    for split in SPLITS:
        lines = [f"{item.relative_path.as_posix()} {item.label}" for item in chosen if item.split == split]
        (output / f"{split}.txt").write_text("\n".join(lines) + "\n")

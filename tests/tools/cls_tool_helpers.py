"""Helpers for the classification tool tests: writing small image datasets, and one torch thread while a test runs
(the tools' CPU work is tiny; two threads on a shared 2-core machine mostly spin: 8x the CPU time measured)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def write_image(path: Path, size: tuple[int, int], rng: np.random.Generator) -> Path:
    """A random RGB image of size (W, H) at `path` (format from the suffix): a random colour gradient plus noise,
    so that images differ in content a network responds to, not only in noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 1, size[0])[None, :, None]
    start, end = rng.uniform(0, 255, size=(2, 1, 1, 3))
    noise = rng.normal(0, 20, size=(size[1], size[0], 3))
    pixels = np.clip(start + (end - start) * ramp + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_image_folder(root: Path, classes: Sequence[str], per_class: int, seed: int,
                       sizes: Sequence[tuple[int, int]] = ((70, 50), (48, 80), (64, 64))) -> list[tuple[Path, str]]:
    """root/<class>/img_<i>.{png,jpg} with random pixels and varied sizes; returns (path, class) in sorted order."""
    rng = np.random.default_rng(seed)
    written = []
    for name in classes:
        for i in range(per_class):
            suffix = ".png" if i % 2 == 0 else ".JPEG"
            written.append((write_image(root / name / f"img_{i}{suffix}", sizes[i % len(sizes)], rng), name))
    return sorted(written)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """`one_thread` for a whole test (import it into the test module and mark the module with usefixtures)."""
    with one_thread():
        yield

"""Tiny datasets in the real on-disk formats, drawn with OpenCV: COCO instances, ADE20K scenes, Synapse-style slices;
and `one_cpu_thread`, the mm tests' fixture for torch's intra-op threads.

Objects are filled squares (class 1) and disks (class 2) in fixed colours on a noisy background, so a detector or
segmenter can fit them within a few iterations. Everything is seeded; images are small (the tests run on a CPU).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

CLASSES = ("square", "disk")
_COLOURS = ((220, 60, 40), (40, 200, 90))  # BGR per class


def _objects(rng: np.random.Generator, size: int, count: int) -> list[tuple[int, np.ndarray]]:
    """(class 1 or 2, polygon (K, 2) int32) per object, inside the image and apart from the border."""
    objects = []
    for _ in range(count):
        cls = int(rng.integers(1, 3))
        side = int(rng.integers(size // 5, size // 3))
        x, y = (int(v) for v in rng.integers(2, size - side - 2, size=2))
        if cls == 1:
            poly = np.array([[x, y], [x + side, y], [x + side, y + side], [x, y + side]], np.int32)
        else:
            poly = cv2.ellipse2Poly((x + side // 2, y + side // 2), (side // 2, side // 2), 0, 0, 360, 20)
        objects.append((cls, poly.astype(np.int32)))
    return objects


def _draw(rng: np.random.Generator, size: int, objects: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(BGR image (size, size, 3) uint8, label map (size, size) uint8 with 0 = background)."""
    image = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    labels = np.zeros((size, size), np.uint8)
    for cls, poly in objects:
        cv2.fillPoly(image, [poly], _COLOURS[cls - 1])
        cv2.fillPoly(labels, [poly], cls)
    return image, labels


def make_coco(root: Path, splits: dict[str, int], size: int = 128, seed: int = 0) -> Path:
    """root/{split}/NNN.png and root/annotations/instances_{split}.json (COCO instances: boxes, polygons, areas), COCO's
    layout: with split `train2017` a config's `data/coco` can be pointed at `root`."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CLASSES)]
    for split, count in splits.items():
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            objects = _objects(rng, size, int(rng.integers(1, 4)))
            image, _ = _draw(rng, size, objects)
            name = f"{i:03d}.png"
            cv2.imwrite(str(root / split / name), image)
            images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
            for cls, poly in objects:
                x, y, w, h = cv2.boundingRect(poly)
                annotations.append({
                    "id": len(annotations) + 1, "image_id": i + 1, "category_id": cls, "iscrowd": 0,
                    "bbox": [x, y, w, h], "area": float(cv2.contourArea(poly)),
                    "segmentation": [poly.reshape(-1).astype(float).tolist()],
                })
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    return root


def make_ade20k(root: Path, splits: dict[str, int], size: int = 96, seed: int = 0) -> Path:
    """root/images/{split}/NNN.jpg and root/annotations/{split}/NNN.png, ADE20K's layout: label 0 is "other"
    (ignored with reduce_zero_label), the shapes are labels 1 and 2 (classes 0 and 1 after the reduction), the rest
    of the image label 3."""
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, labels = _draw(rng, size, _objects(rng, size, int(rng.integers(2, 5))))
            labels = np.where(labels == 0, 3, labels).astype(np.uint8)
            labels[:2] = 0  # a strip of "other"
            cv2.imwrite(str(root / "images" / split / f"{i:03d}.jpg"), image)
            cv2.imwrite(str(root / "annotations" / split / f"{i:03d}.png"), labels)
    return root


def make_synapse(root: Path, splits: dict[str, int], size: int = 64, seed: int = 0) -> Path:
    """root/img_dir/{split}/NNN.jpg (grey slices) and root/ann_dir/{split}/NNN.png (labels 0-8), mmseg's Synapse
    layout: the shapes are organs 1 and 2, the rest background 0."""
    rng = np.random.default_rng(seed)
    for split, count in splits.items():
        (root / "img_dir" / split).mkdir(parents=True, exist_ok=True)
        (root / "ann_dir" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, labels = _draw(rng, size, _objects(rng, size, int(rng.integers(1, 4))))
            cv2.imwrite(str(root / "img_dir" / split / f"{i:03d}.jpg"), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
            cv2.imwrite(str(root / "ann_dir" / split / f"{i:03d}.png"), labels)
    return root


@pytest.fixture(autouse=True, scope="module")
def one_cpu_thread() -> Iterator[None]:
    """One intra-op thread while a module's tests run: these small models gain nothing from more, and on a shared
    CPU the spinning second thread doubles the CPU time (measured: 5.2 s vs 11.9 s for six UperNet iterations)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

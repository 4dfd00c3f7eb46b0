"""The albumentations training pipeline: what each step does, the argument checks, and that it crosses into
data-loader workers."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from vssm.data import TrainAugmentation, build_train_transform
from vssm.data.augment import rand_augment_ops

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
OFF = dict(hflip=0.0, color_jitter=0.0, rand_ops=0, erase_prob=0.0, mean=MEAN, std=STD)


def _image(height: int = 24, width: int = 40) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _normalised(pixels: np.ndarray) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return (torch.tensor(pixels).permute(2, 0, 1).float() / 255 - mean) / std


def test_whole_image_crop_is_a_resize_then_normalisation() -> None:
    image = _image()
    aug = TrainAugmentation(size=(24, 40), scale=(1.0, 1.0), ratio=(40 / 24, 40 / 24), **OFF)
    out = build_train_transform(aug)(image)
    assert out.dtype == torch.float32 and out.shape == (3, 24, 40)
    torch.testing.assert_close(out, _normalised(np.asarray(image)), atol=1e-5, rtol=0)


def test_flip_and_output_size() -> None:
    image = _image()
    flipped = build_train_transform(TrainAugmentation(size=(24, 40), scale=(1.0, 1.0), ratio=(40 / 24, 40 / 24),
                                                      **{**OFF, "hflip": 1.0}))(image)
    torch.testing.assert_close(flipped, _normalised(np.asarray(image)[:, ::-1].copy()), atol=1e-5, rtol=0)
    full = build_train_transform(TrainAugmentation(size=(16, 12), mean=MEAN, std=STD))
    outs = torch.stack([full(image) for _ in range(8)])
    assert outs.shape == (8, 3, 16, 12) and torch.isfinite(outs).all()
    assert outs.std(0).mean() > 0.05  # random crops, jitter, RandAugment-like ops and erasing vary per call


def test_rand_augment_strength_follows_magnitude() -> None:
    ops = {type(op).__name__ for op in rand_augment_ops(9)}
    assert {"Affine", "Equalize", "Posterize", "Solarize", "Sharpen", "AutoContrast"} <= ops
    rotate = rand_augment_ops(9)[0]
    assert tuple(rotate.rotate) == pytest.approx((-27.0, 27.0))
    assert tuple(rand_augment_ops(0)[0].rotate) == (0.0, 0.0)


def test_pipeline_pickles_for_workers() -> None:
    transform = build_train_transform(TrainAugmentation(size=(8, 8)))
    restored = pickle.loads(pickle.dumps(transform))
    assert restored(_image()).shape == (3, 8, 8)
    assert "RandomResizedCrop" in repr(restored)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("size", (0, 8), "size: expected (H, W) of positive integers"),
    ("scale", (0.5, 0.2), "scale: expected 0 < min <= max <= 1"),
    ("ratio", (0.0, 1.0), "ratio: expected 0 < min <= max"),
    ("hflip", 1.5, "hflip: expected a probability in [0, 1]"),
    ("color_jitter", -0.1, "color_jitter: expected >= 0"),
    ("rand_magnitude", 11.0, "rand_ops, rand_magnitude: expected >= 0 and 0-10"),
    ("interpolation", "cubic", "interpolation: expected one of"),
])
def test_bad_arguments(field: str, value: object, message: str) -> None:
    kwargs = {"size": (8, 8), field: value}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TrainAugmentation(**kwargs)

"""Evaluation preprocessing through `timm.data`: resolved from a model's `pretrained_cfg` (or a training run's saved
data config) with overrides, and described step by step as it will run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image
from timm.data import create_transform, resolve_data_config
from torch import Tensor

# The data-config fields that define evaluation preprocessing (what a training checkpoint stores).
DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
CROP_MODES = ("center", "squash", "border")


def _plain(value: Any) -> Any:
    """Tensors, tuples and InterpolationModes as JSON-friendly numbers, lists and strings."""
    if isinstance(value, Tensor):
        value = value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and isinstance(value.value, str):  # torchvision InterpolationMode
        return value.value
    if isinstance(value, float):
        return round(value, 6)
    return value


def _step(transform: Callable) -> dict[str, Any]:
    step: dict[str, Any] = {"op": type(transform).__name__}
    for name in ("size", "interpolation", "fill", "mean", "std"):
        if getattr(transform, name, None) is not None:
            step[name] = _plain(getattr(transform, name))
    return step


def _step_text(step: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v}" for k, v in step.items() if k != "op")
    return f"{step['op']}({args})"


@dataclass(frozen=True)
class EvalPreprocessing:
    """config: timm's data config (input_size, interpolation, mean, std, crop_pct, crop_mode);
    transform: the timm eval transform it builds (PIL image -> (C, H, W) tensor)."""

    config: dict[str, Any]
    transform: Callable[[Image.Image], Tensor]

    def steps(self) -> list[dict[str, Any]]:
        """The transform's steps with their parameters, e.g. {'op': 'Resize', 'size': 256, 'interpolation':
        'bicubic'}."""
        return [_step(t) for t in getattr(self.transform, "transforms", [self.transform])]

    def text(self) -> str:
        return " -> ".join(_step_text(step) for step in self.steps())

    def as_dict(self) -> dict[str, Any]:
        return {**saved_data_config(self), "steps": self.steps()}


def eval_preprocessing(pretrained_cfg: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
                       ) -> EvalPreprocessing:
    """timm's evaluation preprocessing for `pretrained_cfg` (a model's, or a training run's saved data config)
    with `overrides` (None values ignored): `img_size` (int), `input_size` (C, H, W), `crop_pct`, `crop_mode`,
    `interpolation`, `mean`, `std`."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "img_size" in overrides and "input_size" not in overrides:
        size = overrides.pop("img_size")
        channels = pretrained_cfg.get("input_size", (3,))[0]
        overrides["input_size"] = (channels, size, size)
    crop_pct = overrides.get("crop_pct")
    if crop_pct is not None and not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct: expected a fraction in (0, 1], got {crop_pct}")
    if overrides.get("crop_mode", "center") not in CROP_MODES:
        raise ValueError(f"crop_mode: expected one of {CROP_MODES}, got {overrides['crop_mode']!r}")
    size = overrides.get("input_size", (3, 1, 1))
    if min(size) < 1:
        raise ValueError(f"input size: expected positive sizes, got {size}")
    config = resolve_data_config(args=overrides, pretrained_cfg=dict(pretrained_cfg))
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    transform = create_transform(**config, is_training=False)
    return EvalPreprocessing(config, transform)


def saved_data_config(preprocessing: EvalPreprocessing) -> dict[str, Any]:
    """The data config as plain lists/numbers/strings, for a weights-only checkpoint."""
    return {k: _plain(preprocessing.config[k]) for k in DATA_CONFIG_KEYS}

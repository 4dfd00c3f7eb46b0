"""Building vssm's models through timm, and listing which of timm's registered models are vssm's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import timm
from timm.models import build_model_with_cfg
from torch import nn

ModelT = TypeVar("ModelT", bound=nn.Module)


def build_model(
    model_cls: type[ModelT],
    variant: str,
    pretrained: bool,
    checkpoint_filter_fn: Callable[[dict, nn.Module], dict],
    out_indices: int | Sequence[int],
    **kwargs: Any,
) -> ModelT:
    """timm's `build_model_with_cfg` as every family calls it: pretrained weights go through the family's
    `checkpoint_filter_fn`, and `features_only=True` wraps the model in timm's feature getter over its
    `forward_intermediates` at `out_indices` (the family's default dense taps; a caller's `out_indices=` wins)."""
    return build_model_with_cfg(
        model_cls,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the models vssm registered with timm that match the fnmatch ``pattern``."""
    return sorted(
        name
        for name in timm.list_models(pattern)
        if timm.models.model_entrypoint(name).__module__.startswith("vssm.")
    )

"""The registered zoo as the tools see it: families, headline variants, model names and input sizes.

A family is the `vssm.models` module that registers a model (`vim`, `vmamba`, `mambavision`, ...), so a family that
lands later is picked up without touching this file. What a family records about its variants (its headline variant,
published FLOP counts, golden fixtures, speed targets: `vssm.models._records`) is read from its module
(`family_module`); a family without a `HEADLINE_VARIANT` shows its smallest non-test variant.

Bad names and sizes fail before any weights are allocated: an unknown name lists the closest registered ones, and
an input smaller than the model's stride (read from a meta-device instance) is rejected.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Iterable, Sequence
from types import ModuleType
from typing import Any

import timm
from torch import nn

from vssm.models import list_models

TEST_PREFIX = "test_"
DEFAULT_INPUT_SIZE = (3, 224, 224)


def family_of(name: str) -> str:
    """The family of a registered vssm model (its `vssm.models` module), or 'timm' for any other timm model."""
    module = timm.models.model_entrypoint(name).__module__
    return module.rsplit(".", 1)[-1] if module.startswith("vssm.models.") else "timm"


def family_module(family: str) -> ModuleType:
    """A family's `vssm.models` module: its model classes, `default_cfgs` and records (`vssm.models._records`)."""
    if family not in families():
        raise ValueError(f"family: expected one of {sorted(families())}, got {family!r}")
    return importlib.import_module(f"vssm.models.{family}")


def families() -> dict[str, list[str]]:
    """{family: its released (non-test) variants}, families and variants sorted by name."""
    out: dict[str, list[str]] = {}
    for name in list_models():
        if not name.startswith(TEST_PREFIX):
            out.setdefault(family_of(name), []).append(name)
    return dict(sorted(out.items()))


def test_variants() -> list[str]:
    """The tiny `test_*` variants every family registers for fast tests."""
    return list_models(TEST_PREFIX + "*")


@functools.cache
def num_params(name: str) -> int:
    """Parameter count of a registered model, from a meta-device instance (no weights allocated)."""
    return sum(p.numel() for p in timm.create_model(name, device="meta").parameters())


def headline_variant(family: str) -> str:
    """The variant `tools/report.py` shows for `family` by default."""
    variants = families().get(family)
    if not variants:
        raise ValueError(f"family: expected one of {sorted(families())}, got {family!r}")
    chosen = getattr(family_module(family), "HEADLINE_VARIANT", None)
    return chosen if chosen in variants else min(variants, key=lambda n: (num_params(n), n))


def headline_variants() -> list[str]:
    """The headline variant of every registered family."""
    return [headline_variant(family) for family in families()]


def resolve_names(names: Iterable[str], allow_timm: bool = False) -> list[str]:
    """Check model names against the registry; an unknown one raises ValueError naming the closest registered ones.

    `allow_timm` also accepts any timm model (baselines such as `resnet50`).
    """
    known = list_models()
    pool = timm.list_models() if allow_timm else known
    resolved = []
    for name in names:
        if name in known or (allow_timm and timm.is_model(name)):
            resolved.append(name)
            continue
        close = difflib.get_close_matches(name, pool, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"registered vssm models: {', '.join(known)}"
        what = "vssm or timm model" if allow_timm else "vssm model"
        raise ValueError(f"unknown {what} {name!r}; {hint}")
    return resolved


def parse_input_size(text: str | int | Sequence[int]) -> tuple[int, int, int]:
    """'224', '224x160', '3x224x224' (or an int / sequence) -> (C, H, W); C defaults to 3."""
    if isinstance(text, int):
        parts = [text]
    elif isinstance(text, str):
        try:
            parts = [int(p) for p in text.lower().replace(",", "x").split("x")]
        except ValueError:
            raise ValueError(f"input size: expected 'S', 'HxW' or 'CxHxW' with integers, got {text!r}") from None
    else:
        parts = [int(p) for p in text]
    if len(parts) == 1:
        parts = [3, parts[0], parts[0]]
    elif len(parts) == 2:
        parts = [3, *parts]
    if len(parts) != 3 or min(parts) < 1:
        raise ValueError(f"input size: expected positive 'S', 'HxW' or 'CxHxW', got {text!r}")
    return parts[0], parts[1], parts[2]


def default_input_size(name: str) -> tuple[int, int, int]:
    """The input size of a model's pretrained config (what its published numbers are for)."""
    size = timm.models.get_pretrained_cfg(name)
    size = getattr(size, "input_size", None) if size is not None else None
    return tuple(size) if size else DEFAULT_INPUT_SIZE  # type: ignore[return-value]


def _meta_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return timm.create_model(name, device="meta", **kwargs)
    except TypeError as exc:
        raise ValueError(f"{name} cannot be built for that input: {exc}") from None


def stride_of(model: nn.Module) -> int:
    """The largest reduction among a model's feature maps (its output stride); 1 if it declares none."""
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info:
        return max(int(f.get("reduction", 1)) for f in info)
    return 1


def build_kwargs(name: str, input_size: tuple[int, int, int]) -> dict[str, Any]:
    """Constructor kwargs that make `name` accept `input_size`: `in_chans`, and `img_size` for fixed-size models."""
    kwargs: dict[str, Any] = {}
    cfg = timm.models.get_pretrained_cfg(name)
    native = default_input_size(name)
    if input_size[0] != native[0]:
        kwargs["in_chans"] = input_size[0]
    if getattr(cfg, "fixed_input_size", False) and tuple(input_size[1:]) != tuple(native[1:]):
        kwargs["img_size"] = tuple(input_size[1:])
    return kwargs


def check_input_size(name: str, input_size: tuple[int, int, int]) -> dict[str, Any]:
    """Reject an input the model cannot take before building it; returns the constructor kwargs for that size.

    Raises ValueError when a side is smaller than the model's stride, or when the model itself refuses to be built
    for that size (a window larger than a stage's grid, a fixed-size model that cannot be rebuilt).
    """
    kwargs = build_kwargs(name, input_size)
    stride = stride_of(_meta_model(name, {k: v for k, v in kwargs.items() if k == "in_chans"}))
    height, width = input_size[1:]
    if height < stride or width < stride:
        raise ValueError(
            f"{name}: input {height}x{width} is smaller than the model's stride {stride}; expected both sides "
            f">= {stride}"
        )
    if "img_size" in kwargs:
        _meta_model(name, kwargs)
    return kwargs


def create(name: str, input_size: tuple[int, int, int] | None = None, **kwargs: Any) -> nn.Module:
    """Build `name` (eval mode) for `input_size` after `check_input_size`; extra kwargs go to `timm.create_model`."""
    size = input_size or default_input_size(name)
    model = timm.create_model(name, **{**check_input_size(name, size), **kwargs})
    return model.eval()


def create_uninitialised(name: str, input_size: tuple[int, int, int] | None = None) -> nn.Module:
    """Build `name` (eval mode) with CPU weights allocated but never initialised: for FLOP counting, where values
    do not matter, and ~10x faster to build than `create` for the largest variants.

    A model with an integer buffer other than BatchNorm's step counter (which could be an index table whose values
    shape the forward) is built normally instead.
    """
    size = input_size or default_input_size(name)
    model = timm.create_model(name, device="meta", **check_input_size(name, size))
    index_buffers = [n for n, b in model.named_buffers()
                     if not b.is_floating_point() and not n.endswith("num_batches_tracked")]
    if index_buffers:
        return create(name, size)
    return model.to_empty(device="cpu").eval()

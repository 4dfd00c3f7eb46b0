"""The parts of timm's model contract that the families share.

Every family's model class implements timm's interface itself (`forward_features`, `forward_head`,
`reset_classifier`, `forward_intermediates`, `prune_intermediate_layers`, `group_matcher`, ...); what is the same
logic in several of them lives here:

* argument and input checks with the messages every family gives (`check_image`, `check_global_pool`,
  `check_output_fmt`, `check_image_like`), and `linear_head` for `reset_classifier`;
* the constructors' numeric-argument checks (`check_int`, `check_ints`, `check_float`, `check_rates`): a ValueError
  at build time naming the argument, the expected range and the value given;
* `init_linear_and_norms`: the originals' `_init_weights` (timm's ViT/Swin init), `init_all_linear_and_norms` over a
  model with `SSMCore` mixers;
* for stem -> `Stage`s -> final norm networks (VMamba, LocalVMamba, MambaVision): `stage_group_matcher`,
  `forward_stage_intermediates` (the stage maps before each downsample, what the originals' dense backbones take)
  and `prune_stages`.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Sequence

import torch
from timm.layers import get_device_dtype, trunc_normal_
from timm.models._features import feature_take_indices
from torch import Tensor, nn

from vssm.layers.layout import Layout
from vssm.layers.ssm_core import SSMCore
from vssm.layers.stage import Stage

__all__ = [
    "check_float",
    "check_global_pool",
    "check_image",
    "check_image_like",
    "check_int",
    "check_ints",
    "check_output_fmt",
    "check_rates",
    "forward_stage_intermediates",
    "init_all_linear_and_norms",
    "init_linear_and_norms",
    "linear_head",
    "map_head",
    "prune_stages",
    "stage_group_matcher",
]


def check_image(x: object, in_chans: int, min_size: int, min_size_reason: str) -> None:
    """TypeError / ValueError unless x is a (B, in_chans, H, W) tensor with H, W >= `min_size` (the network's
    `min_size_reason`, e.g. "the total stride")."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected an image tensor (B, {in_chans}, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected an image tensor (B, {in_chans}, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(f"expected {in_chans} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(
            f"expected an input of at least {min_size}×{min_size} ({min_size_reason}), got {x.shape[-2]}×{x.shape[-1]}"
        )


def check_global_pool(global_pool: str) -> None:
    """ValueError unless `global_pool` is 'avg' or '' (the pooled-map networks' choices)."""
    if global_pool not in ("avg", ""):
        raise ValueError(f"global_pool: expected 'avg' or '' (no pooling), got {global_pool!r}")


def check_output_fmt(output_fmt: str, choices: Sequence[str]) -> None:
    """ValueError unless `output_fmt` (of `forward_intermediates`) is one of `choices`."""
    if output_fmt not in choices:
        raise ValueError(f"output_fmt: expected {' or '.join(map(repr, choices))}, got {output_fmt!r}")


def check_int(name: str, value: object, minimum: int = 1, meaning: str = "") -> None:
    """A constructor's integer argument: TypeError unless an int (not a bool), ValueError below `minimum`.
    `meaning` says what the smallest value does (num_classes: "0: no classifier")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}{f' ({meaning})' if meaning else ''}, got {value}")


def check_ints(name: str, values: object, minimum: int = 1) -> None:
    """A constructor's per-stage integers (depths, dims): a non-empty sequence, each entry `check_int`'s."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise TypeError(f"{name}: expected a sequence of ints >= {minimum}, got {type(values).__name__} {values!r}")
    if not values:
        raise ValueError(f"{name}: expected at least one entry (ints >= {minimum}), got {values!r}")
    for i, value in enumerate(values):
        check_int(f"{name}[{i}]", value, minimum)


def check_float(name: str, value: object, minimum: float = 0.0, inclusive: bool = False) -> None:
    """A constructor's real argument (expand, mlp_ratio, eps): TypeError unless a number, ValueError unless finite
    and above `minimum` (or equal to it, `inclusive`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__} {value!r}")
    above = value >= minimum if inclusive else value > minimum
    if not (math.isfinite(value) and above):
        raise ValueError(f"{name}: expected a finite number {'>=' if inclusive else '>'} {minimum:g}, got {value}")


def check_rates(**rates: object) -> None:
    """Dropout and stochastic-depth rates (`drop_rate=..., drop_path_rate=...`): each a probability in [0, 1)."""
    for name, value in rates.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: expected a probability in [0, 1), got {type(value).__name__} {value!r}")
        if not 0 <= value < 1:
            raise ValueError(f"{name}: expected a probability in [0, 1), got {value}")


def check_image_like(x: Tensor, weight: Tensor) -> None:
    """ValueError unless x is on the device of the model's first `weight`; TypeError unless it is a floating tensor of
    its dtype. Under autocast other floating dtypes pass too, except float64 (input or model): autocast casts the
    rest for each op, never float64."""
    if x.device != weight.device:
        raise ValueError(f"expected an image tensor on the model's device {weight.device}, got one on {x.device} "
                         f"(move it with x.to({str(weight.device)!r}))")
    dtype = weight.dtype
    if not x.is_floating_point():
        raise TypeError(f"expected a floating-point image tensor ({dtype}, the model's dtype), got {x.dtype}")
    device = x.device.type
    autocast = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    if x.dtype != dtype and not (autocast and torch.float64 not in (x.dtype, dtype)):
        raise TypeError(f"expected an image tensor of the model's dtype {dtype}, got {x.dtype} (convert it with "
                        f"x.to({dtype}) or the model with model.to({x.dtype}))")


def linear_head(model: nn.Module, num_features: int, num_classes: int) -> nn.Module:
    """A new classifier for `reset_classifier`: Linear(num_features, num_classes) on the model's device and dtype,
    or Identity for num_classes 0, in the model's train / eval mode."""
    head = nn.Linear(num_features, num_classes, **get_device_dtype(model)) if num_classes > 0 else nn.Identity()
    return head.train(model.training)


def map_head(head: nn.Module, x: Tensor, channels_first: bool = True) -> Tensor:
    """A Linear classifier at every position of an unpooled map (global_pool=''): (B, C, H, W) -> (B, classes, H, W)
    (channels_first), or (B, H, W, C) -> (B, H, W, classes); the map keeps its layout, as timm's models keep theirs."""
    return head(x.movedim(1, -1)).movedim(-1, 1) if channels_first else head(x)


def init_linear_and_norms(module: nn.Module, norm_types: tuple[type[nn.Module], ...] = (nn.LayerNorm,)) -> None:
    """The originals' `_init_weights` for one module: a Linear gets trunc-normal(0.02) weights and zero bias, a norm of
    `norm_types` weight 1 and bias 0; everything else keeps its own init. Meta tensors are skipped (nothing to
    initialise, and trunc_normal_ is slow on them)."""
    weight = getattr(module, "weight", None)
    if weight is None or weight.is_meta:
        return
    if isinstance(module, nn.Linear):
        _init_linear(weight, module.bias)
    elif isinstance(module, norm_types):
        nn.init.ones_(weight)
        nn.init.zeros_(module.bias)


def _init_linear(weight: Tensor, bias: Tensor | None) -> None:
    trunc_normal_(weight, std=0.02)
    if bias is not None:
        nn.init.zeros_(bias)


def init_all_linear_and_norms(model: nn.Module, norm_types: tuple[type[nn.Module], ...] = (nn.LayerNorm,)) -> None:
    """`init_linear_and_norms` on every module of `model`; an `SSMCore`'s x_proj and dt_proj, which hold all its
    routes, route by route in the order of the per-route Linears the originals have (x_proj_0, dt_proj_0,
    x_proj_1, ...), so a seeded model draws the original's numbers. (Linears are leaves, so this order is both
    `model.apply`'s and `model.modules()`'.)"""
    stacked = {}
    for module in model.modules():
        if isinstance(module, SSMCore):
            stacked[module.x_proj], stacked[module.dt_proj] = module, None
    for module in model.modules():
        if module not in stacked:
            init_linear_and_norms(module, norm_types)
        elif stacked[module] is not None and not module.weight.is_meta:
            for weight, bias in stacked[module].route_linears():
                _init_linear(weight, bias)


def stage_group_matcher(stages: str, final_norm: str, coarse: bool, stem: str = "patch_embed") -> dict:
    """timm's parameter groups of a stem -> stages -> final norm network, by module name: the stem, then each
    stage's blocks (coarse: whole stages), its downsample after its blocks, the final norm last."""
    stages, final_norm = re.escape(stages), re.escape(final_norm)
    if coarse:
        return dict(stem=rf"^{stem}", blocks=rf"^{stages}\.(\d+)")
    return dict(
        stem=rf"^{stem}",
        blocks=[
            (rf"^{stages}\.(\d+)\.blocks\.(\d+)", None),
            (rf"^{stages}\.(\d+)\.downsample", (99998,)),
            (rf"^{final_norm}", (99999,)),
        ],
    )


def forward_stage_intermediates(
    stages: Sequence[Stage],
    x: Tensor,
    indices: int | Sequence[int] | None,
    final_norm: nn.Module | None = None,
    stop_early: bool = False,
    output_fmt: str = "NCHW",
    layout: Layout = Layout.CHANNELS_FIRST,
) -> tuple[Tensor, list[Tensor]]:
    """Run `stages` on the stem's output x, taking the maps of the stages in `indices` before their downsample.

    Args:
        indices: stages to take (int n = the last n), default all (timm's `feature_take_indices`).
        final_norm: applied to the map of the last stage of the network when it is taken (`norm=True`).
        stop_early: stop after the last stage taken.
        output_fmt: "NCHW" or "NHWC" for the taken maps; x is in `layout`.

    Returns:
        The output of the last stage run (in `layout`) and the taken maps.
    """
    take_indices, max_index = feature_take_indices(len(stages), indices)
    last = len(stages) - 1
    intermediates = []
    for i, stage in enumerate(stages[: max_index + 1] if stop_early else stages):
        x = stage.forward_blocks(x)
        if i in take_indices:
            feature = final_norm(x) if final_norm is not None and i == last else x
            feature = layout.to_nchw(feature)
            intermediates.append(feature if output_fmt == "NCHW" else feature.permute(0, 2, 3, 1))
        x = stage.downsample(x)
    return x, intermediates


def prune_stages(stages: nn.ModuleList, indices: int | Sequence[int]) -> tuple[nn.ModuleList, list[int]]:
    """The stages up to the last of `indices`, the last one without its downsample, and the kept indices
    (`prune_intermediate_layers` of a staged network)."""
    take_indices, max_index = feature_take_indices(len(stages), indices)
    stages = stages[: max_index + 1]
    stages[-1].downsample = nn.Identity()
    return stages, take_indices

"""MambaVision: hybrid Mamba-Transformer backbones.

Paper: "MambaVision: A Hybrid Mamba-Transformer Vision Backbone", Hatamizadeh & Kautz, CVPR 2025
(https://arxiv.org/abs/2407.08083). Original code and weights: https://github.com/NVlabs/MambaVision
(`mambavision/models/mamba_vision.py` @ 7860a50; code NVIDIA Source Code License-NC, weights CC-BY-NC-SA-4.0).

    stem      conv 3×3 s2 -> BN -> ReLU -> conv 3×3 s2 -> BN -> ReLU                       (stride 4)
    levels 0-1  ConvBlocks (conv-BN-GELU(tanh)-conv-BN + residual), then a 3×3 s2 conv downsample
    levels 2-3  zero-pad to whole windows -> windows -> ⌈d/2⌉ Mamba-mixer blocks, then ⌊d/2⌋ self-attention blocks
                -> un-window -> crop; then (level 2) the conv downsample
    head      BN -> global average pool -> linear

The windows are padded once per level with no mask, so padded tokens are mixed, scanned and attended to like any
other token and change from block to block (the original's behaviour, with its padding fix 6cdafeb). At the
released resolutions every hybrid level is a single window (224: 14×14 and 7×7).

Faithfulness switches: the mixer adds its dt bias twice (`dt_bias=DtBias.TWICE`, the default; see
`vssm.layers.mambavision_mixer`), and `scan=` (default `raster`, the original's) routes each window's tokens in any
order. `forward_intermediates` / `features_only` return the stage maps before each downsample (strides 4/8/16/32),
which is what the original's Hugging Face `AutoModel` and its detection/segmentation backbone return.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Attention, DropPath, Mlp
from timm.models import generate_default_cfgs, register_model
from torch import nn

from vssm import scans
from vssm.layers.fx import fx_leaf
from vssm.layers.mambavision_mixer import DtBias, MambaVisionMixer
from vssm.layers.stage import Stage
from vssm.layers.window_partition import window_partition, window_reverse
from vssm.models._checkpoint import check_variant_fits, model_name, select_weights
from vssm.models._contract import (
    check_float,
    check_global_pool,
    check_image,
    check_image_like,
    check_int,
    check_output_fmt,
    check_rates,
    forward_stage_intermediates,
    init_all_linear_and_norms,
    linear_head,
    map_head,
    prune_stages,
    stage_group_matcher,
)
from vssm.models._records import GoldenFixture, PublishedCount, SpeedTarget
from vssm.models._registry import build_model

__all__ = ["DtBias", "MambaVision", "checkpoint_filter_fn", "describe_checkpoint"]

STEM_STRIDE = 4
TOTAL_STRIDE = 32
NUM_LEVELS = 4
CONV_LEVELS = 2  # levels 0 and 1 are convolutional, the rest hybrid


class Stem(nn.Module):
    """Two 3×3 stride-2 convs (no bias), each followed by BN (ε 1e-4) and ReLU.  (B, in, H, W) -> ⌈H/4⌉ × ⌈W/4⌉."""

    def __init__(self, in_chans: int, in_dim: int, dim: int, **factory) -> None:
        super().__init__()
        self.conv_down = nn.Sequential(
            nn.Conv2d(in_chans, in_dim, 3, stride=2, padding=1, bias=False, **factory),
            nn.BatchNorm2d(in_dim, eps=1e-4, **factory),
            nn.ReLU(),
            nn.Conv2d(in_dim, dim, 3, stride=2, padding=1, bias=False, **factory),
            nn.BatchNorm2d(dim, eps=1e-4, **factory),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_down(x)


class ConvBlock(nn.Module):
    """x + DropPath(γ ⊙ BN(conv(GELU_tanh(BN(conv(x))))))  on (B, C, H, W); γ only with `layer_scale`."""

    def __init__(self, dim: int, drop_path: float = 0.0, layer_scale: float | None = None, **factory) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1, **factory)
        self.norm1 = nn.BatchNorm2d(dim, eps=1e-5, **factory)
        self.act1 = nn.GELU(approximate="tanh")
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1, **factory)
        self.norm2 = nn.BatchNorm2d(dim, eps=1e-5, **factory)
        self.gamma = None if layer_scale is None else nn.Parameter(torch.full((dim,), float(layer_scale), **factory))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)


class HybridBlock(nn.Module):
    """Pre-norm residual block on window tokens (B', L, C): x + γ₁ ⊙ mixer(LN(x)), then x + γ₂ ⊙ MLP(LN(x)).

    The mixer is a `MambaVisionMixer` or multi-head self-attention (timm's `Attention`, SDPA when fused attention
    is enabled); γ₁, γ₂ exist only with `layer_scale`.
    """

    def __init__(
        self,
        dim: int,
        mixer: nn.Module,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        **factory,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5, **factory)
        self.mixer = mixer
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-5, **factory)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop, **factory)
        if layer_scale is None:
            self.gamma_1 = self.gamma_2 = None
        else:
            self.gamma_1 = nn.Parameter(torch.full((dim,), float(layer_scale), **factory))
            self.gamma_2 = nn.Parameter(torch.full((dim,), float(layer_scale), **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mixer(self.norm1(x))
        x = x + self.drop_path(y if self.gamma_1 is None else self.gamma_1 * y)
        y = self.mlp(self.norm2(x))
        return x + self.drop_path(y if self.gamma_2 is None else self.gamma_2 * y)


class Downsample(nn.Module):
    """3×3 stride-2 conv C -> 2C without bias or norm.  H × W -> ⌈H/2⌉ × ⌈W/2⌉."""

    def __init__(self, dim: int, out_dim: int, **factory) -> None:
        super().__init__()
        self.reduction = nn.Sequential(nn.Conv2d(dim, out_dim, 3, stride=2, padding=1, bias=False, **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(x)


class MambaVisionLevel(Stage):
    """The blocks of one level, on the map (conv levels) or on its windows (hybrid levels), then the downsample.

    `window_size` None: the blocks run on (B, C, H, W). Otherwise the map is zero-padded to whole windows of that
    side, the blocks run on the (B·windows, w², C) token sequences, and the map is restored and cropped.
    """

    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module, window_size: int | None) -> None:
        super().__init__(blocks, downsample)
        self.window_size = window_size

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W): the level's map before the downsample."""
        if self.window_size is None:
            return self.run_blocks(x)
        height, width = x.shape[-2:]
        return self.unpartition(self.run_blocks(self.partition(x)), height, width)

    @fx_leaf  # pads by the map's size
    def partition(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B·windows, w², C)."""
        return window_partition(x, self.window_size)

    @fx_leaf  # crops by the map's size
    def unpartition(self, windows: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B·windows, w², C) -> (B, C, H, W)."""
        return window_reverse(windows, self.window_size, height, width)


def _per_level(value: object, name: str, kind: type) -> tuple:
    values = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if values is None or len(values) != NUM_LEVELS or not all(
        isinstance(v, kind) and not isinstance(v, bool) and v >= 1 for v in values
    ):
        raise ValueError(f"{name}: expected {NUM_LEVELS} positive {kind.__name__}s (one per level), got {value!r}")
    return values


def _attention_start(depth: int) -> int:
    """Index of the first attention block of a hybrid level: ⌈d/2⌉ Mamba blocks come first."""
    return (depth + 1) // 2


class MambaVision(nn.Module):
    """MambaVision backbone and classifier (the original's argument names).

    Args:
        dim: channels of level 0 (doubled per level).
        in_dim: channels after the stem's first conv.
        depths: blocks per level (4 levels).
        window_size: window side of each level (levels 0-1 ignore theirs); the released models use the whole map.
        mlp_ratio: MLP hidden width / C in the hybrid blocks.
        num_heads: attention heads per level (levels 0-1 ignore theirs).
        drop_path_rate: stochastic depth, linear from 0 over all blocks.
        qkv_bias, qk_norm: attention's qkv bias and q/k LayerNorm (the original's `qk_scale` is passed as qk_norm;
            every released model has neither q/k norm).
        drop_rate: dropout after the MLP layers and the attention projection (the original's meaning; no head
            dropout).
        attn_drop_rate: attention-probability dropout.
        layer_scale: initial value of the hybrid blocks' γ₁, γ₂ (None: no layer scale, as in T, T2, S).
        layer_scale_conv: initial value of the ConvBlocks' γ (None in every released model).
        scan: order of the window tokens for every Mamba mixer (a `scans` name, order, or `scans.Schedule` over the
            Mamba blocks counted across levels); its number of routes sets the mixers' parameter sets. Default
            `raster`, the original's.
        dt_bias: `DtBias.TWICE` (the released checkpoints) or `DtBias.ONCE`.
        d_state, d_conv: the Mamba mixers' state size and conv kernel.
        in_chans, num_classes, global_pool ("avg" or ""): timm's meaning.
        device, dtype: factory kwargs for every parameter.
    """

    def __init__(
        self,
        dim: int = 80,
        in_dim: int = 32,
        depths: Sequence[int] = (1, 3, 8, 4),
        window_size: Sequence[int] = (8, 8, 14, 7),
        mlp_ratio: float = 4.0,
        num_heads: Sequence[int] = (2, 4, 8, 16),
        drop_path_rate: float = 0.2,
        in_chans: int = 3,
        num_classes: int = 1000,
        qkv_bias: bool = True,
        qk_norm: bool = False,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        layer_scale: float | None = None,
        layer_scale_conv: float | None = None,
        scan: str | scans.ScanOrder | scans.Schedule = "raster",
        dt_bias: DtBias | str = DtBias.TWICE,
        d_state: int = 8,
        d_conv: int = 3,
        global_pool: str = "avg",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        for name, value in (("dim", dim), ("in_dim", in_dim), ("in_chans", in_chans)):  # d_state, d_conv: the mixer's
            check_int(name, value)
        check_int("num_classes", num_classes, minimum=0, meaning="0: no classifier")
        check_float("mlp_ratio", mlp_ratio)
        check_rates(drop_path_rate=drop_path_rate, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate)
        depths = _per_level(depths, "depths", int)
        window_size = _per_level(window_size, "window_size", int)
        num_heads = _per_level(num_heads, "num_heads", int)
        dims = tuple(dim * 2**i for i in range(NUM_LEVELS))
        for i in range(CONV_LEVELS, NUM_LEVELS):
            if dims[i] % num_heads[i]:
                raise ValueError(f"num_heads[{i}]: {num_heads[i]} does not divide the level's {dims[i]} channels")
        check_global_pool(global_pool)
        schedule = scans.as_schedule(scan)
        dt_bias = DtBias(dt_bias)

        self.depths, self.dims, self.window_size = depths, dims, window_size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = dims[-1]

        self.patch_embed = Stem(in_chans, in_dim, dim, **factory)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # also under a meta context
        self.levels = nn.ModuleList()
        self.feature_info = []
        mamba_index = 0
        for i, (depth, channels) in enumerate(zip(depths, dims)):
            level_rates = rates[sum(depths[:i]) : sum(depths[: i + 1])]
            if i < CONV_LEVELS:
                blocks = [ConvBlock(channels, rate, layer_scale_conv, **factory) for rate in level_rates]
                window = None
            else:
                window = window_size[i]
                blocks = []
                for j, rate in enumerate(level_rates):
                    if j < _attention_start(depth):
                        order = schedule.for_layer(mamba_index)
                        mamba_index += 1
                        mixer = MambaVisionMixer(channels, window, order, d_state, d_conv, dt_bias, **factory)
                    else:
                        mixer = Attention(
                            channels,
                            num_heads=num_heads[i],
                            qkv_bias=qkv_bias,
                            qk_norm=qk_norm,
                            attn_drop=attn_drop_rate,
                            proj_drop=drop_rate,
                            norm_layer=nn.LayerNorm,
                            **factory,
                        )
                    blocks.append(HybridBlock(channels, mixer, mlp_ratio, drop_rate, rate, layer_scale, **factory))
            last = i == NUM_LEVELS - 1
            downsample = nn.Identity() if last else Downsample(channels, dims[i + 1], **factory)
            self.levels.append(MambaVisionLevel(blocks, downsample, window))
            self.feature_info.append(dict(num_chs=channels, reduction=STEM_STRIDE * 2**i, module=f"levels.{i}"))

        self.norm = nn.BatchNorm2d(self.num_features, **factory)
        self.head = nn.Linear(self.num_features, num_classes, **factory) if num_classes > 0 else nn.Identity()
        # The original's `_init_weights`: every Linear trunc-normal(0.02) with zero bias -- this also overwrites
        # Mamba's dt_proj init (weight and bias) -- norms to 1/0, convs keep PyTorch's default, A_log/D/γ keep their
        # construction values.
        init_all_linear_and_norms(self, norm_types=(nn.LayerNorm, nn.BatchNorm2d))

    # ------------------------------------------------------------------------------------------ timm interface

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """The SSM's A_log and D (mamba_ssm's `_no_weight_decay`)."""
        return {name for name, _ in self.named_parameters() if re.search(r"\.mixer\.(A_log|D)(_\d+)?$", name)}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return stage_group_matcher("levels", "norm", coarse)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for level in self.levels:
            level.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            check_global_pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = linear_head(self, self.num_features, num_classes)

    # ----------------------------------------------------------------------------------------------- forward

    @fx_leaf
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """x if the model takes it (TypeError / ValueError naming what is wrong if not)."""
        check_image(x, self.in_chans, STEM_STRIDE, "the stem's stride")
        check_image_like(x, self.patch_embed.conv_down[0].weight)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the normalised last map (B, 8·dim, ⌈H/32⌉, ⌈W/32⌉)."""
        x = self.check_input(x)
        x = self.patch_embed(x)
        for level in self.levels:
            x = level(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool != "avg":
            return x if pre_logits else map_head(self.head, x)
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Level maps before each downsample (strides 4, 8, 16, 32; channels dim·1, 2, 4, 8), without output norm.

        Args:
            indices: levels to return (int n = the last n), default all.
            norm: apply the final BatchNorm (`norm`) to the last level's map.
            stop_early: stop after the last requested level.
            output_fmt: "NCHW" or "NHWC" for the intermediates.
            intermediates_only: return only the list.
        """
        check_output_fmt(output_fmt, ("NCHW", "NHWC"))
        x = self.check_input(x)
        x, intermediates = forward_stage_intermediates(
            self.levels, self.patch_embed(x), indices, self.norm if norm else None, stop_early, output_fmt
        )
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the levels after the last of `indices` (and the norm / head); returns the kept indices."""
        self.levels, take_indices = prune_stages(self.levels, indices)
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


# -------------------------------------------------------------------------------------------------- checkpoints

# Wrappers around the network (after `select_weights` removed DDP's `module.`): Hugging Face's trust_remote_code
# models (`model.`, the network is their `self.model`), encoder-style exports (`encoder.`, kept by the original loader)
# and OpenMMLab detectors and segmentors (`backbone.`).
_WRAPPER_PREFIXES = ("model.", "encoder.", "backbone.")


def _strip_wrappers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes, outermost first; a wrapper that holds more than the network (a detector's neck and
    heads) keeps only the network's keys."""
    for prefix in _WRAPPER_PREFIXES:
        if any(key.startswith(prefix) for key in state_dict):
            state_dict = {key[len(prefix) :]: v for key, v in state_dict.items() if key.startswith(prefix)}
    return state_dict


def describe_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """The architecture a MambaVision state dict (our / the original's keys) was saved from: dim, in_dim, depths,
    layer scale, and the number of Mamba blocks per hybrid level."""
    blocks: dict[int, set[int]] = {}
    mamba: dict[int, set[int]] = {}
    for key in state_dict:
        match = re.match(r"levels\.(\d+)\.blocks\.(\d+)\.", key)
        if match:
            level, block = int(match[1]), int(match[2])
            blocks.setdefault(level, set()).add(block)
            if re.search(r"\.mixer\.A_log(_0)?$", key):
                mamba.setdefault(level, set()).add(block)
    levels = sorted(blocks)
    return dict(
        dim=state_dict["patch_embed.conv_down.3.weight"].shape[0],
        in_dim=state_dict["patch_embed.conv_down.0.weight"].shape[0],
        depths=tuple(len(blocks[level]) for level in levels),
        mamba_blocks=tuple(len(mamba.get(level, ())) for level in levels[CONV_LEVELS:]),
        layer_scale=any(re.search(r"\.gamma_1$", key) for key in state_dict),
    )


def _variant_architecture(kwargs: dict) -> dict:
    depths = tuple(kwargs["depths"])
    return dict(
        dim=kwargs["dim"],
        in_dim=kwargs["in_dim"],
        depths=depths,
        mamba_blocks=tuple(_attention_start(d) for d in depths[CONV_LEVELS:]),
        layer_scale=kwargs.get("layer_scale") is not None,
    )


def _summary(arch: dict) -> str:
    scale = "with" if arch["layer_scale"] else "without"
    return f"dim {arch['dim']}, in_dim {arch['in_dim']}, depths {arch['depths']}, {scale} layer scale"


def checkpoint_filter_fn(checkpoint: dict, model: MambaVision) -> dict[str, torch.Tensor]:
    """An original MambaVision checkpoint -> our state dict (strict-loadable; the keys are the original's).

    Accepts `{'state_dict': ...}` / `{'model': ...}` files (their model weights; EMA weights only as a bare state
    dict, e.g. from `vssm.checkpoints.select_weights(..., ema=True)`) and bare state dicts, with `module.`, Hugging
    Face's `model.`, `encoder.` or a detector's `backbone.` prefix; drops the dense backbones' `outnorm{i}`. A
    checkpoint of another variant raises a ValueError that names both (the first conv and the classifier may differ:
    timm adapts in_chans and num_classes after filtering).
    """
    state_dict, _ = select_weights(checkpoint, what=f"checkpoint for {model_name(model)}")
    state_dict = _strip_wrappers(state_dict)
    out = {key: value for key, value in state_dict.items() if not key.startswith("outnorm")}
    variants = {name: _variant_architecture(kwargs) for name, kwargs in _VARIANTS.items()}
    check_variant_fits(out, model, describe_checkpoint, _summary, variants, ("head.", "patch_embed.conv_down.0.weight"))
    return out


# ---------------------------------------------------------------------------------------------------- builders


def _create_mambavision(variant: str, pretrained: bool = False, **kwargs) -> MambaVision:
    return build_model(MambaVision, variant, pretrained, checkpoint_filter_fn, (0, 1, 2, 3), **kwargs)


def _cfg(hf_hub_id: str = "", filename: str = "", **kwargs) -> dict:
    input_size = kwargs.pop("input_size", (3, 224, 224))
    return {
        "url": f"https://huggingface.co/{hf_hub_id}/resolve/main/{filename}" if hf_hub_id else "",
        "hf_hub_id": hf_hub_id or None,
        "hf_hub_filename": filename or None,
        "num_classes": 1000,
        "input_size": input_size,
        "pool_size": tuple(-(-size // TOTAL_STRIDE) for size in input_size[1:]),  # the windows pad every level
        # The original's cfg says True, which in timm means "the constructor takes img_size"; the network runs at any
        # size (the windows pad), and `input_size` is the resolution the weights were trained at.
        "fixed_input_size": False,
        "crop_pct": 1.0,
        "crop_mode": "center",
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.conv_down.0",
        "classifier": "head",
        "license": "cc-by-nc-sa-4.0",
        "notes": ("weights CC-BY-NC-SA-4.0; original code NVIDIA Source Code License-NC",),
        "paper_ids": "arXiv:2407.08083",
        "paper_name": "MambaVision: A Hybrid Mamba-Transformer Vision Backbone",
        "origin_url": "https://github.com/NVlabs/MambaVision",
        **kwargs,
    }


_T = dict(dim=80, in_dim=32, num_heads=(2, 4, 8, 16), window_size=(8, 8, 14, 7), drop_path_rate=0.2)
_S = dict(dim=96, in_dim=64, num_heads=(2, 4, 8, 16), window_size=(8, 8, 14, 7), drop_path_rate=0.2)
_B = dict(dim=128, in_dim=64, num_heads=(2, 4, 8, 16), window_size=(8, 8, 14, 7), drop_path_rate=0.3, layer_scale=1e-5)
_L = dict(dim=196, in_dim=64, num_heads=(4, 8, 16, 32), window_size=(8, 8, 14, 7), drop_path_rate=0.3, layer_scale=1e-5)
_L3 = dict(dim=256, in_dim=64, num_heads=(4, 8, 16, 32), drop_path_rate=0.5, layer_scale=1e-5)

# Architecture of every registered name (drop_path_rate: the original builder's default).
_VARIANTS: dict[str, dict] = {
    "mambavision_tiny": dict(_T, depths=(1, 3, 8, 4)),
    "mambavision_tiny2": dict(_T, depths=(1, 3, 11, 4)),
    "mambavision_small": dict(_S, depths=(3, 3, 7, 5)),
    "mambavision_base": dict(_B, depths=(3, 3, 10, 5)),
    "mambavision_base_21k": dict(_B, depths=(3, 3, 10, 5)),
    "mambavision_large": dict(_L, depths=(3, 3, 10, 5)),
    "mambavision_large_21k": dict(_L, depths=(3, 3, 10, 5)),
    "mambavision_large2": dict(_L, depths=(3, 3, 12, 5)),
    "mambavision_large2_512_21k": dict(_L, depths=(3, 3, 12, 5), window_size=(8, 8, 32, 16)),
    "mambavision_large3_256_21k": dict(_L3, depths=(3, 3, 20, 10), window_size=(8, 8, 16, 8)),
    "mambavision_large3_512_21k": dict(_L3, depths=(3, 3, 20, 10), window_size=(8, 8, 32, 16)),
    # The golden fixture's configuration: both hybrid levels pad at 96×96 (6×6 -> 8×8, 3×3 -> 4×4), layer scale on.
    "test_mambavision": dict(
        dim=16, in_dim=8, depths=(1, 1, 2, 2), num_heads=(2, 2, 2, 4), window_size=(8, 8, 4, 2), layer_scale=1e-5,
        drop_path_rate=0.0,
    ),
}

_21K = "ImageNet-21K pre-trained, ImageNet-1K fine-tuned (1000-class head)"
default_cfgs = generate_default_cfgs(
    {
        "mambavision_tiny.in1k": _cfg("nvidia/MambaVision-T-1K", "mambavision_tiny_1k.pth.tar"),
        "mambavision_tiny2.in1k": _cfg("nvidia/MambaVision-T2-1K", "mambavision_tiny2_1k.pth.tar", crop_pct=0.98),
        "mambavision_small.in1k": _cfg("nvidia/MambaVision-S-1K", "mambavision_small_1k.pth.tar", crop_pct=0.93),
        "mambavision_base.in1k": _cfg("nvidia/MambaVision-B-1K", "mambavision_base_1k.pth.tar"),
        "mambavision_base_21k.in21k_ft_in1k": _cfg(
            "nvidia/MambaVision-B-21K", "mambavision_base_21k.pth.tar", description=_21K
        ),
        "mambavision_large.in1k": _cfg("nvidia/MambaVision-L-1K", "mambavision_large_1k.pth.tar"),
        "mambavision_large_21k.in21k_ft_in1k": _cfg(
            "nvidia/MambaVision-L-21K", "mambavision_large_21k.pth.tar", description=_21K
        ),
        "mambavision_large2.in1k": _cfg("nvidia/MambaVision-L2-1K", "mambavision_large2_1k.pth.tar"),
        "mambavision_large2_512_21k.in21k_ft_in1k": _cfg(
            "nvidia/MambaVision-L2-512-21K",
            "mambavision_L2_21k_240m_512.pth.tar",
            input_size=(3, 512, 512),
            crop_pct=0.93,
            crop_mode="squash",
            description=_21K,
        ),
        "mambavision_large3_256_21k.in21k_ft_in1k": _cfg(
            "nvidia/MambaVision-L3-256-21K",
            "mambavision_L3_21k_740m_256.pth.tar",
            input_size=(3, 256, 256),
            description=_21K,
        ),
        "mambavision_large3_512_21k.in21k_ft_in1k": _cfg(
            "nvidia/MambaVision-L3-512-21K",
            "mambavision_L3_21k_740m_512.pth.tar",
            input_size=(3, 512, 512),
            crop_pct=0.93,
            crop_mode="squash",
            description=_21K,
        ),
        "test_mambavision.untrained": _cfg(input_size=(3, 96, 96), license="apache-2.0"),
    }
)

# What the tools read (vssm.models._records). Headline: MambaVision-T, the first row of the README's table.
HEADLINE_VARIANT = "mambavision_tiny"
_README = ("MambaVision's README (github.com/NVlabs/MambaVision at 7860a50; ptflops, "
           "mambavision/throughput_measure.py); more digits: ptflops' rule (conv and linear layers only; "
           "NVlabs/MambaVision#21, #97) worked through each layer")
PUBLISHED_COUNTS = {
    "mambavision_tiny": PublishedCount("4.4", _README, derived="4.46"),
    "mambavision_tiny2": PublishedCount("5.1", _README, derived="5.10"),
    "mambavision_small": PublishedCount("7.5", _README, derived="7.48"),
    "mambavision_base": PublishedCount("15.0", _README, derived="14.95"),
    "mambavision_base_21k": PublishedCount("15.0", _README, derived="14.95"),
    "mambavision_large": PublishedCount("34.9", _README, derived="34.84"),
    "mambavision_large_21k": PublishedCount("34.9", _README, derived="34.84"),
    "mambavision_large2": PublishedCount("37.5", _README, derived="37.50"),
    "mambavision_large2_512_21k": PublishedCount("196.3", _README, derived="195.91"),
    "mambavision_large3_256_21k": PublishedCount("122.3", _README, derived="122.11"),
    "mambavision_large3_512_21k": PublishedCount("489.1", _README, derived="488.44"),
}
GOLDEN_FIXTURES = {"mambavision_test": GoldenFixture("test_mambavision")}
SPEED_TARGETS = (SpeedTarget("mambavision_tiny", "convnext_tiny", 0.7),)
TEST_SPEED_TARGETS = (SpeedTarget("test_mambavision", "test_convnext", 0.7, batch=2, input_size=(3, 64, 64)),)


@register_model
def mambavision_tiny(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-T (`mamba_vision_T`): 31.8M parameters, 82.3 top-1 at 224."""
    model_args = _VARIANTS["mambavision_tiny"]
    return _create_mambavision("mambavision_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_tiny2(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-T2 (`mamba_vision_T2`): 35.1M parameters, 82.7 top-1 at 224."""
    model_args = _VARIANTS["mambavision_tiny2"]
    return _create_mambavision("mambavision_tiny2", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_small(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-S (`mamba_vision_S`): 50.1M parameters, 83.3 top-1 at 224."""
    model_args = _VARIANTS["mambavision_small"]
    return _create_mambavision("mambavision_small", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_base(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-B (`mamba_vision_B`): 97.7M parameters, 84.2 top-1 at 224."""
    model_args = _VARIANTS["mambavision_base"]
    return _create_mambavision("mambavision_base", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_base_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-B-21K (`mamba_vision_B_21k`): 97.7M parameters, 84.9 top-1 at 224."""
    model_args = _VARIANTS["mambavision_base_21k"]
    return _create_mambavision("mambavision_base_21k", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_large(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L (`mamba_vision_L`): 228.0M parameters, 85.0 top-1 at 224."""
    model_args = _VARIANTS["mambavision_large"]
    return _create_mambavision("mambavision_large", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_large_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L-21K (`mamba_vision_L_21k`): 228.0M parameters, 86.1 top-1 at 224."""
    model_args = _VARIANTS["mambavision_large_21k"]
    return _create_mambavision("mambavision_large_21k", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_large2(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L2 (`mamba_vision_L2`): 241.6M parameters, 85.3 top-1 at 224."""
    model_args = _VARIANTS["mambavision_large2"]
    return _create_mambavision("mambavision_large2", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_large2_512_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L2-512-21K (`mamba_vision_L2_512_21k`): 241.6M parameters, 87.3 top-1 at 512."""
    model_args = _VARIANTS["mambavision_large2_512_21k"]
    return _create_mambavision("mambavision_large2_512_21k", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_large3_256_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L3-256-21K (`mamba_vision_L3_256_21k`): 739.6M parameters, 87.3 top-1 at 256."""
    model_args = _VARIANTS["mambavision_large3_256_21k"]
    return _create_mambavision("mambavision_large3_256_21k", pretrained, **dict(model_args, **kwargs))


@register_model
def mambavision_large3_512_21k(pretrained: bool = False, **kwargs) -> MambaVision:
    """MambaVision-L3-512-21K (`mamba_vision_L3_512_21k`): 739.6M parameters, 88.1 top-1 at 512."""
    model_args = _VARIANTS["mambavision_large3_512_21k"]
    return _create_mambavision("mambavision_large3_512_21k", pretrained, **dict(model_args, **kwargs))


@register_model
def test_mambavision(pretrained: bool = False, **kwargs) -> MambaVision:
    """A tiny MambaVision (dim 16, depths 1-1-2-2, windows 4/2, layer scale) for fast tests; the golden fixture's."""
    model_args = _VARIANTS["test_mambavision"]
    return _create_mambavision("test_mambavision", pretrained, **dict(model_args, **kwargs))

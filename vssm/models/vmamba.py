"""VMamba: hierarchical visual state-space backbones.

Paper: "VMamba: Visual State Space Model", Liu et al., NeurIPS 2024 (https://arxiv.org/abs/2401.10166).
Original code and weights: https://github.com/MzeroMiko/VMamba (MIT), `classification/models/vmamba.py` @ 2ed52ea.

Two released networks, both built here from shared layers and loading the original checkpoints strictly:

* v2 (`vmamba_tiny_s1l8` = `vmamba_tiny`, `..._s2l5`, `..._s2l15` = `vmamba_small` / `vmamba_base`,
  `..._s1l20`): conv stem, conv downsampling, VSS blocks of SS2D in its "v05 no-z" form (d_state 1) plus an MLP,
  channel-first.
* v0 "vanilla" (`vmamba_*_v0`): patch stem, patch merging, VSS blocks of gated SS2D (d_state 16) and no MLP,
  channel-last.

Either layout runs either network with the same state dict. `scan=` takes any scan order; the SS2D parameter groups
follow its number of routes (VMamba's `cross` has 4). `forward_intermediates` / `features_only` return the
pre-downsample stage maps at strides 4/8/16/32 without an output norm (what the original's detection and
segmentation backbones normalise with their `outnorm{i}`).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Callable, Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import adapt_input_conv, generate_default_cfgs, register_model
from torch import nn

from vssm import scans
from vssm.layers.downsample2d import ConvDownsample, PatchMerging2d
from vssm.layers.fx import fx_leaf
from vssm.layers.layout import Layout, layer_norm
from vssm.layers.ss2d import SS2D, SS2DForm
from vssm.layers.stage import Stage
from vssm.layers.stem2d import ConvStem, PatchStem
from vssm.layers.vss_block import VSSBlock
from vssm.models._checkpoint import check_variant_fits, model_name, read_checkpoint, rename_key, select_weights
from vssm.models._contract import (
    check_float,
    check_global_pool,
    check_image,
    check_image_like,
    check_int,
    check_ints,
    check_output_fmt,
    check_rates,
    forward_stage_intermediates,
    init_linear_and_norms,
    linear_head,
    map_head,
    prune_stages,
    stage_group_matcher,
)
from vssm.models._records import GoldenFixture, PublishedCount, SpeedTarget, TimedNetwork
from vssm.models._registry import build_model

__all__ = ["Downsample", "Stem", "VMamba", "checkpoint_filter_fn", "describe_checkpoint"]

TOTAL_STRIDE = 32


class Stem(enum.Enum):
    """How the image becomes the stride-4 map (the original's `patchembed_version`)."""

    CONV = "conv"  # patchembed_version="v2" (the v2 release): two 3×3 stride-2 convs
    PATCH = "patch"  # patchembed_version="v1" (vanilla v0): one 4×4 stride-4 patch conv


class Downsample(enum.Enum):
    """How a stage's map is halved for the next stage (the original's `downsample_version`)."""

    CONV = "conv"  # downsample_version="v3" (the v2 release): 3×3 stride-2 conv
    PATCH_MERGING = "patch_merging"  # downsample_version="v1" (vanilla v0): 2×2 patch merging


def _as_enum(cls: type[enum.Enum], value: object, arg: str) -> enum.Enum:
    """An enum member from the member itself or its name (case-insensitive), e.g. form="v0"."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str) and value.upper() in cls.__members__:
        return cls[value.upper()]
    names = ", ".join(m.name.lower() for m in cls)
    raise ValueError(f"{arg}: expected a {cls.__name__} or one of {names}, got {value!r}")


class VMambaClassifier(nn.Module):
    """The original's `classifier`: LN over the last map, global average pool, linear head."""

    def __init__(self, num_features: int, num_classes: int, layout: Layout, drop_rate: float, **factory) -> None:
        super().__init__()
        self.norm = layer_norm(layout, num_features, **factory)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, num_classes, **factory) if num_classes > 0 else nn.Identity()


class VMamba(nn.Module):
    """VMamba backbone and classifier.

    Args:
        depths: VSS blocks per stage.
        dims: channels of stage 0 (doubled per stage) or one value per stage.
        d_state: SSM state size N.
        expand: SS2D inner width E = expand · C ("ssm_ratio" in the original).
        dt_rank: rank of the delta projection; None = ceil(C / 16).
        d_conv: SS2D depthwise conv kernel size.
        mlp_ratio: MLP hidden width / C; 0 = no MLP.
        form: SS2D form (`SS2DForm.V05_NOZ` for the v2 release, `SS2DForm.V0` for vanilla v0).
        stem: `Stem.CONV` (v2 release) or `Stem.PATCH` (vanilla v0).
        downsample: `Downsample.CONV` (v2 release) or `Downsample.PATCH_MERGING` (vanilla v0).
        layout: `Layout.CHANNELS_FIRST` or `CHANNELS_LAST`; None = the original's (channel-last for v0 only).
        scan: a scan order (or its registered name) for every SS2D, or a `scans.Schedule` giving block i (counted
            over all stages) its order; an order's number of routes sets that block's parameter groups. VMamba's
            own is `cross`.
        route_addressing: run the scans through the op's `route=` (default) or through materialised copies.
        route_mixer_layer: optional factory `(E, device=, dtype=) -> module` of a per-route module every SS2D applies
            to its routes' outputs before summing them (LocalVMamba's channel attention); None = plain sum.
        in_chans, num_classes, global_pool ("avg" or ""), drop_rate (before the head), drop_path_rate (linear
            over all blocks): timm's meaning.
        device, dtype: factory kwargs for every parameter.
    """

    def __init__(
        self,
        depths: Sequence[int] = (2, 2, 8, 2),
        dims: int | Sequence[int] = 96,
        d_state: int = 1,
        expand: float = 1.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        mlp_ratio: float = 4.0,
        form: SS2DForm | str = SS2DForm.V05_NOZ,
        stem: Stem | str = Stem.CONV,
        downsample: Downsample | str = Downsample.CONV,
        layout: Layout | str | None = None,
        scan: str | scans.ScanOrder | scans.Schedule = "cross",
        route_addressing: bool = True,
        route_mixer_layer: Callable[..., nn.Module] | None = None,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        check_ints("depths", depths)
        if isinstance(dims, int):
            check_int("dims", dims)
        else:
            check_ints("dims", dims)
        for name, value in (("d_state", d_state), ("dt_rank", dt_rank), ("in_chans", in_chans)):
            if value is not None:
                check_int(name, value)
        check_int("num_classes", num_classes, minimum=0, meaning="0: no classifier")
        check_float("expand", expand)
        check_float("mlp_ratio", mlp_ratio, inclusive=True)
        check_rates(drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        form = _as_enum(SS2DForm, form, "form")
        stem = _as_enum(Stem, stem, "stem")
        downsample = _as_enum(Downsample, downsample, "downsample")
        if layout is None:
            layout = Layout.CHANNELS_LAST if form is SS2DForm.V0 else Layout.CHANNELS_FIRST
        layout = _as_enum(Layout, layout, "layout")
        depths = tuple(depths)
        dims = tuple(int(dims * 2**i) for i in range(len(depths))) if isinstance(dims, int) else tuple(dims)
        if len(dims) != len(depths):
            raise ValueError(f"dims: expected one value per stage ({len(depths)} stages), got {dims}")
        check_global_pool(global_pool)
        schedule = scans.as_schedule(scan)

        self.depths, self.dims = depths, dims
        self.form, self.layout, self.schedule = form, layout, schedule
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = dims[-1]
        self.output_fmt = "NCHW" if layout is Layout.CHANNELS_FIRST else "NHWC"

        stem_cls = ConvStem if stem is Stem.CONV else PatchStem
        self.patch_embed = stem_cls(in_chans, dims[0], layout, **factory)

        downsample_cls = ConvDownsample if downsample is Downsample.CONV else PatchMerging2d
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # also under a meta context
        self.layers = nn.ModuleList()
        self.feature_info = []
        for i, dim in enumerate(dims):
            blocks = []
            for block in range(sum(depths[:i]), sum(depths[: i + 1])):
                order = schedule.for_layer(block)
                route_mixer = None if route_mixer_layer is None else route_mixer_layer(int(expand * dim), **factory)
                op = SS2D(
                    dim, d_state, expand, dt_rank, d_conv, form, order, layout, route_addressing, route_mixer,
                    **factory,
                )
                blocks.append(VSSBlock(dim, op, mlp_ratio, rates[block], layout, **factory))
            last = i == len(depths) - 1
            down = nn.Identity() if last else downsample_cls(dim, dims[i + 1], layout, **factory)
            self.layers.append(Stage(blocks, down))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"layers.{i}"))

        self.classifier = VMambaClassifier(self.num_features, num_classes, layout, drop_rate, **factory)
        # The original's `_init_weights`: every linear (incl. the 1×1 `Linear2d`s) trunc-normal(0.02) with zero bias,
        # LayerNorms 1/0; convs keep PyTorch's default; the SS2D parameters keep Mamba's init (raw parameters).
        self.apply(init_linear_and_norms)

    # ------------------------------------------------------------------------------------------ timm interface

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """A_logs and Ds: trained without weight decay in the original (`_no_weight_decay`)."""
        return {name for name, _ in self.named_parameters() if name.endswith((".A_logs", ".Ds"))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return stage_group_matcher("layers", "classifier.norm", coarse)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            check_global_pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.classifier.head = linear_head(self, self.num_features, num_classes)

    def _convert_checkpoint(self, checkpoint: dict) -> dict[str, torch.Tensor]:
        """A read checkpoint -> this model's state dict (the family's `checkpoint_filter_fn`; derived families
        override it and keep `load_pretrained`)."""
        return checkpoint_filter_fn(checkpoint, self)

    @torch.jit.ignore
    def load_pretrained(self, checkpoint_path: str | os.PathLike) -> None:
        """Load an official (or our) checkpoint file; timm calls this for `pretrained=True` (`custom_load`).

        Reads the file weights-only (`read_checkpoint`), takes its model weights (`'model'`, never the EMA copy),
        converts them with `checkpoint_filter_fn` and loads them strictly, adapting the first conv to `in_chans` and
        dropping the head when `num_classes` differs.
        """
        state_dict = self._convert_checkpoint(read_checkpoint(checkpoint_path))
        first_conv = state_dict["patch_embed.0.weight"]
        if first_conv.shape[1] != self.in_chans:
            state_dict["patch_embed.0.weight"] = adapt_input_conv(self.in_chans, first_conv)
        ours = self.state_dict()
        head = ("classifier.head.weight", "classifier.head.bias")
        for key in head:
            if key in state_dict and (key not in ours or state_dict[key].shape != ours[key].shape):
                del state_dict[key]
        result = self.load_state_dict(state_dict, strict=False)
        if result.unexpected_keys or set(result.missing_keys) - set(head):
            raise ValueError(f"checkpoint {checkpoint_path}: did not load strictly: {result}")

    # ----------------------------------------------------------------------------------------------- forward

    @fx_leaf
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """x if the model takes it (TypeError / ValueError naming what is wrong if not)."""
        check_image(x, self.in_chans, TOTAL_STRIDE, "the total stride")
        check_image_like(x, self.patch_embed[0].weight)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the normalised last map, (B, C₃, H/32, W/32) or (B, H/32, W/32, C₃) by layout."""
        x = self.check_input(x)
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return self.classifier.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        channels_first = self.layout is Layout.CHANNELS_FIRST
        if self.global_pool == "avg":
            x = x.mean(dim=(2, 3) if channels_first else (1, 2))
        x = self.classifier.head_drop(x)
        if pre_logits:
            return x
        return self.classifier.head(x) if self.global_pool else map_head(self.classifier.head, x, channels_first)

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
        """Stage maps before each downsample (strides 4, 8, 16, 32), as the original's dense backbones take them.

        Args:
            indices: stages to return (int n = the last n), default all.
            norm: apply the final norm (`classifier.norm`) to the last stage's map.
            stop_early: stop after the last requested stage.
            output_fmt: "NCHW" or "NHWC" for the intermediates; the final output keeps the model's layout.
            intermediates_only: return only the list.
        """
        check_output_fmt(output_fmt, ("NCHW", "NHWC"))
        x = self.check_input(x)
        x, intermediates = forward_stage_intermediates(
            self.layers, self.patch_embed(x), indices, self.classifier.norm if norm else None, stop_early, output_fmt,
            self.layout,
        )
        if intermediates_only:
            return intermediates
        return self.classifier.norm(x), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of `indices` (and the norm / head); returns the kept indices."""
        self.layers, take_indices = prune_stages(self.layers, indices)
        if prune_norm:
            self.classifier.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


# -------------------------------------------------------------------------------------------------- checkpoints

# Legacy v0 names (the original's `VSSM._load_from_state_dict`), applied in this order.
_LEGACY_RENAMES = (
    (re.compile(r"^patch_embed\.proj\."), "patch_embed.0."),
    (re.compile(r"^patch_embed\.norm\."), "patch_embed.2."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+\.)ln_1\."), r"\1norm."),
    (re.compile(r"^(layers\.\d+\.blocks\.\d+\.)self_attention\."), r"\1op."),
    (re.compile(r"^norm\."), "classifier.norm."),
    (re.compile(r"^head\."), "classifier.head."),
)
# The one-file `vmamba.py` keeps the grouped projections as `Linear` modules: same elements, other names/shapes.
_GROUPED_RENAMES = (
    (re.compile(r"\.op\.x_proj\.weight$"), ".op.x_proj_weight"),
    (re.compile(r"\.op\.dt_projs\.weight$"), ".op.dt_projs_weight"),
    (re.compile(r"\.op\.dt_projs\.bias$"), ".op.dt_projs_bias"),
)
_RENAMES = (*_LEGACY_RENAMES, *_GROUPED_RENAMES)


def describe_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """The architecture a VMamba state dict (our/official keys) was saved from: depths, dims, d_state, expand,
    mlp_ratio, form, stem, downsample, num_routes."""
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        match = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    stages = sorted(blocks)
    depths = tuple(len(blocks[s]) for s in stages)
    dims = tuple(state_dict[f"layers.{s}.blocks.0.norm.weight"].shape[0] for s in stages)
    op = "layers.0.blocks.0.op."
    num_routes, inner, _ = state_dict[f"{op}dt_projs_weight"].shape
    d_state = state_dict[f"{op}A_logs"].shape[1]
    gated = state_dict[f"{op}in_proj.weight"].shape[0] == 2 * inner
    mlp = state_dict.get("layers.0.blocks.0.mlp.fc1.weight")
    return dict(
        depths=depths,
        dims=dims,
        d_state=d_state,
        expand=inner / dims[0],
        mlp_ratio=0.0 if mlp is None else mlp.shape[0] / dims[0],
        form=SS2DForm.V0 if gated else SS2DForm.V05_NOZ,
        stem=Stem.CONV if "patch_embed.5.weight" in state_dict else Stem.PATCH,
        downsample=Downsample.PATCH_MERGING if "layers.0.downsample.norm.weight" in state_dict else Downsample.CONV,
        num_routes=num_routes,
    )


def _variant_architecture(kwargs: dict) -> dict:
    """`describe_checkpoint`'s answer for a registered variant's checkpoint, from its kwargs."""
    depths = tuple(kwargs["depths"])
    return dict(
        depths=depths,
        dims=tuple(kwargs["dims"] * 2**i for i in range(len(depths))),
        d_state=kwargs["d_state"],
        expand=kwargs["expand"],
        mlp_ratio=kwargs["mlp_ratio"],
        form=kwargs["form"],
        stem=kwargs["stem"],
        downsample=kwargs["downsample"],
        num_routes=scans.Cross().num_routes,
    )


def _summary(arch: dict) -> str:
    return (
        f"depths {arch['depths']}, dims {arch['dims']}, d_state {arch['d_state']}, expand {arch['expand']:g}, "
        f"mlp_ratio {arch['mlp_ratio']:g}, form {arch['form'].name}, routes {arch['num_routes']}"
    )


def checkpoint_filter_fn(checkpoint: dict, model: VMamba) -> dict[str, torch.Tensor]:
    """An official VMamba checkpoint -> our state dict (strict-loadable).

    Handles `{'model': ...}` training checkpoints (their model weights, what the official validation reports; EMA
    weights only as a bare state dict, e.g. from `vssm.checkpoints.select_weights(..., ema=True)`), the legacy v0
    names, the one-file variant's grouped `x_proj` / `dt_projs` modules, 4-D (out, in, 1, 1) weights of 1×1 layers,
    and drops the dense backbones' `outnorm{i}`. A checkpoint of another variant raises a ValueError that names both
    (the first conv and the classifier head may differ: timm adapts in_chans and num_classes after filtering).
    """
    state_dict, _ = select_weights(checkpoint, what=f"checkpoint for {model_name(model)}")
    expected = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        key = rename_key(key, _RENAMES)
        if key.startswith("outnorm"):
            continue
        target = expected.get(key)
        if target is not None and value.shape != target.shape and value.numel() == target.numel():
            # Linear2d (out, in, 1, 1) and the grouped one-file projections: the same elements in another shape.
            if value.dim() != target.dim() and (value.dim() == 4 or key.endswith(("_proj_weight", "projs_weight"))):
                value = value.reshape(target.shape)
        out[key] = value
    variants = {name: _variant_architecture(kwargs) for name, kwargs in _VARIANTS.items()}
    ignore = ("classifier.head.", "patch_embed.0.weight")
    check_variant_fits(out, model, describe_checkpoint, _summary, variants, ignore)
    return out


# ---------------------------------------------------------------------------------------------------- builders


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VMamba:
    return build_model(VMamba, variant, pretrained, checkpoint_filter_fn, (0, 1, 2, 3), **kwargs)


_RELEASES = "https://github.com/MzeroMiko/VMamba/releases/download/"


def _cfg(url: str = "", **kwargs) -> dict:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.0",
        "classifier": "classifier.head",
        "license": "mit",
        "paper_ids": "arXiv:2401.10166",
        "origin_url": "https://github.com/MzeroMiko/VMamba",
        # The releases are training checkpoints (weights + optimizer + a yacs config): `VMamba.load_pretrained`
        # reads them weights-only and takes 'model', the weights the original's validation reports. For a local
        # copy pass `pretrained_cfg_overlay=dict(file=PATH, custom_load=True)` (timm resets it for user files).
        "custom_load": True,
        **kwargs,
    }


_V2 = dict(form=SS2DForm.V05_NOZ, stem=Stem.CONV, downsample=Downsample.CONV, d_state=1, mlp_ratio=4.0)
_V0 = dict(
    form=SS2DForm.V0, stem=Stem.PATCH, downsample=Downsample.PATCH_MERGING, d_state=16, expand=2.0, mlp_ratio=0.0
)

# Architecture of every registered name (drop_path_rate: the original training recipe's).
_VARIANTS: dict[str, dict] = {
    "vmamba_tiny_s1l8": dict(depths=(2, 2, 8, 2), dims=96, expand=1.0, drop_path_rate=0.2, **_V2),
    "vmamba_tiny_s2l5": dict(depths=(2, 2, 5, 2), dims=96, expand=2.0, drop_path_rate=0.2, **_V2),
    "vmamba_small_s2l15": dict(depths=(2, 2, 15, 2), dims=96, expand=2.0, drop_path_rate=0.3, **_V2),
    "vmamba_base_s2l15": dict(depths=(2, 2, 15, 2), dims=128, expand=2.0, drop_path_rate=0.6, **_V2),
    "vmamba_small_s1l20": dict(depths=(2, 2, 20, 2), dims=96, expand=1.0, drop_path_rate=0.3, **_V2),
    "vmamba_base_s1l20": dict(depths=(2, 2, 20, 2), dims=128, expand=1.0, drop_path_rate=0.5, **_V2),
    "vmamba_tiny_v0": dict(depths=(2, 2, 9, 2), dims=96, drop_path_rate=0.2, **_V0),
    "vmamba_small_v0": dict(depths=(2, 2, 27, 2), dims=96, drop_path_rate=0.3, **_V0),
    "vmamba_base_v0": dict(depths=(2, 2, 27, 2), dims=128, drop_path_rate=0.6, **_V0),
    "test_vmamba": dict(depths=(1, 1, 2, 1), dims=16, expand=1.0, **_V2),
}

default_cfgs = generate_default_cfgs(
    {
        "vmamba_tiny.in1k": _cfg(_RELEASES + "%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth"),
        "vmamba_small.in1k": _cfg(_RELEASES + "%23v2cls/vssm_small_0229_ckpt_epoch_222.pth"),
        "vmamba_base.in1k": _cfg(_RELEASES + "%23v2cls/vssm_base_0229_ckpt_epoch_237.pth"),
        "vmamba_tiny_s1l8.in1k": _cfg(_RELEASES + "%23v2cls/vssm1_tiny_0230s_ckpt_epoch_264.pth"),
        "vmamba_tiny_s2l5.in1k": _cfg(_RELEASES + "%23v2cls/vssm_tiny_0230_ckpt_epoch_262.pth"),
        "vmamba_small_s2l15.in1k": _cfg(_RELEASES + "%23v2cls/vssm_small_0229_ckpt_epoch_222.pth"),
        "vmamba_base_s2l15.in1k": _cfg(_RELEASES + "%23v2cls/vssm_base_0229_ckpt_epoch_237.pth"),
        "vmamba_small_s1l20.in1k": _cfg(_RELEASES + "%23v2cls/vssm1_small_0229s_ckpt_epoch_240.pth"),
        "vmamba_base_s1l20.in1k": _cfg(_RELEASES + "%23v2cls/vssm1_base_0229s_ckpt_epoch_225.pth"),
        "vmamba_tiny_v0.in1k": _cfg(_RELEASES + "%23v0cls/vssmtiny_dp01_ckpt_epoch_292.pth"),
        "vmamba_small_v0.in1k": _cfg(_RELEASES + "%23v0cls/vssmsmall_dp03_ckpt_epoch_238.pth"),
        "vmamba_base_v0.in1k": _cfg(_RELEASES + "%23v0cls/vssmbase_dp06_ckpt_epoch_241.pth"),
        "test_vmamba.untrained": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
    }
)

# What the tools read (vssm.models._records). Headline: VMamba-T[s1l8], whose published count is the most precise (an
# integer in analyze/tp.py).
HEADLINE_VARIANT = "vmamba_tiny"
_REPO_AT = "github.com/MzeroMiko/VMamba at 2ed52ea"
_README = (f"VMamba's README and assets/performance.md ({_REPO_AT}); more digits: its fvcore counter "
           "(classification/models/vmamba.py, VSSM.flops) worked through each layer")
_TP = f"VMamba's analyze/tp.py, the comment on T[s1l8] (`tv2`, an exact integer; {_REPO_AT})"
PUBLISHED_COUNTS = {
    "vmamba_tiny": PublishedCount("4.9", _TP, exact=4_905_609_984),
    "vmamba_tiny_s1l8": PublishedCount("4.9", _TP, exact=4_905_609_984),
    "vmamba_tiny_s2l5": PublishedCount("4.9", _README, derived="4.858"),
    "vmamba_small": PublishedCount("8.7", _README, derived="8.716"),
    "vmamba_small_s2l15": PublishedCount("8.7", _README, derived="8.716"),
    "vmamba_base": PublishedCount("15.4", _README, derived="15.359"),
    "vmamba_base_s2l15": PublishedCount("15.4", _README, derived="15.359"),
    "vmamba_small_s1l20": PublishedCount("8.6", _README, derived="8.612"),
    "vmamba_base_s1l20": PublishedCount("15.2", _README, derived="15.221"),
    "vmamba_tiny_v0": PublishedCount("5.6", _README, derived="5.627"),
    "vmamba_small_v0": PublishedCount("11.2", _README, derived="11.232"),
    "vmamba_base_v0": PublishedCount("18.0", _README, derived="18.020"),
}
GOLDEN_FIXTURES = {
    "vmamba_test_s1l8": GoldenFixture("test_vmamba"),
    "vmamba_test_v0": GoldenFixture("vmamba_tiny_v0", dict(depths=(1, 1, 2, 1), dims=16)),
}
_SWIN_T = "swin_tiny_patch4_window7_224"
SPEED_TARGETS = (
    SpeedTarget("vmamba_tiny", _SWIN_T, 0.5),
    SpeedTarget(TimedNetwork("vmamba_tiny (channels_last layout)", "vmamba_tiny", dict(layout="channels_last")),
                _SWIN_T, None),
    SpeedTarget("vmamba_tiny_v0", _SWIN_T, None),
)
TEST_SPEED_TARGETS = (SpeedTarget("test_vmamba", "test_resnet", 0.5, batch=2, input_size=(3, 64, 64)),)


@register_model
def vmamba_tiny(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T[s1l8], the README's tiny model: 30.2M parameters, 82.6 top-1."""
    model_args = _VARIANTS["vmamba_tiny_s1l8"]
    return _create_vmamba("vmamba_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_small(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S[s2l15]: 50.1M parameters, 83.6 top-1."""
    model_args = _VARIANTS["vmamba_small_s2l15"]
    return _create_vmamba("vmamba_small", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_base(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B[s2l15]: 88.6M parameters, 83.9 top-1."""
    model_args = _VARIANTS["vmamba_base_s2l15"]
    return _create_vmamba("vmamba_base", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_tiny_s1l8(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T[s1l8] (`vmambav2v_tiny_224`)."""
    model_args = _VARIANTS["vmamba_tiny_s1l8"]
    return _create_vmamba("vmamba_tiny_s1l8", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_tiny_s2l5(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-T[s2l5] (`vmambav2_tiny_224`, the detection configs' `tiny1`): 30.7M parameters, 82.5 top-1."""
    model_args = _VARIANTS["vmamba_tiny_s2l5"]
    return _create_vmamba("vmamba_tiny_s2l5", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_small_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S[s2l15] (`vmambav2_small_224`), = `vmamba_small`."""
    model_args = _VARIANTS["vmamba_small_s2l15"]
    return _create_vmamba("vmamba_small_s2l15", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_base_s2l15(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B[s2l15] (`vmambav2_base_224`), = `vmamba_base`."""
    model_args = _VARIANTS["vmamba_base_s2l15"]
    return _create_vmamba("vmamba_base_s2l15", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_small_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-S[s1l20] (`vmambav2v_small_224`): 49.0M parameters, 83.3 top-1."""
    model_args = _VARIANTS["vmamba_small_s1l20"]
    return _create_vmamba("vmamba_small_s1l20", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_base_s1l20(pretrained: bool = False, **kwargs) -> VMamba:
    """VMamba-B[s1l20] (`vmambav2v_base_224`): 86.6M parameters, 83.8 top-1."""
    model_args = _VARIANTS["vmamba_base_s1l20"]
    return _create_vmamba("vmamba_base_s1l20", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_tiny_v0(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla VMamba-T (`vmambav0_tiny_224`): 22.9M parameters, 82.2 top-1."""
    model_args = _VARIANTS["vmamba_tiny_v0"]
    return _create_vmamba("vmamba_tiny_v0", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_small_v0(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla VMamba-S (`vmambav0_small_224`): 44.4M parameters, 83.5 top-1."""
    model_args = _VARIANTS["vmamba_small_v0"]
    return _create_vmamba("vmamba_small_v0", pretrained, **dict(model_args, **kwargs))


@register_model
def vmamba_base_v0(pretrained: bool = False, **kwargs) -> VMamba:
    """Vanilla VMamba-B (`vmambav0_base_224`): 76.3M parameters, 83.7 top-1."""
    model_args = _VARIANTS["vmamba_base_v0"]
    return _create_vmamba("vmamba_base_v0", pretrained, **dict(model_args, **kwargs))


@register_model
def test_vmamba(pretrained: bool = False, **kwargs) -> VMamba:
    """A tiny v2 model (T[s1l8] switches, depths 1-1-2-1, dims 16) for fast tests; the golden fixture's shape."""
    model_args = _VARIANTS["test_vmamba"]
    return _create_vmamba("test_vmamba", pretrained, **dict(model_args, **kwargs))

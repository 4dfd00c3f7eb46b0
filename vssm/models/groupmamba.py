"""GroupMamba: channel groups that each scan one direction, with channel affinity modulation.

Paper: "GroupMamba: Efficient Group-Based Visual State Space Model", Shaker et al., CVPR 2025
(https://arxiv.org/abs/2407.13772). Original code and weights: https://github.com/Amshaker/GroupMamba (MIT),
`classification/models/groupmamba.py` @ c1800ed; ImageNet-1k checkpoints on Hugging Face
(`Abdelrahman-shaker/GroupMamba-{Tiny,Small,Base}`).

The network: a conv stem (three convs + BN + ReLU at stride 2, a stride-2 conv + LN) and four stages, each a 3×3
stride-2 conv + LN (after the first), blocks of `x + mixer(x)`, `x + mlp(norm2(x))` (the mixer is the modulated
group mamba layer of `vssm.layers.groupmamba_mixer`, the MLP PVTv2's with a depthwise conv) and a LN (the last
stage's is the final norm). The head: the mean token goes through one class block (mixer + MLP on that single token,
each with a post-norm) and the final norm, then a classifier and a distillation classifier, averaged at inference
(DeiT's distilled head; the original returns both while training, `set_distilled_training(True)` here).

Our layout differs from the original's in names only (`checkpoint_filter_fn` maps the released files): the stages
are `stages.{i}.downsample / blocks / norm`, the four VSSS blocks `mamba_g1..4` of a layer one `vsss` module with
their weights stacked, and the maps stay channel-last between stages. `scan=` takes any scan order: its K routes
set K channel groups (GroupMamba's own is `cross`: row-major, column-major, both reversed). `forward_intermediates`
/ `features_only` return the stage maps before each stage's norm (strides 4/8/16/32).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models import checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.pvt_v2 import MlpWithDepthwiseConv
from torch import nn

from vssm import scans
from vssm.layers.downsample2d import ConvDownsample
from vssm.layers.fx import fx_leaf
from vssm.layers.groupmamba_mixer import ChannelAffinityMamba
from vssm.layers.layout import LAYER_NORM_EPS, Layout
from vssm.models._checkpoint import check_variant_fits, model_name, rename_key, select_weights
from vssm.models._contract import (
    check_float,
    check_global_pool,
    check_image,
    check_image_like,
    check_int,
    check_ints,
    check_output_fmt,
    check_rates,
    linear_head,
    map_head,
)
from vssm.models._records import GoldenFixture, PublishedCount, SpeedTarget
from vssm.models._registry import build_model

__all__ = ["GroupMamba", "checkpoint_filter_fn", "describe_checkpoint"]

TOTAL_STRIDE = 32
NORM_EPS = 1e-6  # the released variants' `norm_layer` (block, stage and class-block norms); the rest use 1e-5


class GroupMambaStem(nn.Module):
    """7×7/2 conv, two 3×3 convs (each + BN + ReLU, `stem_dim` channels), a 3×3/2 conv and LN: (B, C_in, H, W) ->
    (B, H/4, W/4, C), channel-last. Keys as the original's `Stem`: `conv.{0,1,3,4,6,7}`, `proj`, `norm`."""

    def __init__(self, in_chans: int, stem_dim: int, dim: int, **factory) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_chans, stem_dim, 7, stride=2, padding=3, bias=False, **factory),
            nn.BatchNorm2d(stem_dim, **factory),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_dim, stem_dim, 3, padding=1, bias=False, **factory),
            nn.BatchNorm2d(stem_dim, **factory),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_dim, stem_dim, 3, padding=1, bias=False, **factory),
            nn.BatchNorm2d(stem_dim, **factory),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Conv2d(stem_dim, dim, 3, stride=2, padding=1, **factory)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(self.conv(x)).permute(0, 2, 3, 1))


class GroupMambaBlock(nn.Module):
    """x <- x + DropPath(mixer(x)); x <- x + DropPath(mlp(norm2(x))), on (B, H, W, C) maps (the mixer normalises its
    own input). The MLP is PVTv2's: fc1 -> 3×3 depthwise conv -> GELU -> fc2."""

    def __init__(
        self, dim: int, mlp_ratio: float, drop_path: float, norm_eps: float, mixer_kwargs: dict, **factory
    ) -> None:
        super().__init__()
        self.attn = ChannelAffinityMamba(dim, **mixer_kwargs, **factory)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, **factory)
        self.mlp = MlpWithDepthwiseConv(dim, int(dim * mlp_ratio), **factory)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(x))
        mlp = self.mlp(self.norm2(x).flatten(1, 2), x.shape[1:3])
        return x + self.drop_path(mlp.view_as(x))


class GroupMambaStage(nn.Module):
    """`downsample` (the stem for stage 0), the blocks, then `norm` (identity in the last stage, whose norm is the
    model's final norm). `forward_blocks` gives the map before the norm, what dense backbones take."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module], norm: nn.Module) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)
        self.norm = norm
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.forward_blocks(x))


class ClassBlock(nn.Module):
    """The original's `post_network`: on the mean token t (B, C), t <- t + norm1(mixer(t as a 1×1 map));
    t <- t + mlp(norm2(t))."""

    def __init__(self, dim: int, mlp_ratio: float, norm_eps: float, mixer_kwargs: dict, **factory) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, **factory)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, **factory)
        self.attn = ChannelAffinityMamba(dim, **mixer_kwargs, **factory)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), **factory)

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        token = token + self.norm1(self.attn(token[:, None, None, :])).flatten(1)
        return token + self.mlp(self.norm2(token))


def _init_weights(module: nn.Module) -> None:
    """The original's `_init_weights`: Linear trunc-normal(0.02) with zero bias, LayerNorm 1 / 0, Conv2d
    N(0, 2 / fan_out) with zero bias (fan_out = k² · out / groups); BatchNorm and raw parameters keep their own."""
    weight = getattr(module, "weight", None)
    if weight is None or weight.is_meta:
        return
    if isinstance(module, nn.Linear):
        trunc_normal_(weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(weight, 0, (2.0 / fan_out) ** 0.5)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class GroupMamba(nn.Module):
    """GroupMamba backbone and classifier.

    Args:
        depths: blocks per stage.
        embed_dims: channels of each stage (each divisible by the scan order's number of routes).
        mlp_ratios: MLP hidden width / C of each stage (the last stage's also for the class block).
        stem_hidden_dim: channels of the stem's first three convs.
        d_state, expand, dt_rank, d_conv: every VSSS block's SSM state size, inner width / group width, delta rank
            (None = ceil(group width / 16)) and depthwise conv size (the original's defaults: 1, 1, None, 3).
        reduction: the channel affinity's fc1 reduces C to C // reduction.
        norm_eps: eps of the block, stage and class-block norms (the released variants' 1e-6).
        distillation: a second (distillation) classifier `dist_head`, averaged with `head` at inference.
        scan: a scan order (or its registered name) for every mixer, or a `scans.Schedule` giving block i (counted
            over all stages, the class block last) its order; its K routes make K channel groups.
        route_addressing: run the scans through the op's `route=` (default) or through gathered copies.
        in_chans, num_classes, global_pool ("avg": the mean token through the class block, or "": no pooling),
            drop_rate (before the heads), drop_path_rate (linear over the stage blocks): timm's meaning.
        device, dtype: factory kwargs for every parameter.
    """

    def __init__(
        self,
        depths: Sequence[int] = (3, 4, 9, 3),
        embed_dims: Sequence[int] = (64, 128, 348, 448),
        mlp_ratios: Sequence[float] = (8, 8, 4, 4),
        stem_hidden_dim: int = 32,
        d_state: int = 1,
        expand: float = 1.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        reduction: int = 16,
        norm_eps: float = NORM_EPS,
        distillation: bool = True,
        scan: str | scans.ScanOrder | scans.Schedule = "cross",
        route_addressing: bool = True,
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
        check_ints("embed_dims", embed_dims)
        for name, value in (("stem_hidden_dim", stem_hidden_dim), ("d_state", d_state), ("dt_rank", dt_rank),
                            ("d_conv", d_conv), ("reduction", reduction), ("in_chans", in_chans)):
            if value is not None:
                check_int(name, value)
        check_int("num_classes", num_classes, minimum=0, meaning="0: no classifier")
        if isinstance(mlp_ratios, (str, bytes)) or not isinstance(mlp_ratios, Sequence):
            raise TypeError(f"mlp_ratios: expected one number per stage, got {type(mlp_ratios).__name__}")
        for i, ratio in enumerate(mlp_ratios):
            check_float(f"mlp_ratios[{i}]", ratio)
        check_float("expand", expand)
        check_float("norm_eps", norm_eps)
        check_rates(drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        check_global_pool(global_pool)
        depths, embed_dims, mlp_ratios = tuple(depths), tuple(embed_dims), tuple(mlp_ratios)
        if not len(embed_dims) == len(mlp_ratios) == len(depths):
            raise ValueError(
                f"embed_dims, mlp_ratios: expected one value per stage ({len(depths)} stages), got {embed_dims} and "
                f"{mlp_ratios}"
            )
        schedule = scans.as_schedule(scan)
        for i, dim in enumerate(embed_dims):
            if dim < reduction:
                raise ValueError(f"embed_dims[{i}]: the channel affinity maps C to C // reduction: expected at least "
                                 f"reduction = {reduction}, got {dim}")
            for block in range(sum(depths[:i]), sum(depths[: i + 1]) + (i == len(depths) - 1)):  # + the class block
                order = schedule.for_layer(block)
                if dim % order.num_routes:
                    raise ValueError(
                        f"embed_dims[{i}]: expected a multiple of {order.num_routes} (one channel group per route of "
                        f"the scan order {order!r}), got {dim}"
                    )

        class_order = schedule.for_layer(sum(depths))
        try:
            class_order.tables(1, 1)
        except ValueError as error:
            raise ValueError(f"scan: the class block scans the mean token as a 1×1 grid, which {class_order!r} cannot "
                             f"route ({error})") from None

        self.depths, self.embed_dims = depths, embed_dims
        self.schedule = schedule
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.output_fmt = "NCHW"
        self.distilled_training = False

        def mixer_kwargs(block: int) -> dict:
            return dict(
                reduction=reduction, d_state=d_state, expand=expand, dt_rank=dt_rank, d_conv=d_conv,
                scan=schedule.for_layer(block), route_addressing=route_addressing,
            )

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # also under a meta context
        self.stages = nn.ModuleList()
        self.feature_info = []
        for i, dim in enumerate(embed_dims):
            if i == 0:
                downsample = GroupMambaStem(in_chans, stem_hidden_dim, dim, **factory)
            else:
                downsample = ConvDownsample(embed_dims[i - 1], dim, Layout.CHANNELS_LAST, **factory)
            first = sum(depths[:i])
            blocks = [
                GroupMambaBlock(dim, mlp_ratios[i], rates[b], norm_eps, mixer_kwargs(b), **factory)
                for b in range(first, first + depths[i])
            ]
            last = i == len(depths) - 1
            norm = nn.Identity() if last else nn.LayerNorm(dim, eps=norm_eps, **factory)
            self.stages.append(GroupMambaStage(downsample, blocks, norm))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"stages.{i}"))

        self.class_block = ClassBlock(embed_dims[-1], mlp_ratios[-1], norm_eps, mixer_kwargs(sum(depths)), **factory)
        self.norm = nn.LayerNorm(embed_dims[-1], eps=norm_eps, **factory)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes, **factory) if num_classes > 0 else nn.Identity()
        self.dist_head = None
        if distillation:
            self.dist_head = nn.Linear(self.num_features, num_classes, **factory) if num_classes > 0 else nn.Identity()
        # The mixers' raw parameters keep their own init; their depthwise conv gets `_init_weights`'s, as its own.
        self.apply(_init_weights)

    # ------------------------------------------------------------------------------------------ timm interface

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """A_logs and Ds: marked `_no_weight_decay` in the original."""
        return {name for name, _ in self.named_parameters() if name.endswith((".A_logs", ".Ds"))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        if coarse:
            return dict(stem=r"^stages\.0\.downsample", blocks=[(r"^stages\.(\d+)", None), (r"^class_block", (99999,))])
        return dict(
            stem=r"^stages\.0\.downsample",
            blocks=[
                (r"^stages\.(\d+)\.downsample", (-1,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^stages\.(\d+)\.norm", (99998,)),
                (r"^class_block", (99999,)),
                (r"^norm", (100000,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def set_distilled_training(self, enable: bool = True) -> None:
        """Return (head, dist_head) logits in training mode, for a distillation loss (the original's behaviour)."""
        self.distilled_training = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            check_global_pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = linear_head(self, self.num_features, num_classes)
        if self.dist_head is not None:
            self.dist_head = linear_head(self, self.num_features, num_classes)

    # ----------------------------------------------------------------------------------------------- forward

    @fx_leaf
    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """x if the model takes it (TypeError / ValueError naming what is wrong if not)."""
        check_image(x, self.in_chans, TOTAL_STRIDE, "the total stride")
        check_image_like(x, self.stages[0].downsample.conv[0].weight)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the last stage's map (B, C₃, H/32, W/32), before the class block."""
        x = self.check_input(x)
        for stage in self.stages:
            x = stage(x)
        return x.permute(0, 3, 1, 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """"avg": the mean token through the class block and the final norm -> the classifiers (averaged with the
        distillation classifier). "": the final norm and the classifier at every position, (B, classes, H, W)."""
        x = x.permute(0, 2, 3, 1)  # the network runs channel-last
        if self.global_pool == "avg":
            x = self.class_block(x.mean(dim=(1, 2)))
        x = self.head_drop(self.norm(x))
        if pre_logits:
            return x if self.global_pool else x.permute(0, 3, 1, 2)
        if not self.global_pool:
            return map_head(self.head, x.permute(0, 3, 1, 2))
        if self.dist_head is None:
            return self.head(x)
        logits, distilled = self.head(x), self.dist_head(x)
        if self.distilled_training and self.training and not torch.jit.is_scripting():
            return logits, distilled
        return (logits + distilled) / 2

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
        """Stage maps before each stage's norm (strides 4, 8, 16, 32).

        Args:
            indices: stages to return (int n = the last n), default all.
            norm: apply the final norm to the last stage's map.
            stop_early: stop after the last requested stage.
            output_fmt: "NCHW" or "NHWC" for the intermediates; the final output is NCHW, as `forward_features`'.
            intermediates_only: return only the list.
        """
        check_output_fmt(output_fmt, ("NCHW", "NHWC"))
        x = self.check_input(x)
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last = len(self.stages) - 1
        intermediates = []
        for i, stage in enumerate(self.stages[: max_index + 1] if stop_early else self.stages):
            x = stage.forward_blocks(x)
            if i in take_indices:
                feature = self.norm(x) if norm and i == last else x
                intermediates.append(feature.permute(0, 3, 1, 2) if output_fmt == "NCHW" else feature)
            x = stage.norm(x)
        if intermediates_only:
            return intermediates
        return x.permute(0, 3, 1, 2), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of `indices` and the kept last stage's norm (and the final norm / the class
        block and heads); returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        self.stages[-1].norm = nn.Identity()  # it follows the tap, as the next stage's downsample does elsewhere
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.class_block = nn.Identity()
            self.reset_classifier(0, "")
        return take_indices


# -------------------------------------------------------------------------------------------------- checkpoints

_FIRST_CONV = "stages.0.downsample.conv.0"
# The original's per-stage modules, numbered from 1: `patch_embed{i}` (the stem for i = 1), `block{i}`, `norm{i}`.
_ORIGINAL_STAGE = re.compile(r"^(patch_embed|block|norm)(\d+)\.")
# Inside a downsample (`ConvDownsample` keeps the layout placeholders' indices) and the rest, applied in order.
_DOWNSAMPLE_RENAMES = ((re.compile(r"^proj\."), "1."), (re.compile(r"^norm\."), "3."))
_RENAMES = (
    (re.compile(r"^post_network\.0\."), "class_block."),
    (re.compile(r"\.mlp\.dwconv\.dwconv\."), ".mlp.dwconv."),
)
# The four VSSS blocks `attn.mamba_g{k}.<name>` -> our `attn.vsss.<name>`: concatenated along the channels, or
# stacked along a new group dimension (renamed).
_VSSS = re.compile(r"^(.*\.attn\.)mamba_g(\d+)\.(.+)$")
_VSSS_CONCATENATED = (
    "conv2d.weight", "conv2d.bias", "x_proj_weight", "dt_projs_weight", "dt_projs_bias", "A_logs", "Ds",
)
_VSSS_STACKED = {
    "in_proj.weight": "in_proj_weight",
    "out_proj.weight": "out_proj_weight",
    "out_norm.weight": "out_norm_weight",
    "out_norm.bias": "out_norm_bias",
}


def _rename_stage_key(key: str, num_stages: int) -> str:
    """An original per-stage key -> ours; other keys unchanged."""
    match = _ORIGINAL_STAGE.match(key)
    if match is None:
        return key
    kind, stage, rest = match[1], int(match[2]) - 1, key[match.end():]
    if kind == "block":
        return f"stages.{stage}.blocks.{rest}"
    if kind == "norm":
        return f"norm.{rest}" if stage == num_stages - 1 else f"stages.{stage}.norm.{rest}"
    return f"stages.{stage}.downsample.{rest if stage == 0 else rename_key(rest, _DOWNSAMPLE_RENAMES)}"


def _from_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original's keys -> ours (our own keys pass unchanged)."""
    num_stages = max((int(m[2]) for m in map(_ORIGINAL_STAGE.match, state_dict) if m), default=0)
    out: dict[str, torch.Tensor] = {}
    groups: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    for key, value in state_dict.items():
        key = rename_key(_rename_stage_key(key, num_stages), _RENAMES)
        vsss = _VSSS.match(key)
        if vsss and (vsss[3] in _VSSS_CONCATENATED or vsss[3] in _VSSS_STACKED):
            groups.setdefault((vsss[1], vsss[3]), {})[int(vsss[2])] = value
        else:
            out[key] = value
    for (prefix, name), by_group in groups.items():
        tensors = [by_group[k] for k in sorted(by_group)]
        if name in _VSSS_STACKED:
            out[f"{prefix}vsss.{_VSSS_STACKED[name]}"] = torch.stack(tensors)
        else:
            out[f"{prefix}vsss.{name}"] = torch.cat(tensors)
    return out


def describe_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """The architecture a GroupMamba state dict (our keys) was saved from: depths, embed_dims, mlp_ratios,
    stem_hidden_dim, groups, distillation."""
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        match = re.match(r"stages\.(\d+)\.blocks\.(\d+)\.", key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    stages = sorted(blocks)
    dims = tuple(state_dict[f"stages.{s}.blocks.0.norm2.weight"].shape[0] for s in stages)
    ratios = tuple(state_dict[f"stages.{s}.blocks.0.mlp.fc1.weight"].shape[0] / d for s, d in zip(stages, dims))
    return dict(
        depths=tuple(len(blocks[s]) for s in stages),
        embed_dims=dims,
        mlp_ratios=ratios,
        stem_hidden_dim=state_dict[_FIRST_CONV + ".weight"].shape[0],
        groups=state_dict["stages.0.blocks.0.attn.vsss.in_proj_weight"].shape[0],
        distillation="dist_head.weight" in state_dict,
    )


def _variant_architecture(kwargs: dict) -> dict:
    """`describe_checkpoint`'s answer for a registered variant's checkpoint, from its kwargs."""
    return dict(
        depths=tuple(kwargs["depths"]),
        embed_dims=tuple(kwargs["embed_dims"]),
        mlp_ratios=tuple(float(r) for r in kwargs["mlp_ratios"]),
        stem_hidden_dim=kwargs["stem_hidden_dim"],
        groups=scans.Cross().num_routes,
        distillation=True,
    )


def _summary(arch: dict) -> str:
    ratios = ", ".join(f"{r:g}" for r in arch["mlp_ratios"])
    return (
        f"depths {arch['depths']}, embed_dims {arch['embed_dims']}, mlp_ratios ({ratios}), stem_hidden_dim "
        f"{arch['stem_hidden_dim']}, groups {arch['groups']}"
    )


def checkpoint_filter_fn(checkpoint: dict, model: GroupMamba) -> dict[str, torch.Tensor]:
    """A released GroupMamba checkpoint (a bare state dict, or `{'model': ...}`) -> our state dict (strict-loadable).

    Renames the original's modules to ours (`patch_embed{i}` / `block{i}` / `norm{i}` -> `stages.{i-1}.*`, the last
    `norm{S}` -> `norm`, `post_network.0` -> `class_block`, `mlp.dwconv.dwconv` -> `mlp.dwconv`) and stacks each
    layer's four VSSS blocks `mamba_g1..4` into `vsss`. Our own state dicts pass unchanged. A checkpoint of another
    variant raises a ValueError that names both (the first conv and the classifiers may differ: timm adapts in_chans
    and num_classes after filtering).
    """
    state_dict, _ = select_weights(checkpoint, what=f"checkpoint for {model_name(model)}")
    out = _from_original(state_dict)
    variants = {name: _variant_architecture(kwargs) for name, kwargs in _VARIANTS.items()}
    ignore = ("head.", "dist_head.", _FIRST_CONV + ".weight")
    check_variant_fits(out, model, describe_checkpoint, _summary, variants, ignore)
    return out


# ---------------------------------------------------------------------------------------------------- builders


def _create_groupmamba(variant: str, pretrained: bool = False, **kwargs) -> GroupMamba:
    return build_model(GroupMamba, variant, pretrained, checkpoint_filter_fn, (0, 1, 2, 3), **kwargs)


def _cfg(hf_hub_id: str = "", filename: str = "", **kwargs) -> dict:
    # The released files are bare state dicts (the EMA model's, which the original's eval.py loads): timm's own loader
    # reads them weights-only and converts them with `checkpoint_filter_fn`. The original repository links the hub
    # repositories, not the files: timm's default names are not there, so each file is named.
    return {
        "url": f"https://huggingface.co/{hf_hub_id}/resolve/main/{filename}" if hf_hub_id else "",
        "hf_hub_id": hf_hub_id or None,
        "hf_hub_filename": filename or None,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,  # the original's evaluation: resize to 256, centre crop 224
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": _FIRST_CONV,
        "classifier": ("head", "dist_head"),
        "license": "mit",
        "paper_ids": "arXiv:2407.13772",
        "origin_url": "https://github.com/Amshaker/GroupMamba",
        **kwargs,
    }


# Architecture of every registered name (the original's `groupmamba_*` functions; drop_path_rate: its train.py's).
_VARIANTS: dict[str, dict] = {
    "groupmamba_tiny": dict(
        depths=(3, 4, 9, 3), embed_dims=(64, 128, 348, 448), mlp_ratios=(8, 8, 4, 4), stem_hidden_dim=32,
        drop_path_rate=0.05,
    ),
    "groupmamba_small": dict(
        depths=(3, 4, 16, 3), embed_dims=(64, 128, 348, 512), mlp_ratios=(8, 8, 4, 4), stem_hidden_dim=64,
        drop_path_rate=0.05,
    ),
    "groupmamba_base": dict(
        depths=(3, 6, 21, 3), embed_dims=(96, 192, 424, 512), mlp_ratios=(8, 8, 4, 4), stem_hidden_dim=64,
        drop_path_rate=0.05,
    ),
    "test_groupmamba": dict(
        depths=(1, 1, 2, 1), embed_dims=(16, 32, 48, 64), mlp_ratios=(2, 2, 2, 2), stem_hidden_dim=8,
    ),
}

default_cfgs = generate_default_cfgs(
    {
        # Tiny's and Small's file names are the hub's own listings (Tiny: commit b57ab88, 93,888,215 bytes, sha256
        # 4c8e15f2...; Small: 140 MB); Base's follows their pattern, its listing was not readable here.
        "groupmamba_tiny.in1k": _cfg("Abdelrahman-shaker/GroupMamba-Tiny", "groupmamba_tiny_ema.pth"),
        "groupmamba_small.in1k": _cfg("Abdelrahman-shaker/GroupMamba-Small", "groupmamba_small_ema.pth"),
        "groupmamba_base.in1k": _cfg("Abdelrahman-shaker/GroupMamba-Base", "groupmamba_base_ema.pth"),
        "test_groupmamba.untrained": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
    }
)

# What the tools read (vssm.models._records).
HEADLINE_VARIANT = "groupmamba_tiny"
GOLDEN_FIXTURES = {"groupmamba_test": GoldenFixture("test_groupmamba")}
# The paper's table (arXiv:2407.13772, CVPR 2025: 4.5 / 7.0 / 14 G; the authors' project page prints 4.6 for T). The
# repository calls no counter; `derived` is its model code (Amshaker/GroupMamba @ c1800ed, one version since the first
# commit) under VMamba's fvcore counter, whose selective-scan handle its csms6s.py carries. T and S are 4.65-4.71 /
# 7.21-7.29 G under every counter tried (fvcore with and without the handle, mmcv's hooks, thop, ptflops,
# FlopCounterMode); the numbers are in model_cards/groupmamba.md's Limitations.
_PAPER = ("GroupMamba paper, ImageNet-1k table (arXiv:2407.13772); more digits: the released model code "
          "(github.com/Amshaker/GroupMamba at c1800ed) under VMamba's fvcore counter")
_NOT_REPRODUCED = "the paper's value: not what the released code gives under any counter tried (the card's Limitations)"
PUBLISHED_COUNTS = {
    "groupmamba_tiny": PublishedCount("4.5", _PAPER, derived="4.706", note=_NOT_REPRODUCED),
    "groupmamba_small": PublishedCount("7.0", _PAPER, derived="7.281", note=_NOT_REPRODUCED),
    "groupmamba_base": PublishedCount("14", _PAPER, derived="14.19"),
}
# Swin-T: the timm model of similar GMACs (the targets table shows both), the baseline VMamba-T is held to as well.
SPEED_TARGETS = (SpeedTarget("groupmamba_tiny", "swin_tiny_patch4_window7_224", 0.5),)
TEST_SPEED_TARGETS = (SpeedTarget("test_groupmamba", "test_resnet", 0.5, batch=2, input_size=(3, 64, 64)),)


@register_model
def groupmamba_tiny(pretrained: bool = False, **kwargs) -> GroupMamba:
    """GroupMamba-T: 23M parameters, 83.3 top-1 (the original's README)."""
    model_args = _VARIANTS["groupmamba_tiny"]
    return _create_groupmamba("groupmamba_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def groupmamba_small(pretrained: bool = False, **kwargs) -> GroupMamba:
    """GroupMamba-S: 34M parameters, 83.9 top-1 (the original's README)."""
    model_args = _VARIANTS["groupmamba_small"]
    return _create_groupmamba("groupmamba_small", pretrained, **dict(model_args, **kwargs))


@register_model
def groupmamba_base(pretrained: bool = False, **kwargs) -> GroupMamba:
    """GroupMamba-B: 57M parameters, 84.5 top-1 (the original's README)."""
    model_args = _VARIANTS["groupmamba_base"]
    return _create_groupmamba("groupmamba_base", pretrained, **dict(model_args, **kwargs))


@register_model
def test_groupmamba(pretrained: bool = False, **kwargs) -> GroupMamba:
    """A tiny GroupMamba (depths 1-1-2-1, dims 16-32-48-64, stem 8) for fast tests; the golden fixture's shape."""
    model_args = _VARIANTS["test_groupmamba"]
    return _create_groupmamba("test_groupmamba", pretrained, **dict(model_args, **kwargs))

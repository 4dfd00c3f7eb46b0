"""PlainMamba: a plain (single-resolution) stack of Mamba layers that scan continuous 2-D zigzags with
direction-aware B.

Paper: "PlainMamba: Improving Non-Hierarchical Mamba in Visual Recognition", Yang et al., BMVC 2024,
arXiv:2403.17695. Original code and weights: https://github.com/ChenhongyiYang/PlainMamba (Apache-2.0), an mmcls
`ImageClassifier` over its `PlainMamba` backbone with a token-mean neck and a linear head.

    x (B, 3, 224, 224) -> conv patch embedding (B, 196, D) -> + pos_embed (bicubic-resampled for other sizes)
      -> depth × [x = x + drop_path(PlainMamba2D(LayerNorm(x))); layers_with_dwconv: x = GELU(BN(dwconv3×3(x)))]
      -> LayerNorm(eps 1e-6) -> mean over tokens -> head

The mixer (`vssm.layers.plainmamba_mixer`) reads four routes, `scans.get("zigzag_bidirectional")`: the row and
column snakes from the top-left corner, each forwards and backwards. `scan=` swaps them for any order whose routes
visit every token once; the mixer's weights do not depend on the number of routes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, resample_abs_pos_embed, to_2tuple, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vssm import scans
from vssm.layers.fx import fx_leaf
from vssm.layers.plainmamba_mixer import PlainMamba2D, PlainRoutes, plain_routes
from vssm.layers.plainmamba_stem import ConvPatchEmbed
from vssm.layers.ssm_core import SSMConfig
from vssm.models._checkpoint import check_variant_fits, checkpoint_family, family_hint, model_name, select_weights
from vssm.models._contract import (
    check_float,
    check_image,
    check_image_like,
    check_int,
    check_output_fmt,
    check_rates,
    init_linear_and_norms,
    linear_head,
)
from vssm.models._records import GoldenFixture, PublishedCount, SpeedTarget
from vssm.models._registry import build_model
from vssm.scans.base import cached_table

__all__ = ["PlainMamba", "PlainMambaLayer", "checkpoint_filter_fn"]

GLOBAL_POOLS = ("avg",)


class PlainMambaLayer(nn.Module):
    """x + drop_path(mixer(LayerNorm(x))), then (with_dwconv) a depthwise 3×3 conv, BN and GELU that replace x."""

    def __init__(
        self,
        dim: int,
        ssm: SSMConfig,
        with_dwconv: bool,
        drop_path: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(dim, **dd)
        self.mamba = PlainMamba2D(dim, ssm, **dd)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.dw = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False, **dd), nn.BatchNorm2d(dim, **dd), nn.GELU()
        ) if with_dwconv else None

    def forward(self, x: Tensor, grid: tuple[int, int], routes: PlainRoutes) -> Tensor:
        """x: (B, L, D) tokens of `grid` -> (B, L, D)."""
        x = x + self.drop_path(self.mamba(self.norm(x), grid, routes))
        if self.dw is not None:
            x = self.dw(x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *grid)).flatten(2).transpose(1, 2)
        return x


class PlainMamba(nn.Module):
    """PlainMamba classifier (timm interface).

    Args:
        img_size: the input size the position embedding is trained for; other sizes are taken, the embedding is then
            resampled (bicubic), as the original does.
        patch_size: total stride of the patch embedding (even). in_chans, num_classes: input channels and classes
            (0: no head, `forward` returns the pooled features).
        global_pool: 'avg', the mean over tokens (the original's `CustomAveragePooling` neck).
        embed_dim, depth: token width D and number of layers.
        num_convs_patch_embed: 3×3 convs in the patch embedding. layers_with_dwconv: layers followed by a depthwise
            conv block (PlainMamba-L1: layer 0).
        d_state, expand, d_conv, dt_rank: the mixer's SSM state size, expansion, 2-D conv kernel (odd) and dt rank
            (None: ceil(D / 16)).
        scan: scan order name, `scans.ScanOrder` or `scans.Schedule` (per layer); the default is PlainMamba's.
        drop_rate, pos_drop_rate, drop_path_rate: head dropout, dropout after the position embedding, stochastic
            depth (linear over layers).
        norm_eps: epsilon of the final LayerNorm (the layers' norms keep LayerNorm's 1e-5, as the original).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        embed_dim: int = 192,
        depth: int = 24,
        num_convs_patch_embed: int = 1,
        layers_with_dwconv: Sequence[int] = (0,),
        d_state: int = 16,
        expand: float = 2.0,
        d_conv: int = 7,
        dt_rank: int | None = None,
        scan: str | scans.ScanOrder | scans.Schedule = "zigzag_bidirectional",
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-6,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        img_size = to_2tuple(img_size)
        for name, value in (("img_size[0]", img_size[0]), ("img_size[1]", img_size[1]), ("patch_size", patch_size),
                            ("in_chans", in_chans), ("embed_dim", embed_dim), ("depth", depth)):
            check_int(name, value)
        check_int("num_convs_patch_embed", num_convs_patch_embed, minimum=0)
        check_int("num_classes", num_classes, minimum=0, meaning="0: no classifier")
        check_float("norm_eps", norm_eps)
        check_rates(drop_rate=drop_rate, pos_drop_rate=pos_drop_rate, drop_path_rate=drop_path_rate)
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool: expected one of {GLOBAL_POOLS}, got {global_pool!r}")
        dwconv = set(layers_with_dwconv)
        if not dwconv <= set(range(depth)):
            raise ValueError(f"layers_with_dwconv: expected layer indices in 0..{depth - 1}, got "
                             f"{sorted(layers_with_dwconv)}")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 0
        self.grad_checkpointing = False

        self.patch_embed = ConvPatchEmbed(in_chans, embed_dim, patch_size, num_convs_patch_embed, **dd)
        self.grid_size = self.patch_embed.grid_size(*img_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], embed_dim, **dd))
        self.pos_drop = nn.Dropout(pos_drop_rate)

        self.schedule = scans.as_schedule(scan)
        self.layer_orders = tuple(self.schedule.for_layer(i) for i in range(depth))
        ssm = SSMConfig(d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank, proj_bias=True)
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.layers = nn.ModuleList(
            PlainMambaLayer(embed_dim, ssm, i in dwconv, rates[i], **dd) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.feature_info = [dict(module=f"layers.{i}", num_chs=embed_dim, reduction=patch_size) for i in range(depth)]
        # Fail at construction, not at the first forward, for an order that cannot route this grid.
        self._routes(self.grid_size, torch.device("cpu"))
        self.init_weights()

    def init_weights(self) -> None:
        """The original's training init (its config's `init_cfg`, applied by mmcv to the whole classifier):
        trunc-normal(0.02) weights and zero biases for every Linear (the delta projection's bias too: mmcv ignores
        mamba_ssm's `_no_reinit` mark), LayerNorms 1 / 0, trunc-normal(0.02) position embedding; A_log, D and the
        direction tokens keep the mixer's init."""
        if self.pos_embed.is_meta:
            return
        self.apply(init_linear_and_norms)
        trunc_normal_(self.pos_embed, std=0.02)

    # ------------------------------------------------------------------------------------------------ timm API

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """The original's `paramwise_cfg` custom keys: the position embedding, A_log, D and the direction tokens."""
        exempt = ("A_log", "D", "direction_Bs")
        return {"pos_embed"} | {n for n, _ in self.named_parameters() if n.rsplit(".", 1)[-1] in exempt}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(stem=r"^pos_embed|^patch_embed", blocks=[(r"^layers\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f"global_pool: expected one of {GLOBAL_POOLS}, got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = linear_head(self, self.embed_dim, num_classes)

    # ------------------------------------------------------------------------------------------------ forward

    @fx_leaf  # built for the grid
    def _routes(self, grid: tuple[int, int], device: torch.device) -> list[PlainRoutes]:
        """Each layer's routes on a `grid` (cached per order, grid and device)."""
        return [_cached_routes(order, *grid, device) for order in self.layer_orders]

    @fx_leaf  # resampled for the grid (pos_embed is an argument so that traced graphs own it)
    def _pos_embed(self, pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
        """`pos_embed` (1, L0, D) for `grid`: mmcls's `resize_pos_embed` (bicubic, no antialiasing)."""
        if grid == self.grid_size:
            return pos_embed
        return resample_abs_pos_embed(pos_embed, list(grid), list(self.grid_size), num_prefix_tokens=0,
                                      interpolation="bicubic", antialias=False)

    @fx_leaf
    def check_input(self, x: Tensor) -> Tensor:
        """x, unless it is not an image tensor (B, in_chans, H, W) of the model's device and dtype (ValueError /
        TypeError naming what was expected and what was given)."""
        if isinstance(x, Tensor):
            check_image_like(x, self.patch_embed.projection.weight)
        check_image(x, self.in_chans, 1, "one pixel: the patch embedding pads any size")
        return x

    def embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """x: (B, C, H, W) -> tokens (B, L, D) with positions added; the token grid."""
        x = self.patch_embed(self.check_input(x))
        grid = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)
        return self.pos_drop(x + self._pos_embed(self.pos_embed, grid)), grid

    def forward_layers(
        self,
        tokens: Tensor,
        grid: tuple[int, int],
        indices: Collection[int] = (),
        num_layers: int | None = None,
        start: int = 0,
    ) -> tuple[Tensor, list[Tensor]]:
        """Run layers `start` .. `num_layers` - 1 (default: all) on embedded tokens (the one layer loop of every entry
        point and of `vssm.mm`, whose detection adapter runs the layers in ranges).

        Returns the tokens after the last layer run and the tokens (B, L, D) after the layers in `indices`.
        """
        stop = len(self.layers) if num_layers is None else num_layers
        routes = self._routes(grid, tokens.device)
        taps = []
        for i in range(start, stop):
            layer = self.layers[i]
            if self.grad_checkpointing and not torch.jit.is_scripting():
                tokens = checkpoint(layer, tokens, grid, routes[i], use_reentrant=False)
            else:
                tokens = layer(tokens, grid, routes[i])
            if i in indices:
                taps.append(tokens)
        return tokens, taps

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> normalised tokens (B, L, D)."""
        tokens, grid = self.embed(x)
        return self.norm(self.forward_layers(tokens, grid)[0])

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_drop(x.mean(dim=1))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------------------------------------ features

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Token maps after the layers in `indices`: NCHW (B, D, H', W') or NLC (B, H'·W', D); unless
        `intermediates_only`, the final normalised tokens first. `norm` applies the final LayerNorm to each."""
        check_output_fmt(output_fmt, ("NCHW", "NLC"))
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        tokens, grid = self.embed(x)
        num_layers = max_index + 1 if stop_early or intermediates_only else None
        last, taps = self.forward_layers(tokens, grid, take_indices, num_layers)
        intermediates = []
        for tap in taps:
            if norm:
                tap = self.norm(tap)
            if output_fmt == "NCHW":
                tap = tap.transpose(1, 2).reshape(tap.shape[0], tap.shape[2], *grid)
            intermediates.append(tap.contiguous())
        if intermediates_only:
            return intermediates
        return self.norm(last), intermediates

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the layers after the last of `indices` (and the final norm / head); returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[: max_index + 1]
        self.layer_orders = self.layer_orders[: max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take_indices


@torch.compiler.assume_constant_result  # built from the order's route table, never from traced tensors
def _cached_routes(order: scans.ScanOrder, height: int, width: int, device: torch.device) -> PlainRoutes:
    def build() -> PlainRoutes:  # on CPU: the check reads values (none on the meta device)
        return PlainRoutes(*(t.to(device) for t in plain_routes(order.route(height, width), height, width)))

    routes = cached_table(("plainmamba", order, height, width, device), build)
    assert isinstance(routes, PlainRoutes)
    return routes


# ---------------------------------------------------------------------------------------------------- checkpoints

_FIRST_CONV = "patch_embed.stem.0"

# The released networks: what tells them apart in a checkpoint (embed_dim, depth, stem convs, dwconv layers).
ARCHITECTURES = {
    "plainmamba_l1": dict(embed_dim=192, depth=24, num_convs_patch_embed=1, layers_with_dwconv=(0,)),
    "plainmamba_l2": dict(embed_dim=384, depth=24, num_convs_patch_embed=2, layers_with_dwconv=()),
    "plainmamba_l3": dict(embed_dim=448, depth=36, num_convs_patch_embed=2, layers_with_dwconv=()),
}


def _describe(state_dict: dict[str, Tensor]) -> dict[str, Any]:
    """The architecture of a state dict in our names (KeyError when it is not PlainMamba's layout)."""
    layers = {int(k.split(".")[1]) for k in state_dict if k.startswith("layers.") and k.endswith(".mamba.A_log")}
    convs = {k for k in state_dict if k.startswith("patch_embed.convs.") and state_dict[k].ndim == 4}
    return dict(
        embed_dim=state_dict["patch_embed.projection.weight"].shape[0],
        depth=len(layers),
        num_convs_patch_embed=len(convs),
        layers_with_dwconv=tuple(sorted(i for i in layers if f"layers.{i}.dw.0.weight" in state_dict)),
    )


def _summary(arch: dict[str, Any]) -> str:
    return (f"embed_dim {arch['embed_dim']}, depth {arch['depth']}, {arch['num_convs_patch_embed']} stem convs, "
            f"dwconv after layers {list(arch['layers_with_dwconv'])}")


def _our_key(key: str) -> str | None:
    """An original key (mmcls classifier, or a bare backbone) -> ours; None for keys of no part of ours (mmdet /
    mmseg necks and heads, the dense backbones' extra `norm_layer{i}`)."""
    if key.startswith("head.fc."):
        return "head." + key[len("head.fc."):]
    if key.startswith("backbone."):
        key = key[len("backbone."):]
    elif key.startswith(("neck.", "decode_head.", "auxiliary_head.", "rpn_head.", "roi_head.", "bbox_head.")):
        return None
    if key.startswith("ln1."):
        return "norm." + key[len("ln1."):]
    return None if key.startswith("norm_layer") else key


def checkpoint_filter_fn(state_dict: dict[str, Any], model: PlainMamba) -> dict[str, Tensor]:
    """Official ChenhongyiYang/PlainMamba checkpoint -> this model's state dict.

    Takes the mmcls training checkpoint (`{'state_dict': ...}`, as the released l1/l2/l3.pth) or a bare state dict;
    `backbone.` is dropped, the head's `head.fc.` becomes `head.`, the final norm's `ln1.` `norm.`; every other name
    is the same. A position embedding trained for another grid is resampled (bicubic) to the model's. A checkpoint of
    another variant (or family) is a ValueError naming both networks.
    """
    state_dict, _ = select_weights(state_dict, what=f"checkpoint for {model_name(model)}")
    if checkpoint_family(state_dict) not in (None, "PlainMamba"):
        raise ValueError(f"{model_name(model)}: {family_hint(state_dict)}, not a PlainMamba checkpoint")
    ours = {}
    for key, value in state_dict.items():
        name = _our_key(key)
        if name is not None:
            ours[name] = value
    pos = ours.get("pos_embed")
    if pos is not None and pos.ndim == 3 and pos.shape[1:] != model.pos_embed.shape[1:] \
            and pos.shape[2] == model.pos_embed.shape[2]:
        side = int(pos.shape[1] ** 0.5)
        if side * side == pos.shape[1]:
            ours["pos_embed"] = resample_abs_pos_embed(pos, list(model.grid_size), [side, side], num_prefix_tokens=0,
                                                       interpolation="bicubic", antialias=False)
    # The first conv and the classifier may differ: timm adapts in_chans and num_classes after filtering.
    check_variant_fits(ours, model, _describe, _summary, ARCHITECTURES, ignore=("head.", _FIRST_CONV + ".weight"))
    return ours


# ---------------------------------------------------------------------------------------------------- registry


def _create_plainmamba(variant: str, pretrained: bool = False, **kwargs: Any) -> PlainMamba:
    # features_only defaults to the last three layers, as Vim's (a plain backbone has one resolution).
    return build_model(PlainMamba, variant, pretrained, checkpoint_filter_fn, 3, **kwargs)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": _FIRST_CONV,
        "classifier": "head",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2403.17695",
        "paper_name": "PlainMamba: Improving Non-Hierarchical Mamba in Visual Recognition",
        "origin_url": "https://github.com/ChenhongyiYang/PlainMamba",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "plainmamba_l1.in1k": _cfg(hf_hub_id="ChenhongyiYang/PlainMamba", hf_hub_filename="l1.pth"),
    "plainmamba_l2.in1k": _cfg(hf_hub_id="ChenhongyiYang/PlainMamba", hf_hub_filename="l2.pth"),
    "plainmamba_l3.in1k": _cfg(hf_hub_id="ChenhongyiYang/PlainMamba", hf_hub_filename="l3.pth"),
    "test_plainmamba.untrained": _cfg(input_size=(3, 64, 64), crop_pct=1.0),
})

HEADLINE_VARIANT = "plainmamba_l1"
_COUNTED_AT = "github.com/ChenhongyiYang/PlainMamba at 0975a1d"


def _published(printed: str, derived: str) -> PublishedCount:
    # `derived`: the authors' counter (tools/analysis_tools/get_flops.py --is-mamba: mmcv's hooks + its SSM term) run
    # on their model code at 224 x 224, every digit (vssm.analysis.published, PLAINMAMBA_MMCV).
    return PublishedCount(printed, f"the PlainMamba paper's ImageNet-1k table (arXiv:2403.17695); more digits: its "
                                   f"get_flops.py run on the original model code ({_COUNTED_AT})", derived=derived)


PUBLISHED_COUNTS = {
    "plainmamba_l1": _published("3.0", "3.021322752"),
    "plainmamba_l2": _published("8.1", "8.0889984"),
    "plainmamba_l3": _published("14.4", "14.452657408"),
}
GOLDEN_FIXTURES = {"plainmamba_test": GoldenFixture("test_plainmamba", dict(depth=2))}
SPEED_TARGETS = (SpeedTarget("plainmamba_l1", "deit_small_patch16_224", 0.5),)
TEST_SPEED_TARGETS = (SpeedTarget("test_plainmamba", "test_vit", 0.5, batch=2, input_size=(3, 64, 64)),)


# drop_path_rate: the authors' ImageNet configs' (plain_mamba_configs/plain_mamba_*_in1k_300e.py).
@register_model
def plainmamba_l1(pretrained: bool = False, **kwargs: Any) -> PlainMamba:
    """PlainMamba-L1 (7.3 M params, 77.9 % top-1): D 192, depth 24, one stem conv, a dwconv block after layer 0."""
    model_args = dict(ARCHITECTURES["plainmamba_l1"], drop_path_rate=0.2)
    return _create_plainmamba("plainmamba_l1", pretrained, **dict(model_args, **kwargs))


@register_model
def plainmamba_l2(pretrained: bool = False, **kwargs: Any) -> PlainMamba:
    """PlainMamba-L2 (25.7 M params, 81.6 % top-1): D 384, depth 24, two stem convs."""
    model_args = dict(ARCHITECTURES["plainmamba_l2"], drop_path_rate=0.2)
    return _create_plainmamba("plainmamba_l2", pretrained, **dict(model_args, **kwargs))


@register_model
def plainmamba_l3(pretrained: bool = False, **kwargs: Any) -> PlainMamba:
    """PlainMamba-L3 (50.5 M params, 82.3 % top-1): D 448, depth 36, two stem convs."""
    model_args = dict(ARCHITECTURES["plainmamba_l3"], drop_path_rate=0.4)
    return _create_plainmamba("plainmamba_l3", pretrained, **dict(model_args, **kwargs))


@register_model
def test_plainmamba(pretrained: bool = False, **kwargs: Any) -> PlainMamba:
    """A tiny PlainMamba for tests: D 32, depth 4, 64 px input (4 × 4 tokens); at depth 2 the golden fixture's."""
    model_args = dict(img_size=64, embed_dim=32, depth=4, num_convs_patch_embed=1, layers_with_dwconv=(0,))
    return _create_plainmamba("test_plainmamba", pretrained, **dict(model_args, **kwargs))

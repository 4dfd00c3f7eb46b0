"""LocalMamba: Vision Mamba (LocalVim) and VMamba (LocalVMamba) with windowed scans and searched directions.

Paper: "LocalMamba: Visual State Space Model with Windowed Selective Scan", Huang et al., arXiv:2403.09338.
Original code and weights: https://github.com/hunto/LocalMamba (Apache-2.0), reproduced at commit 75e5d1f.

Each layer scans its tokens along four directions chosen per layer by a search (`h` rows, `v` columns, `wK`
K × K windows, each optionally reversed), with one parameter set per direction, gates each direction's output by
a channel attention (`BiAttn`) and sums them. The searched lists of the released models are data
(`_localmamba_directions`); `scans.Windowed` builds the routes, so `scan=` still takes any order.

* LocalVim = the Vim skeleton (`vim.VisionMamba`): depth 20, RoPE before every layer (or a middle class token), mean
  pool, `MambaMixer` with indexed per-direction parameters (`A_log_k`, `conv1d_k`, `x_proj_k`, `dt_proj_k`, `D_k`),
  x and z scanned together, pads inside window routes go through the causal conv and the scan.
* LocalVMamba = the VMamba v0 skeleton (`vmamba.VMamba`): gated SS2D whose K = 4 routes are the block's directions,
  every route padded at its end to the longest and scanned in one grouped call.

What the original does and we do not: all `A_log_k` of a LocalVim layer alias one tensor (loading a checkpoint on
the CPU sets all four to `A_log_3`, LocalMamba#16); ours own their storage. `local_vim_small` is defined twice in the
original; it is defined once here (model_cards/localmamba.md: which list and why). The original's `v` reverse on
non-square grids is kept behind `v_reverse=VReverse.OFFICIAL` (default, for checkpoint faithfulness).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models import generate_default_cfgs, register_model
from torch import Tensor, nn

from vssm import scans
from vssm.layers.bi_attn import BiAttn
from vssm.layers.fx import fx_leaf
from vssm.layers.mamba_mixer import RouteMerge
from vssm.layers.ss2d import SS2DForm
from vssm.layers.ssm_core import RouteNaming
from vssm.layers.token_pos_embed import resample_pos_embed_with_middle_token
from vssm.models import _localmamba_directions as tables
from vssm.models._checkpoint import check_fits, checkpoint_family, model_name, rename_key, select_weights
from vssm.models._contract import check_int, check_ints, init_all_linear_and_norms
from vssm.models._records import GoldenFixture, PublishedCount, SpeedTarget
from vssm.models._registry import build_model
from vssm.models.vim import VisionMamba
from vssm.models.vmamba import Downsample, Stem, VMamba
from vssm.scans import ClassTokenRouting, SequenceRoutes, VReverse

__all__ = ["LocalVMamba", "LocalVim", "check_windows", "checkpoint_filter_fn", "windowed_directions"]

DirectionLists = Sequence[Sequence[str | scans.Direction]]


# ---------------------------------------------------------------------------------------------------- directions


def windowed_directions(
    directions: DirectionLists,
    depth: int,
    v_reverse: VReverse = VReverse.OFFICIAL,
    pad_oversized_windows: bool = True,
    unit: str = "layer",
) -> scans.PerLayer:
    """One `scans.Windowed` order per layer from LocalMamba's per-layer direction lists.

    Raises ValueError naming the layer (`unit` i) and the valid choices for a list of the wrong length, an empty
    layer or an unknown direction name.
    """
    if isinstance(directions, str) or not isinstance(directions, Iterable):
        raise TypeError(f"directions: expected one list of direction names per {unit}, got {directions!r}")
    directions = [tuple(layer) if not isinstance(layer, str) else layer for layer in directions]
    if len(directions) != depth:
        raise ValueError(
            f"directions: expected one direction list per {unit} ({depth} {unit}s), got {len(directions)} lists"
        )
    valid = f"{', '.join(tables.CHOICES)} (or wK / wK_flip for another window K >= 1)"
    for i, layer in enumerate(directions):
        if isinstance(layer, str) or not layer:
            raise ValueError(f"directions of {unit} {i}: expected a non-empty list of names from {valid}, got "
                             f"{layer!r}")
        for name in layer:
            try:
                scans.Direction.parse(name)
            except (TypeError, ValueError):
                raise ValueError(f"{unit} {i}: unknown direction {name!r}; valid choices: {valid}") from None
    return scans.windowed_schedule(directions, VReverse(v_reverse), pad_oversized_windows)


def check_windows(orders: Sequence[scans.ScanOrder], grids: Sequence[tuple[int, int]], unit: str, where: str) -> None:
    """ValueError naming the layer if a window of a `Windowed` order is larger than its layer's grid in both
    dimensions (a raster scan with padding) and the order was not built with `pad_oversized_windows=True`."""
    for i, (order, (height, width)) in enumerate(zip(orders, grids)):
        if not isinstance(order, scans.Windowed) or order.pad_oversized_windows:
            continue
        for direction in order.directions:
            if direction.window is not None and direction.window > height and direction.window > width:
                fitting = [c for c in tables.CHOICES if not c.startswith("w") or int(c[1:].split("_")[0]) <= max(
                    height, width)]
                raise ValueError(
                    f"{unit} {i}: direction {str(direction)!r} has a {direction.window} x {direction.window} window, "
                    f"larger than the {height} x {width} token grid it scans ({where}); valid choices there: "
                    f"{', '.join(fitting)}; or leave pad_oversized_windows at its default (True) to zero-pad the grid "
                    "to one window as the original does"
                )


def _schedule(
    scan: str | scans.ScanOrder | scans.Schedule | None,
    directions: DirectionLists | None,
    default: DirectionLists,
    depth: int,
    v_reverse: VReverse,
    pad_oversized_windows: bool,
    unit: str,
) -> scans.Schedule:
    if scan is not None and directions is not None:
        raise ValueError("give either directions= (LocalMamba's per-layer lists) or scan= (any order), not both")
    if scan is not None:
        return scans.as_schedule(scan)
    return windowed_directions(default if directions is None else directions, depth, v_reverse,
                               pad_oversized_windows, unit)  # fmt: skip


# ---------------------------------------------------------------------------------------------------- LocalVim


class LocalVim(VisionMamba):
    """LocalVim classifier (timm interface): Vim's blocks with LocalMamba's multi-direction mixer.

    Args:
        depth: number of blocks (LocalVim: 20).
        directions: one list of direction names per layer (`h`, `h_flip`, `v`, `v_flip`, `wK`, `wK_flip`); position
            k is the layer's parameter slot k. Default: LocalVim-T's searched lists.
        v_reverse: how `v` routes are undone on non-square grids (`VReverse.OFFICIAL`, the original's, by default).
        pad_oversized_windows: a window larger than the token grid zero-pads the grid to one window, as the original
            does (default); False is a strict mode where such a window raises ValueError naming the layer.
        scan: any `scans` order or schedule instead of `directions` (each layer then has one parameter set per route).
        class_token: a middle class token (LocalVim-T mid-cls), taken out of every route and re-inserted at the same
            step p = M // 2 of each; needs `rope=False`.
        rope: rotary position embedding before every layer, on the mixer output and the residual stream (RoPE
            variants); None = without a class token.
        global_pool: 'avg' (RoPE variants: mean of all tokens) or 'token' (mid-cls: the class token); None picks
            by `class_token`.
        **kwargs: `VisionMamba`'s other arguments (img_size, patch_size, in_chans, num_classes, embed_dim, d_state,
            d_conv, expand, dt_rank, drop rates, norm_eps, residual_in_fp32, device, dtype, ...), with
            `dynamic_img_size` accepting any input size: padded at the bottom/right to a multiple of the patch,
            position embedding and RoPE tables resized bicubically to the token grid (the original's dense backbones).
            The mixer's route merge (sum), channel attention (`BiAttn`), class-token routing, parameter naming and
            RoPE placement are LocalVim's.
    """

    def __init__(
        self,
        *,
        depth: int = 20,
        directions: DirectionLists | None = None,
        v_reverse: VReverse = VReverse.OFFICIAL,
        pad_oversized_windows: bool = True,
        scan: str | scans.ScanOrder | scans.Schedule | None = None,
        class_token: bool = False,
        rope: bool | None = None,
        global_pool: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_int("depth", depth)
        schedule = _schedule(scan, directions, tables.LOCAL_VIM_TINY, depth, v_reverse, pad_oversized_windows, "layer")
        rope = not class_token if rope is None else rope
        super().__init__(
            depth=depth,
            scan=schedule,
            class_token=class_token,
            global_pool=global_pool or ("token" if class_token else "avg"),
            route_merge=RouteMerge.SUM,
            route_mixer_layer=BiAttn,
            class_token_routing=ClassTokenRouting.FIXED_STEP,
            route_naming=RouteNaming.INDEXED,
            rope=rope,
            rope_residual=rope,
            **kwargs,
        )

    def init_weights(self) -> None:
        """The original's init: every Linear (in/out_proj, x_proj_k, dt_proj_k, BiAttn, head) trunc-normal(0.02) with
        zero bias (so the initial dt bias is 0, not Mamba's dt init), LayerNorms 1/0, pos_embed trunc-normal(0.02),
        cls_token 0, out_proj then re-drawn kaiming-uniform(a=√5) / √depth; patch conv, causal convs, A_log, D keep
        their defaults."""
        init_all_linear_and_norms(self)
        if not self.pos_embed.is_meta:
            trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.zeros_(self.cls_token)
        for block in self.layers:
            weight = block.mixer.out_proj.weight
            if not weight.is_meta:
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
                with torch.no_grad():
                    weight.div_(math.sqrt(len(self.layers)))

    @fx_leaf  # built (and checked) for the grid
    def _routes(self, grid: tuple[int, int], device: torch.device) -> list[SequenceRoutes]:
        check_windows(self.layer_orders, [grid] * len(self.layer_orders), "layer", f"{grid[0]} x {grid[1]} patches")
        return super()._routes(grid, device)

    @fx_leaf  # resampled for the grid (pos_embed is an argument so that traced graphs own it)
    def _pos_embed(self, pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
        # As the original's dense backbones: bicubic, align_corners=False, no antialiasing.
        return resample_pos_embed_with_middle_token(
            pos_embed, grid, self.patch_embed.grid_size, class_token=self.has_class_token, antialias=False
        )

    def embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        return super().embed(self.pad_to_patches(x) if self.dynamic_img_size else x)

    @fx_leaf  # pads by the input's size
    def pad_to_patches(self, x: Tensor) -> Tensor:
        """timm's PatchEmbed(dynamic_img_pad=True), as the original: zeros at the bottom and right up to whole
        patches (input the patch embedding refuses passes through for it to name)."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            return x
        patch_h, patch_w = self.patch_embed.patch_size
        return F.pad(x, (0, -x.shape[-1] % patch_w, 0, -x.shape[-2] % patch_h))


# ---------------------------------------------------------------------------------------------------- LocalVMamba


class LocalVMamba(VMamba):
    """LocalVMamba classifier and backbone (timm interface): VMamba v0 with each block's searched directions.

    Args:
        depths, d_state, expand: as `VMamba`, with LocalVMamba's defaults (LocalVMamba-T's).
        directions: one list of direction names per block, counted over all stages; position k is the block's
            route / parameter group k. Default: LocalVMamba-T's searched lists.
        v_reverse, pad_oversized_windows, scan: as `LocalVim` (per block).
        **kwargs: `VMamba`'s other arguments (dims, dt_rank, d_conv, layout, route_addressing, in_chans, num_classes,
            global_pool, drop_rate, drop_path_rate, device, dtype). The v0 form (patch stem, patch merging, gated
            SS2D, no MLP) and the channel attention (`BiAttn`) are LocalVMamba's.
    """

    def __init__(
        self,
        *,
        depths: Sequence[int] = (2, 2, 9, 2),
        d_state: int = 16,
        expand: float = 2.0,
        directions: DirectionLists | None = None,
        v_reverse: VReverse = VReverse.OFFICIAL,
        pad_oversized_windows: bool = True,
        scan: str | scans.ScanOrder | scans.Schedule | None = None,
        **kwargs: Any,
    ) -> None:
        check_ints("depths", depths)
        depths = tuple(depths)
        schedule = _schedule(
            scan, directions, tables.LOCAL_VSSM_TINY, sum(depths), v_reverse, pad_oversized_windows, "block"
        )
        super().__init__(
            depths=depths,
            d_state=d_state,
            expand=expand,
            mlp_ratio=0.0,
            form=SS2DForm.V0,
            stem=Stem.PATCH,
            downsample=Downsample.PATCH_MERGING,
            scan=schedule,
            route_mixer_layer=BiAttn,
            **kwargs,
        )
        self.block_orders = tuple(schedule.for_layer(i) for i in range(sum(depths)))

    def stage_grids(self, height: int, width: int) -> list[tuple[int, int]]:
        """The token grid of each stage for an input of height × width (4 × 4 patches, then 2 × 2 merging)."""
        grid = (height // 4, width // 4)
        grids = [grid]
        for _ in self.layers[1:]:
            grid = (-(-grid[0] // 2), -(-grid[1] // 2))
            grids.append(grid)
        return grids

    @fx_leaf
    def check_input(self, x: Tensor) -> Tensor:
        x = super().check_input(x)
        height, width = x.shape[-2:]
        grids = [grid for stage, grid in zip(self.layers, self.stage_grids(height, width))
                 for _ in stage.blocks]  # fmt: skip
        check_windows(self.block_orders[: len(grids)], grids, "block", f"input {height} x {width}")
        return x


# ---------------------------------------------------------------------------------------------------- checkpoints

_SEARCH_KEY = re.compile(r"\.multi_scan\.(weights|norms\.)")
_RENAMES = (
    (re.compile(r"(\.mixer)\.attn\."), r"\1.route_mixer."),  # LocalVim's BiAttn
    (re.compile(r"(\.op)\.multi_scan\.attn\."), r"\1.route_mixer."),  # LocalVMamba's BiAttn
)


def _describe(state_dict: dict[str, Tensor]) -> str:
    """What a LocalMamba-format state dict is: family (`checkpoint_family`), width/depth, class token."""
    family = checkpoint_family(state_dict)
    if "layers.0.blocks.0.op.in_proj.weight" in state_dict:
        stages = sorted({int(k.split(".")[1]) for k in state_dict if re.match(r"layers\.\d+\.blocks\.", k)})
        depths = [len({k.split(".")[3] for k in state_dict if k.startswith(f"layers.{s}.blocks.")}) for s in stages]
        dims = [state_dict[f"layers.{s}.blocks.0.norm.weight"].shape[0] for s in stages]
        return f"a {family or 'LocalVMamba'} checkpoint (depths {depths}, dims {dims})"
    if "patch_embed.proj.weight" in state_dict:
        depth = len({k.split(".")[1] for k in state_dict if re.match(r"layers\.\d+\.norm\.weight$", k)})
        width = state_dict["patch_embed.proj.weight"].shape[0]
        kind = "middle class token" if "cls_token" in state_dict else ("RoPE" if "rope.freqs_cos" in state_dict
                                                                        else "no class token, no RoPE")
        return f"a {family or 'LocalVim'} checkpoint (embed_dim {width}, depth {depth}, {kind})"
    return "the checkpoint"


def _resize_grid_table(table: Tensor, grid: tuple[int, int]) -> Tensor:
    """(H·W, D) square table -> (grid H·W, D), bicubic without antialiasing (the original's `resize_pos_embed`)."""
    side = math.isqrt(table.shape[0])
    image = table.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    image = F.interpolate(image, size=grid, mode="bicubic", align_corners=False)
    return image.flatten(2).transpose(1, 2)[0].to(table.dtype)


def _fit_grid_tables(state_dict: dict[str, Tensor], model: LocalVim) -> None:
    """Resize pos_embed and the RoPE tables of a 224-pixel checkpoint to a model built for another input size."""
    grid = model.patch_embed.grid_size
    pos = state_dict.get("pos_embed")
    if pos is not None and pos.ndim == 3 and pos.shape != model.pos_embed.shape and pos.shape[2] == model.embed_dim:
        entries = pos.shape[1] - int(model.has_class_token)
        side = math.isqrt(max(entries, 0))
        if side * side == entries:  # else another variant's table: check_fits names the mismatch
            state_dict["pos_embed"] = resample_pos_embed_with_middle_token(
                pos, grid, (side, side), class_token=model.has_class_token, antialias=False
            )
    if model.rope is not None:
        for name in ("rope.freqs_cos", "rope.freqs_sin"):
            table = state_dict.get(name)
            if table is not None and table.ndim == 2 and table.shape[0] != grid[0] * grid[1]:
                state_dict[name] = _resize_grid_table(table, grid)


def checkpoint_filter_fn(checkpoint: dict[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """A released LocalMamba checkpoint (`{'state_dict': ...}`, as `tools/convert_ckpt.py` writes) -> our state dict.

    Takes the model weights of a training checkpoint (`model`; `ema_model` only as a bare state dict, e.g. from
    `vssm.checkpoints.select_weights(..., ema=True)`), strips `module.` prefixes, renames the channel attention
    (`mixer.attn.` / `op.multi_scan.attn.` -> `*.route_mixer.`), drops the dense backbones' `outnorm*`, resizes
    pos_embed / RoPE tables for a LocalVim built for another input size, and refuses search supernets. Anything else
    that does not fit (e.g. the LocalVMamba-S file the README links for LocalVim-S, LocalMamba#43) raises ValueError
    naming the model and the checkpoint.
    Every `A_log_k` is its own tensor in our model, so loading on the CPU keeps them distinct (LocalMamba#16).
    """
    name = model_name(model)
    state_dict, _ = select_weights(checkpoint, what=f"checkpoint for {name}")
    search = sorted(k for k in state_dict if _SEARCH_KEY.search(k))
    if search:
        raise ValueError(f"{name}: the checkpoint is a direction-search supernet ({search[0]}), not a final model")
    out = {}
    for key, value in state_dict.items():
        if not key.startswith("outnorm"):
            out[rename_key(key, _RENAMES)] = value
    if isinstance(model, LocalVim):
        _fit_grid_tables(out, model)
        ignore: tuple[str, ...] = ("head.",)
    else:
        ignore = ("classifier.head.",)
    check_fits(out, model, f"{_describe(state_dict)} does not fit {name}", ignore=ignore)
    return out


# ---------------------------------------------------------------------------------------------------- registry


def _create_local_vim(variant: str, pretrained: bool = False, **kwargs: Any) -> LocalVim:
    depth = kwargs.get("depth", 20)
    # The dense backbones' taps: blocks 4, 9, 14, 19 of 20 (evenly spaced, ending at the last block).
    out_indices = tuple((i + 1) * depth // 4 - 1 for i in range(4))
    return build_model(LocalVim, variant, pretrained, checkpoint_filter_fn, out_indices, **kwargs)


def _create_local_vssm(variant: str, pretrained: bool = False, **kwargs: Any) -> LocalVMamba:
    return build_model(LocalVMamba, variant, pretrained, checkpoint_filter_fn, (0, 1, 2, 3), **kwargs)


_RELEASES = "https://github.com/hunto/LocalMamba/releases/download/v1.0.0/"


def _cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": None,
        "crop_pct": 0.875,
        "interpolation": "bicubic",  # configs/strategies/local_mamba/config.yaml (the CLI default is bilinear)
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "license": "apache-2.0",
        "paper_ids": "arXiv:2403.09338",
        "paper_name": "LocalMamba: Visual State Space Model with Windowed Selective Scan",
        "origin_url": "https://github.com/hunto/LocalMamba",
        **kwargs,
    }


def _vim_cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    return _cfg(url, **{"fixed_input_size": True, "first_conv": "patch_embed.proj", "classifier": "head", **kwargs})


def _vssm_cfg(url: str = "", **kwargs: Any) -> dict[str, Any]:
    return _cfg(url, **{"pool_size": (7, 7), "first_conv": "patch_embed.0", "classifier": "classifier.head", **kwargs})


_NO_WEIGHTS = "no released weights: "
default_cfgs = generate_default_cfgs({
    "local_vim_tiny.in1k": _vim_cfg(_RELEASES + "local_vim_tiny.ckpt"),
    "local_vim_tiny_midcls.in1k": _vim_cfg(_RELEASES + "local_vim_tiny_middle_cls_token.ckpt"),
    # The README links LocalVMamba-S's file for LocalVim-S (LocalMamba#43, open); the LocalVim-S weights are not
    # downloadable, so no URL is given.
    "local_vim_small.untrained": _vim_cfg(notes=_NO_WEIGHTS + "the README's LocalVim-S link is local_vssm_small.ckpt, "
                                          "the LocalVMamba-S file (LocalMamba#43)"),
    # "retraining..." in the README (LocalMamba#40, #42).
    "local_vssm_tiny.untrained": _vssm_cfg(notes=_NO_WEIGHTS + "the README says 'retraining...' (LocalMamba#40, #42)"),
    "local_vssm_small.in1k": _vssm_cfg(_RELEASES + "local_vssm_small.ckpt"),
    "test_local_vim.untrained": _vim_cfg(input_size=(3, 112, 112), crop_pct=1.0),
    # 96 px, not the fixture's 64: at 64 its first map is 16 × 16 × 16, where timm's tests cannot tell NHWC from NCHW.
    "test_local_vssm.untrained": _vssm_cfg(input_size=(3, 96, 96), pool_size=(3, 3), crop_pct=1.0),
})

# What the tools read (vssm.models._records). Headline: the family's smallest released network.
HEADLINE_VARIANT = "local_vim_tiny"
_README = ("LocalMamba's README (github.com/hunto/LocalMamba at 75e5d1f); more digits: its counters worked through "
           "each layer (classification/lib/models/local_vim.py and local_vmamba.py, flops)")
PUBLISHED_COUNTS = {
    "local_vim_tiny": PublishedCount("1.5", _README, derived="1.4818"),
    "local_vim_small": PublishedCount("4.8", _README, derived="4.7713"),
    "local_vssm_tiny": PublishedCount("5.7", _README, derived="5.7287",
                                      note="the original projects x_proj/dt_proj on padded window routes"),
    "local_vssm_small": PublishedCount("11.4", _README, derived="11.373"),
}
# The fixtures' per-layer directions are the original's constructor argument, taken as the fixture gives them.
GOLDEN_FIXTURES = {
    "local_vim_test": GoldenFixture("test_local_vim", dict(img_size=160, embed_dim=64, depth=2), ("directions",)),
    "local_vim_test_midcls": GoldenFixture("local_vim_tiny_midcls", dict(img_size=112, embed_dim=64, depth=2),
                                           ("directions",)),
    "local_vssm_test": GoldenFixture("test_local_vssm", from_original=("directions",)),
}
_DEIT_T, _SWIN_T = "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224"
SPEED_TARGETS = (
    SpeedTarget("local_vim_tiny", _DEIT_T, 0.5),
    SpeedTarget("local_vssm_tiny", _SWIN_T, 0.5),
    SpeedTarget("local_vim_tiny_midcls", _DEIT_T, None),
)
TEST_SPEED_TARGETS = (SpeedTarget("test_local_vssm", "test_resnet", None, batch=2, input_size=(3, 64, 64)),)


def _with(model_args: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """`dict(model_args, **kwargs)`, timm's merge of the variant's arguments and the caller's, except that a caller's
    `scan=` replaces the variant's directions (a caller's own `directions=` with it is still refused)."""
    if kwargs.get("scan") is not None:
        model_args = {k: v for k, v in model_args.items() if k != "directions"}
    return dict(model_args, **kwargs)


@register_model
def local_vim_tiny(pretrained: bool = False, **kwargs: Any) -> LocalVim:
    """LocalVim-T (7,994,152 params, 76.2 % top-1): D 192, depth 20, RoPE, mean pool, searched directions."""
    model_args = dict(embed_dim=192, depth=20, directions=tables.LOCAL_VIM_TINY, drop_path_rate=0.1)
    return _create_local_vim("local_vim_tiny", pretrained, **_with(model_args, kwargs))


@register_model
def local_vim_tiny_midcls(pretrained: bool = False, **kwargs: Any) -> LocalVim:
    """LocalVim-T with the middle class token (7,994,536 params, 77.8 %); the original's
    `local_vim_tiny_middle_cls_token`: no RoPE, class token at 98 of 197."""
    model_args = dict(embed_dim=192, depth=20, directions=tables.LOCAL_VIM_TINY, class_token=True, drop_path_rate=0.1)
    return _create_local_vim("local_vim_tiny_midcls", pretrained, **_with(model_args, kwargs))


@register_model
def local_vim_small(pretrained: bool = False, **kwargs: Any) -> LocalVim:
    """LocalVim-S (27,783,784 params, 81.1 %): D 384, depth 20, RoPE, LocalVim-T's searched directions."""
    model_args = dict(embed_dim=384, depth=20, directions=tables.LOCAL_VIM_SMALL, drop_path_rate=0.1)
    return _create_local_vim("local_vim_small", pretrained, **_with(model_args, kwargs))


@register_model
def local_vssm_tiny(pretrained: bool = False, **kwargs: Any) -> LocalVMamba:
    """LocalVMamba-T (25,527,160 params, 82.7 %): depths 2-2-9-2, dims 96-768, searched directions."""
    model_args = dict(depths=(2, 2, 9, 2), dims=96, directions=tables.LOCAL_VSSM_TINY, drop_path_rate=0.2)
    return _create_local_vssm("local_vssm_tiny", pretrained, **_with(model_args, kwargs))


@register_model
def local_vssm_small(pretrained: bool = False, **kwargs: Any) -> LocalVMamba:
    """LocalVMamba-S (49,748,536 params, 83.7 %): depths 2-2-27-2, dims 96-768, searched directions."""
    model_args = dict(depths=(2, 2, 27, 2), dims=96, directions=tables.LOCAL_VSSM_SMALL, drop_path_rate=0.2)
    return _create_local_vssm("local_vssm_small", pretrained, **_with(model_args, kwargs))


@register_model
def test_local_vim(pretrained: bool = False, **kwargs: Any) -> LocalVim:
    """A tiny LocalVim for tests: D 64, depth 4, 112 px (7 × 7 patches: w2 pads, w7 is one window), RoPE."""
    model_args = dict(img_size=112, embed_dim=64, depth=4, directions=tables.TEST_LOCAL_VIM)
    return _create_local_vim("test_local_vim", pretrained, **_with(model_args, kwargs))


@register_model
def test_local_vssm(pretrained: bool = False, **kwargs: Any) -> LocalVMamba:
    """A tiny LocalVMamba for tests (the golden fixture's shape, run at 64 px there): depths 1-1-2-1, dims 16-128;
    default input 96 px, where the last stage's w7 windows pad an oversized grid as the original does."""
    model_args = dict(depths=(1, 1, 2, 1), dims=16, directions=tables.TEST_LOCAL_VSSM)
    return _create_local_vssm("test_local_vssm", pretrained, **_with(model_args, kwargs))

"""Vision Mamba (Vim): an isotropic stack of bidirectional Mamba blocks over patch tokens with a middle class token.

Paper: "Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model",
Zhu et al., ICML 2024, arXiv:2401.09417. Original code and weights: https://github.com/hustvl/Vim (Apache-2.0).

The released models ("bimamba v2", middle class token, mean pool unused) are reproduced exactly, including the
fused path's bidirectional mixer (the original's non-fused path silently drops the backward direction; that path is
not reproduced). `scan=` swaps the two Vim routes for any `scans` order (or a per-layer schedule); each layer then
has one parameter set per route.

    x (B, 3, 224, 224) -> patch embed (B, 196, D) -> class token inserted at index 98 -> + pos_embed
      -> 24 × [residual += drop_path(h); h = Mixer(RMSNorm(residual))]  (residual stream in fp32)
      -> RMSNorm(residual + h) -> token 98 -> head
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, RmsNorm, lecun_normal_, to_2tuple, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vssm import scans
from vssm.layers.add_norm import add_and_norm
from vssm.layers.fx import fx_leaf
from vssm.layers.mamba_mixer import MambaMixer, RouteMerge
from vssm.layers.ssm_core import RouteNaming, SSMConfig
from vssm.layers.strided_patch_embed import StridedPatchEmbed
from vssm.layers.token_pos_embed import (
    insert_token,
    middle_index,
    remove_token,
    resample_pos_embed_with_middle_token,
)
from vssm.layers.vision_rope import VisionRope
from vssm.models._checkpoint import check_fits, checkpoint_family, family_hint, model_name, select_weights
from vssm.models._contract import (
    check_float,
    check_image_like,
    check_int,
    check_ints,
    check_output_fmt,
    check_rates,
    linear_head,
)
from vssm.models._records import GoldenFixture, PublishedCount, SpeedTarget
from vssm.models._registry import build_model
from vssm.scans import ClassTokenRouting, SequenceRoutes, token_routes

__all__ = ["BlockState", "VimBlock", "VisionMamba", "checkpoint_filter_fn"]

GLOBAL_POOLS = ("token", "avg")


class BlockState(NamedTuple):
    """What flows from one Vim block to the next, both (B, L, D)."""

    hidden: Tensor  # the block's mixer output h
    residual: Tensor | None  # the residual stream r before h is added (float32 with residual_in_fp32; None at first)

    def output(self) -> Tensor:
        """The block output r + h in h's dtype (a ViT block's output; what `forward_intermediates` returns)."""
        return self.hidden if self.residual is None else (self.residual + self.hidden).to(self.hidden.dtype)


class VimBlock(nn.Module):
    """Add -> RMSNorm -> Mamba mixer (mamba_ssm's `Block` with fused add + norm).

    forward(hidden, residual) -> (mixer output, residual stream): the caller's `hidden` is the previous block's mixer
    output (the embedded tokens for the first block, whose residual is None and gets no drop-path).
    """

    def __init__(
        self,
        dim: int,
        mixer: MambaMixer,
        drop_path: float = 0.0,
        norm_eps: float = 1e-5,
        residual_in_fp32: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.residual_in_fp32 = residual_in_fp32
        self.norm = RmsNorm(dim, eps=norm_eps, device=device, dtype=dtype)
        self.mixer = mixer
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, hidden: Tensor, residual: Tensor | None, routes: SequenceRoutes) -> tuple[Tensor, Tensor]:
        """hidden, residual: (B, L, D) -> (B, L, D) mixer output, (B, L, D) residual stream."""
        if residual is not None:
            hidden = self.drop_path(hidden)
        normed, residual = add_and_norm(hidden, residual, self.norm, self.residual_in_fp32)
        return self.mixer(normed, routes), residual


class VisionMamba(nn.Module):
    """Vim classifier (timm interface).

    Args:
        img_size: input size the model is built for (inputs must have it unless `dynamic_img_size`).
        patch_size: patch (kernel) size; stride: step between patches (default `patch_size`; 8 for the ⁺ models).
        in_chans, num_classes: input channels and classes (0: no head, `forward` returns the pooled features).
        global_pool: 'token' (the class token, Vim) or 'avg' (mean over patch tokens; the only choice without a class
            token).
        embed_dim, depth: token width D and number of blocks.
        d_state, d_conv, expand, dt_rank: Mamba's SSM sizes (dt_rank None = ceil(D / 16)).
        scan: scan order name, `scans.ScanOrder` or `scans.Schedule` (per layer). The default `bidirectional` is Vim.
        class_token: insert a class token in the middle of the sequence (Vim) or not (Vim's segmentation backbone).
        route_merge: how the routes' outputs are combined (Vim: mean, its `if_divide_out`).
        drop_rate, pos_drop_rate, drop_path_rate: head dropout, dropout after the position embedding, stochastic depth.
        norm_eps: RMSNorm epsilon. residual_in_fp32: keep the residual stream in float32 (Vim: yes).
        dynamic_img_size: accept any input size, resampling the position embedding around the class slot.
        route_mixer_layer: optional factory `(E, device=, dtype=) -> module` of each mixer's `route_mixer` (applied
            to the routes' gated outputs before the merge; LocalVim's channel attention); None = plain merge.
        class_token_routing: where routes visit the class token (None: Vim's rule, by the order's shape).
        route_naming: parameter names of route k (None: Vim's / stock Mamba's names up to 2 routes, else indexed).
        rope, rope_residual: rotate the mixer input (and the residual stream) by a 2-D rotary position embedding
            before every block (LocalVim; no class token).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        stride: int | None = None,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "token",
        embed_dim: int = 192,
        depth: int = 24,
        d_state: int = 16,
        d_conv: int = 4,
        expand: float = 2.0,
        dt_rank: int | None = None,
        scan: str | scans.ScanOrder | scans.Schedule = "bidirectional",
        class_token: bool = True,
        route_merge: RouteMerge = RouteMerge.MEAN,
        drop_rate: float = 0.0,
        pos_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        norm_eps: float = 1e-5,
        residual_in_fp32: bool = True,
        dynamic_img_size: bool = False,
        route_mixer_layer: Callable[..., nn.Module] | None = None,
        class_token_routing: ClassTokenRouting | None = None,
        route_naming: RouteNaming | None = None,
        rope: bool = False,
        rope_residual: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        for name, size in (("img_size", img_size), ("patch_size", patch_size), ("stride", stride)):
            if size is not None:
                check_ints(name, to_2tuple(size))
        for name, value in (("in_chans", in_chans), ("embed_dim", embed_dim), ("depth", depth)):
            check_int(name, value)
        check_int("num_classes", num_classes, minimum=0, meaning="0: no classifier")
        check_float("norm_eps", norm_eps)  # the SSM sizes are SSMConfig's to check
        check_rates(drop_rate=drop_rate, pos_drop_rate=pos_drop_rate, drop_path_rate=drop_path_rate)
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool: expected one of {GLOBAL_POOLS}, got {global_pool!r}")
        if global_pool == "token" and not class_token:
            raise ValueError("global_pool='token' needs class_token=True; use global_pool='avg' without a class token")
        if rope and class_token:
            raise ValueError("rope=True rotates grid tokens only: build it with class_token=False, global_pool='avg'")
        if rope_residual and not rope:
            raise ValueError("rope_residual=True needs rope=True")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1 if class_token else 0
        self.has_class_token = class_token
        self.residual_in_fp32 = residual_in_fp32
        self.dynamic_img_size = dynamic_img_size
        self.class_token_routing = None if class_token_routing is None else ClassTokenRouting(class_token_routing)
        self.rope_residual = rope_residual
        self.grad_checkpointing = False

        self.patch_embed = StridedPatchEmbed(
            img_size, patch_size, stride, in_chans, embed_dim, strict_img_size=not dynamic_img_size, **dd
        )
        num_tokens = self.patch_embed.num_patches + self.num_prefix_tokens
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim, **dd)) if class_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, embed_dim, **dd))
        self.pos_drop = nn.Dropout(pos_drop_rate)
        self.rope = VisionRope(embed_dim, self.patch_embed.grid_size, **dd) if rope else None

        self.schedule = scans.as_schedule(scan)
        self.layer_orders = tuple(self.schedule.for_layer(i) for i in range(depth))
        ssm = SSMConfig(d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank)
        # Vim's drop-path schedule is shifted by one: block i drops the output of block i - 1 at rate dpr[i - 1];
        # the last block's output gets the full rate in the final add.
        block_rates = [0.0, *torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()]
        self.layers = nn.ModuleList()
        for i, order in enumerate(self.layer_orders):
            routes = order.num_routes
            naming = route_naming or (RouteNaming.BACKWARD_SUFFIX if routes <= 2 else RouteNaming.INDEXED)
            route_mixer = None if route_mixer_layer is None else route_mixer_layer(ssm.inner_dim(embed_dim), **dd)
            mixer = MambaMixer(embed_dim, routes, ssm, naming, route_merge, route_mixer, **dd)
            self.layers.append(VimBlock(embed_dim, mixer, block_rates[i], norm_eps, residual_in_fp32, **dd))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0.0 else nn.Identity()
        self.norm_f = RmsNorm(embed_dim, eps=norm_eps, **dd)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes, **dd) if num_classes > 0 else nn.Identity()

        reduction = self.patch_embed.stride[0]
        self.feature_info = [
            dict(module=f"layers.{i}", num_chs=embed_dim, reduction=reduction) for i in range(depth)
        ]
        # Fail at construction, not at the first forward, for an order that cannot route this grid.
        self._routes(self.patch_embed.grid_size, torch.device("cpu"))
        self.init_weights()

    # ------------------------------------------------------------------------------------------------ init

    def init_weights(self) -> None:
        """Vim's from-scratch init (spec §3): LeCun-normal patch conv, trunc-normal(0.02) head / pos / cls, zero
        biases, out_proj scaled by 1/sqrt(depth); SSM parameters keep Mamba's own init."""
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=0.02)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        with torch.no_grad():
            for block in self.layers:
                block.mixer.out_proj.weight.div_(math.sqrt(len(self.layers)))

    # ------------------------------------------------------------------------------------------------ timm API

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Position embedding, class token and every A_log (Mamba marks A_log `_no_weight_decay`)."""
        names = {"pos_embed"} | ({"cls_token"} if self.cls_token is not None else set())
        return names | {n for n, _ in self.named_parameters() if n.rsplit(".", 1)[-1].startswith(("A_log", "A_b_log"))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^cls_token|^pos_embed|^patch_embed",
            blocks=[(r"^layers\.(\d+)", None), (r"^norm_f", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS or (global_pool == "token" and not self.has_class_token):
                raise ValueError(f"global_pool: expected one of {GLOBAL_POOLS} ('token' needs a class token), got "
                                 f"{global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = linear_head(self, self.embed_dim, num_classes)

    # ------------------------------------------------------------------------------------------------ forward

    def class_index(self, num_tokens: int) -> int:
        """Index of the class token in a sequence of `num_tokens` (the middle of the grid tokens)."""
        return middle_index(num_tokens - 1)

    @fx_leaf  # built for the grid
    def _routes(self, grid: tuple[int, int], device: torch.device) -> list[SequenceRoutes]:
        """Each layer's routes through the token sequence of a `grid`."""
        built: dict[scans.ScanOrder, SequenceRoutes] = {}
        for order in self.layer_orders:
            if order not in built:
                built[order] = token_routes(
                    order, grid[0], grid[1], device, self.has_class_token, self.class_token_routing
                )
        return [built[order] for order in self.layer_orders]

    @fx_leaf  # resampled for the grid (pos_embed is an argument so that traced graphs own it)
    def _pos_embed(self, pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
        """`pos_embed` (1, L0, D) for the model's grid, resampled to `grid`."""
        if grid == self.patch_embed.grid_size:
            return pos_embed
        return resample_pos_embed_with_middle_token(
            pos_embed, grid, self.patch_embed.grid_size, class_token=self.has_class_token
        )

    @fx_leaf
    def check_input(self, x: Tensor) -> Tensor:
        """x, unless it is an image tensor on another device than the model's (ValueError), not floating or not in the
        model's dtype (TypeError: `check_image_like`); the patch embedding checks the rest (shape, channels, size)."""
        if isinstance(x, Tensor):
            check_image_like(x, self.patch_embed.proj.weight)
        return x

    def embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """x: (B, C, H, W) -> tokens (B, L, D) with the class token at the middle and positions added; the grid."""
        x = self.check_input(x)
        x = self.patch_embed(x)
        batch, height, width, dim = x.shape
        x = x.reshape(batch, height * width, dim)
        if self.cls_token is not None:
            x = insert_token(x, self.cls_token.expand(batch, -1, -1), middle_index(height * width))
        x = x + self._pos_embed(self.pos_embed, (height, width))
        return self.pos_drop(x), (height, width)

    def _run_block(
        self,
        block: VimBlock,
        hidden: Tensor,
        residual: Tensor | None,
        routes: SequenceRoutes,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        if rope is not None:
            # LocalVim's RoPE: before every block, on the mixer output and (rope_residual) the residual stream.
            hidden = self.rope(hidden, rope)
            if residual is not None and self.rope_residual:
                residual = self.rope(residual, rope)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(block, hidden, residual, routes, use_reentrant=False)
        return block(hidden, residual, routes)

    def final_norm(self, hidden: Tensor, residual: Tensor | None) -> Tensor:
        """RMSNorm(residual + drop_path(hidden)) in the dtype of `hidden`: the last add of the residual stream."""
        if residual is not None:
            hidden = self.drop_path(hidden)
        return add_and_norm(hidden, residual, self.norm_f, self.residual_in_fp32)[0]

    def forward_blocks(
        self,
        tokens: Tensor,
        grid: tuple[int, int],
        indices: Collection[int] = (),
        num_blocks: int | None = None,
    ) -> tuple[BlockState, list[BlockState]]:
        """Run the blocks on embedded tokens: the model's one block loop (`forward_features`, `forward_intermediates`
        and the dense backbones of `vssm.mm` run it).

        Args:
            tokens: (B, L, D) tokens and grid their patch grid, from `embed(x)`.
            indices: blocks whose output states to return.
            num_blocks: run only the first `num_blocks` blocks (default all).

        Returns:
            The state after the last block run and the states after the blocks in `indices`, in order.
        """
        rope = None if self.rope is None else self.rope.tables(grid)
        blocks = self.layers if num_blocks is None else self.layers[:num_blocks]
        routes = self._routes(grid, tokens.device)
        state, taps = BlockState(tokens, None), []
        for i, block in enumerate(blocks):
            state = BlockState(*self._run_block(block, state.hidden, state.residual, routes[i], rope))
            if i in indices:
                taps.append(state)
        return state, taps

    def tokens_to_map(
        self, tokens: Tensor, grid: tuple[int, int], output_fmt: str = "NCHW"
    ) -> tuple[Tensor, Tensor | None]:
        """(B, L, D) tokens -> the patch tokens as a map (B, D, H', W') (a view, "NCHW") or as (B, H'·W', D) ("NLC"),
        and the class token (B, 1, D) (None without one)."""
        prefix = None
        if self.has_class_token:
            tokens, prefix = remove_token(tokens, self.class_index(tokens.shape[1]))
        if output_fmt == "NCHW":
            tokens = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)
        return tokens, prefix

    def forward_features(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> normalised tokens (B, L, D), class token at `class_index(L)`."""
        tokens, grid = self.embed(x)
        last, _ = self.forward_blocks(tokens, grid)
        return self.final_norm(last.hidden, last.residual)

    def pool(self, x: Tensor) -> Tensor:
        """(B, L, D) -> (B, D): the class token, or the mean of the patch tokens."""
        if self.global_pool == "token":
            return x[:, self.class_index(x.shape[1])]
        if self.has_class_token:
            x = remove_token(x, self.class_index(x.shape[1]))[0]
        return x.mean(dim=1)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    # ------------------------------------------------------------------------------------------------ features

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Token maps after the blocks in `indices` (the residual stream r + h, as a ViT block output).

        Returns the intermediates (NCHW (B, D, H', W') or NLC (B, H'·W', D), class token removed; with
        `return_prefix_tokens` each is a (map, class token (B, 1, D)) pair), and unless `intermediates_only` the final
        normalised features first. `norm` applies the final RMSNorm to each intermediate.
        """
        check_output_fmt(output_fmt, ("NCHW", "NLC"))
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        tokens, grid = self.embed(x)
        num_blocks = max_index + 1 if stop_early or intermediates_only else None
        last, taps = self.forward_blocks(tokens, grid, take_indices, num_blocks)
        intermediates = []
        for state in taps:
            stream = state.output()
            if norm:
                stream = self.norm_f(stream).to(state.hidden.dtype)
            stream, prefix = self.tokens_to_map(stream, grid, output_fmt)
            stream = stream.contiguous()
            intermediates.append((stream, prefix) if return_prefix_tokens else stream)
        if intermediates_only:
            return intermediates
        return self.final_norm(last.hidden, last.residual), intermediates

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks after the last of `indices` (and the final norm / head); returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[: max_index + 1]
        self.layer_orders = self.layer_orders[: max_index + 1]
        if prune_norm:
            self.norm_f = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take_indices


# ---------------------------------------------------------------------------------------------------- checkpoints


def _variant(model: VisionMamba) -> str:
    shape = (f"embed_dim {model.embed_dim}, depth {len(model.layers)}, {model.pos_embed.shape[1]} tokens, "
             f"stride {model.patch_embed.stride[0]}")
    return f"{model_name(model)} ({shape})"


def _describe(state_dict: dict[str, Tensor]) -> str:
    """What an official-format Vim state dict is: width, depth and number of position entries."""
    depth = len({k.split(".")[1] for k in state_dict if k.startswith("layers.") and k.endswith(".norm.weight")})
    proj = state_dict.get("patch_embed.proj.weight")
    pos = state_dict.get("pos_embed")
    width = proj.shape[0] if proj is not None else "?"
    tokens = pos.shape[1] if pos is not None else "?"
    return f"embed_dim {width}, depth {depth}, {tokens} tokens"


def _grid_of(num_entries: int, class_token: bool) -> tuple[int, int]:
    side = math.isqrt(num_entries - int(class_token))
    return side, side


def checkpoint_filter_fn(state_dict: dict[str, Any], model: VisionMamba) -> dict[str, Tensor]:
    """Official hustvl/Vim checkpoint -> this model's state dict (keys are the same; nothing is renamed).

    Accepts the training checkpoint (`{'model': ...}`, as `main.py` writes it: its model weights; `model_ema` only as
    a bare state dict, e.g. from `vssm.checkpoints.select_weights(..., ema=True)`) or a bare state dict; strips DDP
    `module.` / torch.compile `_orig_mod.` prefixes. The position embedding is resampled around its middle class slot
    only when the model was deliberately built for another input size than its pretrained config; otherwise any
    mismatch (a stride-8 checkpoint for a stride-16 model, another width or depth, v1 or RoPE checkpoints) raises
    ValueError naming the model variant and the first mismatched keys. Classifier keys are left to timm (`num_classes`).
    """
    variant = _variant(model)
    state_dict, _ = select_weights(state_dict, what=f"checkpoint for {variant}")
    if checkpoint_family(state_dict) not in (None, checkpoint_family(model.state_dict())):
        raise ValueError(f"{variant}: {family_hint(state_dict)}, not a Vim checkpoint")
    rope = sorted(k for k in state_dict if k.startswith("rope."))
    if rope:
        raise ValueError(f"{variant}: the checkpoint has RoPE buffers ({rope[:2]}): it is a RoPE Vim, not a released "
                         "middle-class-token model")
    if model.has_class_token and "cls_token" not in state_dict:
        raise ValueError(f"{variant}: the checkpoint has no cls_token (an early no-class-token Vim checkpoint?)")
    if "layers.0.mixer.A_log" in state_dict and "layers.0.mixer.A_b_log" in state_dict \
            and "layers.0.mixer.conv1d_b.weight" not in state_dict:
        raise ValueError(f"{variant}: the checkpoint is bimamba v1 (A_b_log without conv1d_b/x_proj_b/dt_proj_b); only "
                         "bimamba v2 checkpoints are supported")
    pos = state_dict.get("pos_embed")
    expected = model.pos_embed.shape
    if pos is not None and pos.shape != expected and pos.ndim == 3 and pos.shape[2] == expected[2]:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        built_for = tuple(cfg.get("input_size", (0, 0, 0))[-2:])
        if tuple(model.patch_embed.img_size) == built_for or not built_for:
            raise ValueError(
                f"{variant}: the checkpoint's pos_embed has {pos.shape[1]} entries, the model needs {expected[1]} "
                f"(a stride-8 checkpoint has 730 for 224 px, a stride-16 one 197). Build the matching variant, or "
                f"pass img_size= to resample for another resolution"
            )
        state_dict["pos_embed"] = resample_pos_embed_with_middle_token(
            pos, model.patch_embed.grid_size, _grid_of(pos.shape[1], model.has_class_token), model.has_class_token
        )
    check_fits(state_dict, model, f"checkpoint ({_describe(state_dict)}) does not fit {variant}")
    return state_dict


# ---------------------------------------------------------------------------------------------------- registry


def _create_vim(variant: str, pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    return build_model(VisionMamba, variant, pretrained, checkpoint_filter_fn, 3, **kwargs)


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "fixed_input_size": True,
        "pool_size": None,
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2401.09417",
        "paper_name": "Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model",
        "origin_url": "https://github.com/hustvl/Vim",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "vim_tiny.in1k": _cfg(hf_hub_id="hustvl/Vim-tiny-midclstok", hf_hub_filename="vim_t_midclstok_76p1acc.pth"),
    "vim_tiny_stride8.in1k": _cfg(
        hf_hub_id="hustvl/Vim-tiny-midclstok", hf_hub_filename="vim_t_midclstok_ft_78p3acc.pth"
    ),
    "vim_small.in1k": _cfg(hf_hub_id="hustvl/Vim-small-midclstok", hf_hub_filename="vim_s_midclstok_80p5acc.pth"),
    "vim_small_stride8.in1k": _cfg(
        hf_hub_id="hustvl/Vim-small-midclstok", hf_hub_filename="vim_s_midclstok_ft_81p6acc.pth"
    ),
    "vim_base.in1k": _cfg(hf_hub_id="hustvl/Vim-base-midclstok", hf_hub_filename="vim_b_midclstok_81p9acc.pth"),
    "test_vim.untrained": _cfg(input_size=(3, 64, 64), crop_pct=1.0),
})

# What the tools read (vssm.models._records). Headline: Vim-S, whose published count is the most precise (an integer).
HEADLINE_VARIANT = "vim_small"
# Vim-T and Vim-B: nobody printed a count under analyze_for_vim's rule (the script prints Vim-S's only), so they are
# not listed; their count under that rule is still in every table ("not published").
PUBLISHED_COUNTS = {
    "vim_small": PublishedCount(
        "5.301500928", "VMamba's analyze/analyze_for_vim.py, the comment on Vim-S (an exact integer; "
        "github.com/MzeroMiko/VMamba at 2ed52ea)", exact=5_301_500_928,
    ),
}
GOLDEN_FIXTURES = {"vim_test": GoldenFixture("test_vim", dict(img_size=224, embed_dim=64, depth=2))}
SPEED_TARGETS = (
    SpeedTarget("vim_small", "deit_small_patch16_224", 0.5),
    SpeedTarget("vim_tiny", "deit_tiny_patch16_224", None),
)
TEST_SPEED_TARGETS = (SpeedTarget("test_vim", "test_vit", 0.5, batch=2, input_size=(3, 64, 64)),)


@register_model
def vim_tiny(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """Vim-Ti (7.15 M params, 76.1 % top-1): D 192, depth 24, patch 16."""
    model_args = dict(embed_dim=192, depth=24)
    return _create_vim("vim_tiny", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_tiny_stride8(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """Vim-Ti⁺ (78.3 %): Vim-Ti fine-tuned with 16 × 16 patches every 8 px (27 × 27 tokens)."""
    model_args = dict(embed_dim=192, depth=24, stride=8)
    return _create_vim("vim_tiny_stride8", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_small(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """Vim-S (25.8 M params, 80.5 % top-1): D 384, depth 24, patch 16."""
    model_args = dict(embed_dim=384, depth=24)
    return _create_vim("vim_small", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_small_stride8(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """Vim-S⁺ (81.6 %): Vim-S fine-tuned with 16 × 16 patches every 8 px (27 × 27 tokens)."""
    model_args = dict(embed_dim=384, depth=24, stride=8)
    return _create_vim("vim_small_stride8", pretrained, **dict(model_args, **kwargs))


@register_model
def vim_base(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """Vim-B (97.6 M params, 81.9 % top-1): D 768, depth 24, patch 16."""
    model_args = dict(embed_dim=768, depth=24)
    return _create_vim("vim_base", pretrained, **dict(model_args, **kwargs))


@register_model
def test_vim(pretrained: bool = False, **kwargs: Any) -> VisionMamba:
    """A tiny Vim for tests: D 64, depth 4, 64 px input (4 × 4 tokens + class token)."""
    model_args = dict(img_size=64, embed_dim=64, depth=4)
    return _create_vim("test_vim", pretrained, **dict(model_args, **kwargs))

"""U-Mamba: nnU-Net's residual U-Net with Mamba layers, 2D and 3D, built from an explicit plan.

Paper: "U-Mamba: Enhancing Long-range Dependency for Biomedical Image Segmentation", Ma, Li & Wang, 2024
(https://arxiv.org/abs/2401.04722). Original code: https://github.com/bowang-lab/U-Mamba (Apache-2.0),
`umamba/nnunetv2/nets/UMamba{Bot,Enc}_{2d,3d}.py` @ 28459e3 (the nets as rewritten in 530739b). No weights were
released: every size comes from the dataset's nnU-Net plan, every checkpoint from the user's own training.

* `UMambaEncoder`: the residual encoder (a stem and n stages of `ResidualConvBlock`s) with Mamba layers
  (`MapMamba`: LayerNorm -> Mamba d_state 16, d_conv 4, expand 2, one direction, fp32, **no residual**):
  - Bot: one layer on the bottleneck (the last stage), patch tokens;
  - Enc: after every stage in 3D, after alternate stages in 2D (always the last one); a stage whose map has no more
    positions than channels (for the plan's patch size) uses channel tokens, its Mamba width being ∏ map size.
  It is the timm feature backbone (`umamba_bot_2d`, `umamba_enc_2d`, `test_*`): `features_only` and
  `forward_intermediates` give the skip maps (every stage's output, after its Mamba layer).
* `UMambaDecoder`: per stage, nearest upsampling + 1×1 conv, concatenation with the skip (the 2D original skips the
  concatenation at full resolution), residual blocks, a 1×1 segmentation conv; deep supervision returns every stage's
  logits, highest resolution first.
* `UMamba`: encoder + decoder, the segmentation network nnU-Net trains (`vssm.nnunet` has the trainers).

The original's block-count surgery is applied by default (`block_surgery=True`): encoder stages ⌈n/2⌉.. get one
block, decoder stages ⌈(n-1)/2 + 0.5⌉..n-2 get one. `scan=` takes any scan order for 2D networks (the Mamba layers
get one parameter set per route); 3D networks take 1-D orders (raster, bidirectional) over the flattened D×H×W grid.
`checkpoint_filter_fn` converts the original's nnU-Net checkpoints (`network_weights`, with the duplicated
`decoder.encoder.*` and `all_modules.*` keys) into this layout.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import checkpoint, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from torch import Tensor, nn

from vssm import scans
from vssm.layers.fx import fx_leaf
from vssm.layers.map_mamba import MapMamba, MapTokens
from vssm.layers.residual_conv_block import ResidualConvBlock, conv_nd
from vssm.scans import ScanOrder, is_sequence_order

from ._checkpoint import check_fits, model_name, read_checkpoint, rename_key, select_weights
from ._contract import (
    check_global_pool,
    check_image_like,
    check_int,
    check_ints,
    check_output_fmt,
    check_rates,
    linear_head,
    map_head,
)
from ._records import GoldenFixture, Metric, SpeedTarget, TimedNetwork
from ._registry import build_model
from ._umamba_plan import UMambaPlan

__all__ = [
    "MambaPlacement",
    "UMamba",
    "UMambaDecoder",
    "UMambaEncoder",
    "UMambaPlan",
    "checkpoint_filter_fn",
    "num_segmentation_heads",
]


class MambaPlacement(enum.Enum):
    """Where the Mamba layers sit."""

    BOT = "bot"  # one layer on the bottleneck
    ENC = "enc"  # after encoder stages (every stage in 3D, alternate stages ending with the last in 2D)


def _as_plan(plan: UMambaPlan | Mapping[str, Any]) -> UMambaPlan:
    if isinstance(plan, UMambaPlan):
        return plan
    if isinstance(plan, Mapping):
        return UMambaPlan(**plan)
    raise TypeError(f"plan: expected a UMambaPlan or a mapping of its fields, got {type(plan).__name__}")


def _init_convs(module: nn.Module) -> None:
    """nnU-Net's InitWeights_He(1e-2) on the 2D/3D convolutions; Mamba's Conv1d/Linear keep Mamba's own init."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, a=1e-2)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _stage(
    in_chs: int,
    out_chs: int,
    kernel: Sequence[int],
    stride: Sequence[int],
    blocks: int,
    ndim: int,
    drop_path: Sequence[float] | None = None,
    **dd: Any,
) -> nn.Sequential:
    """A projected (possibly strided) block, then `blocks - 1` identity-skip blocks."""
    rates = [0.0] * blocks if drop_path is None else drop_path
    return nn.Sequential(
        ResidualConvBlock(in_chs, out_chs, kernel, stride, project=True, ndim=ndim, drop_path=rates[0], **dd),
        *[ResidualConvBlock(out_chs, out_chs, kernel, ndim=ndim, drop_path=rates[k], **dd) for k in range(1, blocks)],
    )


# ---------------------------------------------------------------------------------------------------- encoder


class UMambaEncoder(nn.Module):
    """U-Mamba's residual encoder with its Mamba layers; a timm feature backbone.

    Args:
        plan: the network plan (`UMambaPlan` or a mapping of its fields).
        placement: `MambaPlacement.BOT` or `.ENC` (Enc needs the plan's patch size, or `img_size`).
        in_chans: input channels (image modalities).
        num_classes: classifier outputs on the pooled bottleneck (0: `forward` returns the pooled features).
        global_pool: 'avg' or '' (no pooling: the map, or with num_classes a Linear at every position).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the encoder's residual blocks, rising linearly to this rate (U-Mamba: 0).
        img_size: overrides the plan's patch size (timm's name for it); an int means the same size on every axis.
        scan: scan order of the Mamba layers (2D: any; 3D: a 1-D order). The original: `raster`.
        block_surgery: apply U-Mamba's encoder block-count surgery.

    x: (B, in_chans, *S) with S divisible by the plan's total stride (and equal to the patch size when a stage uses
    channel tokens). State-dict keys: `stem.*`, `stages.{s}.{k}.*` (`ResidualConvBlock`), `mamba_layers.{s}.*`.
    """

    def __init__(
        self,
        plan: UMambaPlan | Mapping[str, Any],
        placement: MambaPlacement | str = MambaPlacement.BOT,
        in_chans: int = 3,
        num_classes: int = 0,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        img_size: int | Sequence[int] | None = None,
        scan: str | ScanOrder = "raster",
        block_surgery: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("in_chans", in_chans)
        check_int("num_classes", num_classes, minimum=0, meaning="0: no classifier")
        check_rates(drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        plan = _as_plan(plan)
        if img_size is not None:
            size = (img_size,) * plan.ndim if isinstance(img_size, int) else tuple(img_size)
            check_ints("img_size", size)
            plan = plan.replace(patch_size=size)
        self.plan = plan
        self.placement = MambaPlacement(placement)
        self.order = scans.get(scan)
        if plan.ndim == 3 and not is_sequence_order(self.order, 3, 4):
            raise ValueError(
                f"scan: a 3D U-Mamba routes the flattened D×H×W grid and takes 1-D orders (raster, bidirectional), "
                f"got {self.order!r}"
            )
        if self.placement is MambaPlacement.ENC and plan.patch_size is None:
            raise ValueError(
                "plan.patch_size: UMambaEnc needs the training patch size (it decides which stages use channel "
                "tokens and their Mamba width); give it in the plan or as img_size="
            )
        dd = {"device": device, "dtype": dtype}
        ndim, features = plan.ndim, plan.features_per_stage
        blocks = plan.encoder_blocks(block_surgery)
        self.in_chans = in_chans
        self.block_surgery = block_surgery
        self.grad_checkpointing = False

        total = blocks[0] + sum(blocks)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stem = _stage(
            in_chans, features[0], plan.kernel_sizes[0], (1,) * ndim, blocks[0], ndim, rates[: blocks[0]], **dd
        )
        stages, first = [], blocks[0]
        for s in range(plan.n_stages):
            in_chs = features[max(s - 1, 0)]
            stage_rates = rates[first : first + blocks[s]]
            first += blocks[s]
            stages.append(
                _stage(in_chs, features[s], plan.kernel_sizes[s], plan.strides[s], blocks[s], ndim, stage_rates, **dd)
            )
        self.stages = nn.ModuleList(stages)
        self.mamba_tokens = self._mamba_tokens()
        self.mamba_layers = nn.ModuleList(
            nn.Identity() if spec is None else MapMamba(spec[1], spec[0], self.order, **dd)
            for spec in self.mamba_tokens
        )

        reduction = [1] * ndim
        self.feature_info = []
        for s, stride in enumerate(plan.strides):
            reduction = [r * st for r, st in zip(reduction, stride)]
            # timm wants one int: the smallest per-axis reduction (plans may downsample axes unevenly); "stride" has
            # the per-axis values.
            self.feature_info.append({
                "num_chs": features[s], "reduction": min(reduction), "stride": tuple(reduction), "module": f"stages.{s}"
            })
        self.num_features = self.head_hidden_size = features[-1]
        self.drop_rate = drop_rate
        self.head_drop = nn.Dropout(drop_rate)
        self.reset_classifier(num_classes, global_pool)
        _init_convs(self)

    def _mamba_tokens(self) -> list[tuple[MapTokens, int] | None]:
        """Per stage: None (no Mamba layer) or (token kind, Mamba width)."""
        plan, n = self.plan, self.plan.n_stages
        features = plan.features_per_stage
        if self.placement is MambaPlacement.BOT:
            return [None] * (n - 1) + [(MapTokens.PATCH, features[-1])]
        sizes = plan.feature_map_sizes(plan.patch_size, what="plan.patch_size")
        specs: list[tuple[MapTokens, int] | None] = []
        for s in range(n):
            # 2D: alternate stages, so that the last one always has a layer (the original's (s odd) XOR (n odd)).
            if plan.ndim == 2 and (s % 2 == 1) == (n % 2 == 1):
                specs.append(None)
                continue
            positions = math.prod(sizes[s])
            specs.append((MapTokens.CHANNEL, positions) if positions <= features[s] else (MapTokens.PATCH, features[s]))
        return specs

    # ------------------------------------------------------------------------------------------------ timm API

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            check_global_pool(global_pool)
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = linear_head(self, self.num_features, num_classes)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return {
            "stem": r"^stem",
            "blocks": r"^(?:stages|mamba_layers)\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.(\d+)", None),
                (r"^mamba_layers\.(\d+)", (99999,)),
            ],
        }

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Mamba's A_log and D (mamba_ssm marks them `_no_weight_decay`)."""
        return {
            f"mamba_layers.{s}.mamba.{name}"
            for s, layer in enumerate(self.mamba_layers)
            if isinstance(layer, MapMamba)
            for name in ("A_log", "D")
        }

    # ------------------------------------------------------------------------------------------------ forward

    @fx_leaf
    def check_input(self, x: Tensor) -> Tensor:
        """x, unless it has a wrong channel count, a size the plan's strides do not divide or that leaves the deepest
        stage one position, or (channel tokens) a size other than the plan's patch size (ValueError)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"UMambaEncoder expects a tensor, got {type(x).__name__}")
        ndim = self.plan.ndim
        if x.ndim != ndim + 2:
            raise ValueError(f"a {ndim}D U-Mamba expects (B, C, {', '.join('DHW'[3 - ndim:])}), got {tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channel(s), got {x.shape[1]} (input {tuple(x.shape)})")
        sizes = self.plan.feature_map_sizes(x.shape[2:], what="input")
        if math.prod(sizes[-1]) < 2:
            smallest = "×".join(map(str, _smallest_input(self.plan)))
            raise ValueError(
                f"the input {tuple(x.shape[2:])} leaves the deepest stage one position {sizes[-1]}, where its "
                f"InstanceNorms need more than one: expected at least {smallest} (twice the plan's total stride "
                f"{self.plan.total_stride()})"
            )
        for s, spec in enumerate(self.mamba_tokens[: len(self.stages)]):
            if spec is not None and spec[0] is MapTokens.CHANNEL and math.prod(sizes[s]) != spec[1]:
                raise ValueError(
                    f"stage {s} uses channel tokens of width {spec[1]}, fixed by plan.patch_size "
                    f"{self.plan.patch_size}; the input {tuple(x.shape[2:])} gives its map {sizes[s]} (run at the "
                    f"patch size, e.g. with sliding-window inference)"
                )
        check_image_like(x, self.stem[0].conv1.weight)
        return x

    def _run(self, module: nn.Module, x: Tensor) -> Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(module, x)
        return module(x)

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Stage outputs (after their Mamba layers: U-Net skips) at `indices`, and unless `intermediates_only` the
        final (bottleneck) map first. Maps are channels-first, (B, C_s, *S_s); `norm` is accepted for timm's API (the
        encoder has no output norm)."""
        check_output_fmt(output_fmt, ("NCHW", "NCDHW"))  # channels-first, 2D or 3D
        x = self.check_input(x)
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last = max_index if stop_early or intermediates_only else len(self.stages) - 1
        x = self._run(self.stem, x)
        intermediates = []
        for s in range(last + 1):
            x = self._run(self.mamba_layers[s], self._run(self.stages[s], x))
            if s in take_indices:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of `indices` (and the classifier); returns the kept indices."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[: max_index + 1]
        self.mamba_layers = self.mamba_layers[: max_index + 1]
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_skips(self, x: Tensor) -> list[Tensor]:
        """Every stage's output, highest resolution first: the decoder's skips."""
        return self.forward_intermediates(x, intermediates_only=True)

    def forward_features(self, x: Tensor) -> Tensor:
        """The bottleneck map (B, C_last, *S_last), after its Mamba layer."""
        x = self.check_input(x)
        x = self._run(self.stem, x)
        for stage, mamba in zip(self.stages, self.mamba_layers):
            x = self._run(mamba, self._run(stage, x))
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=tuple(range(2, 2 + self.plan.ndim)))  # the plan's spatial axes
        x = self.head_drop(x)
        if pre_logits:
            return x
        return self.head(x) if self.global_pool else map_head(self.head, x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ---------------------------------------------------------------------------------------------------- decoder


class UpsampleConv(nn.Module):
    """Nearest upsampling by `scale` per axis, then a 1×1 conv: (B, in_chs, *S) -> (B, out_chs, *(S·scale))."""

    def __init__(self, in_chs: int, out_chs: int, scale: Sequence[int], ndim: int, **dd: Any) -> None:
        super().__init__()
        self.scale = tuple(float(s) for s in scale)
        self.conv = conv_nd(ndim)(in_chs, out_chs, 1, **dd)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))


class UMambaDecoder(nn.Module):
    """U-Mamba's decoder, from the bottleneck up to full resolution.

    Stage t (t = 0 lowest resolution) upsamples by the encoder stride it undoes, concatenates the skip of the same
    resolution (except at full resolution in 2D, as the original), and runs residual blocks; `seg_layers[t]` maps it
    to `num_classes` logits. Set `deep_supervision` (a plain attribute, as nnU-Net's trainer expects on
    `network.decoder`) to get every stage's logits.

    skips: the encoder's stage outputs, highest resolution first.
    """

    def __init__(
        self,
        plan: UMambaPlan | Mapping[str, Any],
        num_classes: int,
        deep_supervision: bool = False,
        block_surgery: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes)
        plan = _as_plan(plan)
        dd = {"device": device, "dtype": dtype}
        n, ndim, features = plan.n_stages, plan.ndim, plan.features_per_stage
        blocks = plan.decoder_blocks(block_surgery)
        self.num_classes = num_classes
        self.deep_supervision = deep_supervision
        # The 2D original does not concatenate the full-resolution skip (its last stage sees only the upsampled map).
        self.concat_skip = [t < n - 2 or ndim == 3 for t in range(n - 1)]
        upsample, stages, seg = [], [], []
        for t in range(n - 1):
            below, skip = features[n - 1 - t], features[n - 2 - t]
            kernel = plan.kernel_sizes[n - 2 - t]
            upsample.append(UpsampleConv(below, skip, plan.strides[n - 1 - t], ndim, **dd))
            in_chs = 2 * skip if self.concat_skip[t] else skip
            stages.append(_stage(in_chs, skip, kernel, (1,) * ndim, blocks[t], ndim, **dd))
            seg.append(conv_nd(ndim)(skip, num_classes, 1, **dd))
        self.upsample_layers = nn.ModuleList(upsample)
        self.stages = nn.ModuleList(stages)
        self.seg_layers = nn.ModuleList(seg)
        self.grad_checkpointing = False
        _init_convs(self)

    def forward_features(self, skips: Sequence[Tensor]) -> list[Tensor]:
        """Decoder stage outputs, lowest resolution first: stage t has (B, F_{n-2-t}, *S_{n-2-t})."""
        if len(skips) != len(self.stages) + 1:
            raise ValueError(f"UMambaDecoder expects {len(self.stages) + 1} skips, got {len(skips)}")
        x, outputs = skips[-1], []
        for t, (upsample, stage) in enumerate(zip(self.upsample_layers, self.stages)):
            x = upsample(x)
            if self.concat_skip[t]:
                x = torch.cat((x, skips[-(t + 2)]), dim=1)
            x = checkpoint(stage, x) if self.grad_checkpointing and not torch.jit.is_scripting() else stage(x)
            outputs.append(x)
        return outputs

    def forward(self, skips: Sequence[Tensor]) -> Tensor | list[Tensor]:
        """Full-resolution logits (B, num_classes, *S); with deep supervision a list, highest resolution first."""
        maps = self.forward_features(skips)
        if not self.deep_supervision:
            return self.seg_layers[-1](maps[-1])
        return [seg(x) for seg, x in zip(self.seg_layers, maps)][::-1]


# ---------------------------------------------------------------------------------------------------- network


class UMamba(nn.Module):
    """U-Mamba segmentation network (Bot or Enc, 2D or 3D) from an explicit plan.

    Args:
        plan: `UMambaPlan` (or a mapping of its fields); `UMambaPlan.from_nnunet_plans(...)` reads an nnU-Net plan.
        num_classes: segmentation outputs (nnU-Net: `label_manager.num_segmentation_heads`).
        in_chans: input channels.
        placement: `MambaPlacement.BOT` or `.ENC`.
        deep_supervision: return every decoder stage's logits (highest resolution first).
        scan, block_surgery: as `UMambaEncoder`.
        allow_autocast: False runs the whole network with autocast off, in its parameters' dtype (the original's
            NoAMP training); the Mamba layers always run with autocast off.

    x: (B, in_chans, *S) -> logits (B, num_classes, *S) (a list with deep supervision). State-dict keys:
    `encoder.*` (`UMambaEncoder`) and `decoder.*` (`UMambaDecoder`).
    """

    def __init__(
        self,
        plan: UMambaPlan | Mapping[str, Any],
        num_classes: int,
        in_chans: int = 1,
        placement: MambaPlacement | str = MambaPlacement.BOT,
        deep_supervision: bool = False,
        scan: str | ScanOrder = "raster",
        block_surgery: bool = True,
        allow_autocast: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        plan = _as_plan(plan)
        dd = {"device": device, "dtype": dtype}
        self.allow_autocast = allow_autocast
        self.encoder = UMambaEncoder(plan, placement, in_chans, num_classes=0, scan=scan, block_surgery=block_surgery,
                                     **dd)
        self.decoder = UMambaDecoder(plan, num_classes, deep_supervision, block_surgery, **dd)
        self.plan, self.placement = self.encoder.plan, self.encoder.placement
        self.in_chans, self.num_classes = in_chans, num_classes

    @property
    def deep_supervision(self) -> bool:
        return self.decoder.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        self.decoder.deep_supervision = bool(enabled)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.encoder.set_grad_checkpointing(enable)
        self.decoder.grad_checkpointing = enable

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """The encoder's skips, highest resolution first."""
        return self.encoder.forward_skips(x)

    def forward_decoder_features(self, x: Tensor) -> list[Tensor]:
        """The decoder's stage maps before the segmentation convs, highest resolution first (for a custom head)."""
        return self.decoder.forward_features(self.forward_features(x))[::-1]

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        if self.allow_autocast:
            return self.decoder(self.forward_features(x))
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(self.encoder.stem[0].conv1.weight.dtype)
            return self.decoder(self.forward_features(x))

    @classmethod
    def from_nnunet_plans(
        cls,
        plans: Mapping[str, Any] | str | Path,
        configuration: str,
        dataset_json: Mapping[str, Any] | str | Path,
        placement: MambaPlacement | str = MambaPlacement.BOT,
        **kwargs: Any,
    ) -> UMamba:
        """The network nnU-Net's U-Mamba trainers build for `configuration` of `plans` (plans.json) and the dataset
        (dataset.json: input channels and segmentation heads). Cascade configurations are not supported."""
        dataset = _json(dataset_json)
        channels = dataset.get("channel_names", dataset.get("modality"))
        if not channels:
            raise ValueError("dataset.json: no 'channel_names' (or 'modality') entry to count the input channels")
        plan = UMambaPlan.from_nnunet_plans(_json(plans), configuration)
        return cls(plan, num_segmentation_heads(dataset), len(channels), placement, **kwargs)


    @classmethod
    def from_nnunet_checkpoint(
        cls,
        path: str | Path,
        placement: MambaPlacement | str | None = None,
        plans: Mapping[str, Any] | str | Path | None = None,
        dataset_json: Mapping[str, Any] | str | Path | None = None,
        configuration: str | None = None,
        **kwargs: Any,
    ) -> UMamba:
        """Rebuild the network of an nnU-Net U-Mamba checkpoint (`checkpoint_final.pth` of the original's trainers or
        of `vssm.nnunet`'s) and load its weights strictly.

        The plan, dataset and configuration default to the checkpoint's own `init_args` (nnU-Net saves them; the
        plans.json and dataset.json next to the training output hold the same), the placement to its trainer name
        (`nnUNetTrainerUMambaBot...` / `nnUNetTrainerUMambaEnc...`). Read weights-only (`read_checkpoint`).
        """
        checkpoint = read_checkpoint(path)
        init_args = checkpoint.get("init_args") or {}
        if placement is None:
            trainer = str(checkpoint.get("trainer_name", ""))
            found = [p for p in MambaPlacement if trainer.startswith(f"nnUNetTrainerUMamba{p.value.capitalize()}")]
            if not found:
                raise ValueError(f"{path}: trainer {trainer!r} is not a U-Mamba trainer; pass placement='bot' or 'enc'")
            placement = found[0]
        sources = {"plans": plans, "dataset_json": dataset_json, "configuration": configuration}
        for name, value in sources.items():
            if value is None and name not in init_args:
                raise ValueError(f"{path}: the checkpoint has no init_args[{name!r}]; pass {name}=")
            sources[name] = init_args[name] if value is None else value
        model = cls.from_nnunet_plans(
            sources["plans"], sources["configuration"], sources["dataset_json"], placement, **kwargs
        )
        model.load_state_dict(checkpoint_filter_fn(checkpoint, model), strict=True)
        return model


def _json(value: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(value, (str, Path)):
        return json.loads(Path(value).read_text())
    return value


def num_segmentation_heads(dataset_json: Mapping[str, Any]) -> int:
    """nnU-Net's `label_manager.num_segmentation_heads`: one per label (ignore label excluded), or one per
    foreground region for region-based datasets."""
    labels = dict(dataset_json["labels"])
    labels.pop("ignore", None)
    regions = any(isinstance(v, (list, tuple)) and len(v) > 1 for v in labels.values())
    if regions:
        return len([k for k in labels if k != "background"])
    return len({v if isinstance(v, int) else v[0] for v in labels.values()})


# ---------------------------------------------------------------------------------------------------- checkpoints

# The original's block modules -> ours. BasicBlockD nests its conv and norm (`conv1.conv`, `conv1.norm`); BasicResBlock
# names its projection `conv3`.
_RENAMES = (
    (re.compile(r"\.conv([12])\.conv\."), r".conv\1."),
    (re.compile(r"\.conv([12])\.norm\."), r".norm\1."),
    (re.compile(r"\.conv3\."), ".skip_conv."),
)
_ALIAS = re.compile(r"^(.*)\.all_modules\.([01])\.(weight|bias)$")


def _drop_alias(state_dict: dict[str, Tensor], key: str, target: str, out: dict[str, Tensor]) -> None:
    """Keep one tensor of a duplicated pair: `key` is the alias of `target` (both must hold the same values)."""
    value = state_dict[key]
    if target not in state_dict:
        out.setdefault(target, value)
        return
    if state_dict[target].shape != value.shape or not torch.equal(state_dict[target], value):
        raise ValueError(f"checkpoint: {key} should duplicate {target} (one shared tensor), but the values differ")


def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: UMamba | UMambaEncoder) -> dict[str, Tensor]:
    """An original U-Mamba checkpoint (nnU-Net's `{'network_weights': ...}` or a bare state dict) -> `model`'s keys.

    Strips `module.` / `_orig_mod.`; drops the `decoder.encoder.*` and `*.all_modules.{0,1}.*` duplicates after checking
    that they equal `encoder.*` / the conv and norm they alias; renames the blocks' keys; moves Bot's `mamba_layer.*` to
    the last encoder stage. For a `UMambaEncoder` (timm backbone) only the encoder part is kept. A state dict of this
    library passes through. The January 2024 networks (transposed-conv decoder) are rejected. Any remaining mismatch
    raises ValueError naming the model and the first differing keys.
    """
    what = _describe(model)
    sd, _ = select_weights(state_dict, what=f"checkpoint for {what}")
    if any(k.startswith(("decoder.transpconvs.", "ln.")) for k in sd):
        raise ValueError(
            f"{what}: this checkpoint comes from U-Mamba's January 2024 networks (UMambaBot.py / UMambaEnc.py: "
            "transposed-conv decoder, top-level `ln`/`mamba`), whose layout and blocks differ from the current "
            "networks (bowang-lab/U-Mamba 530739b and later) that vssm implements; it cannot be converted"
        )
    out: dict[str, Tensor] = {}
    for key in sd:
        if key.startswith("decoder.encoder."):
            _drop_alias(sd, key, key.removeprefix("decoder."), out)
            continue
        alias = _ALIAS.match(key)
        if alias:
            prefix, index, param = alias.groups()
            _drop_alias(sd, key, f"{prefix}.{('conv', 'norm')[int(index)]}.{param}", out)
            continue
        out.setdefault(key, sd[key])
    encoder = model.encoder if isinstance(model, UMamba) else model
    last = len(encoder.mamba_layers) - 1
    converted = {}
    for key, value in out.items():
        if key.startswith("decoder.encoder."):
            continue
        key = re.sub(r"^mamba_layer\.", f"encoder.mamba_layers.{last}.", rename_key(key, _RENAMES))
        converted[key] = value
    if isinstance(model, UMambaEncoder) and any(k.startswith("encoder.") for k in converted):
        converted = {k.removeprefix("encoder."): v for k, v in converted.items() if k.startswith("encoder.")}
    check_fits(converted, model, f"checkpoint does not fit {what}")
    return converted


def _describe(model: UMamba | UMambaEncoder) -> str:
    plan = model.plan
    return f"{model_name(model)} ({model.placement.value}, {plan.ndim}D, features {list(plan.features_per_stage)})"


# ---------------------------------------------------------------------------------------------------- registry


def _create_encoder(variant: str, pretrained: bool = False, **kwargs: Any) -> UMambaEncoder:
    out_indices = tuple(range(_as_plan(kwargs["plan"]).n_stages))  # every stage: the U-Net's skips
    return build_model(UMambaEncoder, variant, pretrained, checkpoint_filter_fn, out_indices, **kwargs)


def _smallest_input(plan: UMambaPlan) -> tuple[int, ...]:
    """The smallest input (square / cube) whose deepest map has more than one position: twice the total stride."""
    return tuple(2 * stride for stride in plan.total_stride())


def _cfg(plan: dict[str, Any], fixed: bool, **kwargs: Any) -> dict[str, Any]:
    """timm's config of a variant built on `plan` (one input channel shown as timm's three), input at its patch size."""
    built = UMambaPlan(**plan)
    return {
        "num_classes": 0,
        "input_size": (3, *plan["patch_size"]),
        "min_input_size": (3, *_smallest_input(built)),
        "fixed_input_size": fixed,
        "pool_size": tuple(size // stride for size, stride in zip(plan["patch_size"], built.total_stride())),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        # nnU-Net z-scores every channel (per image, or with dataset statistics for CT) before the network.
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "first_conv": ("stem.0.conv1", "stem.0.skip_conv"),
        "classifier": "head",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2401.04722",
        "paper_name": "U-Mamba: Enhancing Long-range Dependency for Biomedical Image Segmentation",
        "origin_url": "https://github.com/bowang-lab/U-Mamba",
        "notes": ("No released weights: U-Mamba is trained per dataset with nnU-Net (see vssm.nnunet).",),
        **kwargs,
    }


# nnU-Net's 2D plan for a 256 × 256 patch: 7 stages of 32..512 features, 3 × 3 kernels, stride 2 below stage 0.
_PLAN_2D = {
    "features_per_stage": (32, 64, 128, 256, 512, 512, 512),
    "kernel_sizes": ((3, 3),) * 7,
    "strides": ((1, 1),) + ((2, 2),) * 6,
    "n_conv_per_stage": (2,) * 7,
    "n_conv_per_stage_decoder": (2,) * 6,
    "patch_size": (256, 256),
}
# The golden fixtures' plan (tests/fixtures/umamba_*_2d_test).
_PLAN_TEST_2D = {
    "features_per_stage": (8, 16, 32, 64, 64),
    "kernel_sizes": ((3, 3),) * 5,
    "strides": ((1, 1),) + ((2, 2),) * 4,
    "n_conv_per_stage": (2,) * 5,
    "n_conv_per_stage_decoder": (2,) * 4,
    "patch_size": (64, 64),
}

default_cfgs = generate_default_cfgs({
    "umamba_bot_2d.untrained": _cfg(_PLAN_2D, fixed=False),
    "umamba_enc_2d.untrained": _cfg(_PLAN_2D, fixed=True),
    "test_umamba_bot_2d.untrained": _cfg(_PLAN_TEST_2D, fixed=False),
    "test_umamba_enc_2d.untrained": _cfg(_PLAN_TEST_2D, fixed=True),
})


def _segmentation_network(plan: Mapping[str, Any], placement: MambaPlacement, plain: bool,
                          input_size: tuple[int, int, int]) -> UMamba:
    """The segmentation network (4 classes, no deep supervision) on `plan` for inputs of `input_size` (C, H, W), in
    eval mode; with `plain`, every Mamba layer replaced by identity (the same plan's residual U-Net)."""
    network = UMamba(plan, num_classes=4, in_chans=input_size[0], placement=placement).eval()
    if plain:
        layers = network.encoder.mamba_layers
        network.encoder.mamba_layers = nn.ModuleList(nn.Identity() for _ in layers)
        network.encoder.mamba_tokens = [None] * len(layers)
    return network


def _timed(label: str, plan: Mapping[str, Any], placement: MambaPlacement, plain: bool = False) -> TimedNetwork:
    """`_segmentation_network` as a speed target's network, named `label` in the tables."""
    return TimedNetwork(label, build=partial(_segmentation_network, plan, placement, plain))


def _golden_network(placement: MambaPlacement, kwargs: Mapping[str, Any], input_shape: Sequence[int]) -> UMamba:
    """Our UMamba for the original UMambaBot / UMambaEnc constructor's arguments (`kwargs`, GOLDEN.md) and an input
    of `input_shape` (B, C, *spatial): the patch size is the original's `input_size`, else the input's."""
    plan = UMambaPlan(features_per_stage=kwargs["features_per_stage"], kernel_sizes=kwargs["kernel_sizes"],
                      strides=kwargs["strides"], n_conv_per_stage=kwargs["n_conv_per_stage"],
                      n_conv_per_stage_decoder=kwargs["n_conv_per_stage_decoder"],
                      patch_size=kwargs.get("input_size", input_shape[2:]))
    return UMamba(plan, num_classes=kwargs["num_classes"], in_chans=kwargs["input_channels"], placement=placement,
                  deep_supervision=kwargs["deep_supervision"])


# What the tools read (vssm.models._records). Headline: Bot, the original's main network. No FLOP counts were
# published. The golden fixtures and the speed targets are the segmentation network, not the registered encoder.
HEADLINE_VARIANT = "umamba_bot_2d"
GOLDEN_FIXTURES = {
    "umamba_bot_2d_test": GoldenFixture("UMamba (bot)", build=partial(_golden_network, MambaPlacement.BOT)),
    "umamba_enc_2d_test": GoldenFixture("UMamba (enc)", build=partial(_golden_network, MambaPlacement.ENC)),
}
_UNET_2D = _timed("plain U-Net (nnU-Net 2D plan, 256²)", _PLAN_2D, MambaPlacement.BOT, plain=True)
SPEED_TARGETS = (
    SpeedTarget(_timed("UMambaBot 2D (nnU-Net 2D plan, 256²)", _PLAN_2D, MambaPlacement.BOT), _UNET_2D, 1.5,
                Metric.TIME, batch=1, input_size=(1, 256, 256)),
    SpeedTarget(_timed("UMambaEnc 2D (nnU-Net 2D plan, 256²)", _PLAN_2D, MambaPlacement.ENC), _UNET_2D, None,
                Metric.TIME, batch=1, input_size=(1, 256, 256)),
)
TEST_SPEED_TARGETS = (
    SpeedTarget(_timed("UMambaBot 2D (test plan)", _PLAN_TEST_2D, MambaPlacement.BOT),
                _timed("plain U-Net (test plan)", _PLAN_TEST_2D, MambaPlacement.BOT, plain=True), 1.5, Metric.TIME,
                batch=1, input_size=(1, 64, 64)),
)


@register_model
def umamba_bot_2d(pretrained: bool = False, **kwargs: Any) -> UMambaEncoder:
    """U-Mamba Bot encoder on nnU-Net's 2D plan for 256 × 256 patches (Mamba on the 4 × 4 bottleneck)."""
    model_args = dict(placement=MambaPlacement.BOT, plan=dict(_PLAN_2D))
    return _create_encoder("umamba_bot_2d", pretrained, **dict(model_args, **kwargs))


@register_model
def umamba_enc_2d(pretrained: bool = False, **kwargs: Any) -> UMambaEncoder:
    """U-Mamba Enc encoder on nnU-Net's 2D plan for 256 × 256 patches (Mamba after stages 0, 2, 4, 6)."""
    model_args = dict(placement=MambaPlacement.ENC, plan=dict(_PLAN_2D))
    return _create_encoder("umamba_enc_2d", pretrained, **dict(model_args, **kwargs))


@register_model
def test_umamba_bot_2d(pretrained: bool = False, **kwargs: Any) -> UMambaEncoder:
    """Tiny U-Mamba Bot encoder (the golden fixture's plan: 5 stages of 8..64 features, 64 × 64)."""
    model_args = dict(placement=MambaPlacement.BOT, plan=dict(_PLAN_TEST_2D))
    return _create_encoder("test_umamba_bot_2d", pretrained, **dict(model_args, **kwargs))


@register_model
def test_umamba_enc_2d(pretrained: bool = False, **kwargs: Any) -> UMambaEncoder:
    """Tiny U-Mamba Enc encoder (the golden fixture's plan; stage 4 uses channel tokens)."""
    model_args = dict(placement=MambaPlacement.ENC, plan=dict(_PLAN_TEST_2D))
    return _create_encoder("test_umamba_enc_2d", pretrained, **dict(model_args, **kwargs))

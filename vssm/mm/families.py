"""The vssm families as MMEngine backbones: one `VSSMBackbone` subclass each, registered in mmengine's root MODELS
registry (so mmdet's and mmseg's registries find them through their parent).

Adding a family (e.g. LocalMamba) is one entry here plus its configs:

    @MODELS.register_module()
    class LocalVSSMBackbone(VSSMBackbone):
        models = ("local_vssm_*", "test_local_vssm")           # the timm names it builds
        checkpoint_filter = staticmethod(localmamba.checkpoint_filter_fn)

and, for what differs from the timm feature contract, a class attribute or hook: `plain = True` (single-stride
network: Vim's multi-scale adapter), `out_norm = False`, `out_norm_name = "outnorm_{}"` (LocalVim's keys),
`default_kwargs`, `head_keys`, `network_features`, `build_network`, `feature_info`, `prune_network`,
`network_group_matcher`, `network_no_weight_decay` (see `VSSMBackbone`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import timm
import torch
from mmengine.registry import MODELS
from timm.layers import LayerNorm2d
from torch import Tensor, nn

from vssm.layers.token_pos_embed import middle_index, remove_token
from vssm.models import groupmamba, localmamba, mambavision, msvmamba, plainmamba, umamba, vim, vmamba

from .backbone import VSSMBackbone

__all__ = [
    "GroupMambaBackbone",
    "LocalVMambaBackbone",
    "LocalVimBackbone",
    "MSVMambaBackbone",
    "MambaVisionBackbone",
    "PlainMambaBackbone",
    "UMambaBackbone",
    "VMambaBackbone",
    "VimBackbone",
]


# ---------------------------------------------------------------------------------------------------- Vim


def _vim_checkpoint_filter(state_dict: dict[str, Tensor], net: vim.VisionMamba) -> dict[str, Tensor]:
    """`vim.checkpoint_filter_fn`, after dropping a class token the dense network does not have: the token and its
    position entry, which sits in the middle of the grid entries (the original segmentation wrapper dropped entry 0,
    a grid position, for these middle-class-token checkpoints)."""
    if not net.has_class_token and "cls_token" in state_dict:
        state_dict = dict(state_dict)
        del state_dict["cls_token"]
        pos = state_dict.get("pos_embed")
        if pos is not None:
            state_dict["pos_embed"] = remove_token(pos, middle_index(pos.shape[1] - 1))[0]
    return vim.checkpoint_filter_fn(state_dict, net)


@MODELS.register_module()
class VimBackbone(VSSMBackbone):
    """Vim (hustvl/Vim) for dense prediction, as its segmentation backbone `VisionMambaSeg`: no class token, the
    position embedding resampled to the input's grid, the mixer outputs of blocks `out_indices` (default [5, 11, 17,
    23]) through the multi-scale adapter `fpn1..fpn4` (strides 4/8/16/32), no out norms. Pass `img_size` (the
    training crop) so a 224-px checkpoint's position embedding is resampled once at load."""

    models = ("vim_*", "test_vim")
    plain = True
    out_norm = False
    default_kwargs = MappingProxyType({"class_token": False, "global_pool": "avg", "dynamic_img_size": True})
    checkpoint_filter = staticmethod(_vim_checkpoint_filter)

    def network_features(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """The mixer outputs h of the blocks in `indices` (the original's default, not the residual stream), NCHW."""
        net = self._net
        tokens, grid = net.embed(x)
        _, taps = net.forward_blocks(tokens, grid, indices, max(indices) + 1)
        return [net.tokens_to_map(state.hidden, grid)[0] for state in taps]


@MODELS.register_module()
class LocalVimBackbone(VimBackbone):
    """LocalVim (hunto/LocalMamba) as its `MM_LocalVim`: any input size (zero-padded to a multiple of 16, position
    embedding and RoPE tables resized bicubically to the grid), the mixer outputs of blocks `out_indices` (default
    [4, 9, 14, 19]) through LayerNorms `outnorm_{i}`, all at stride 16 (no multi-scale adapter: the original's
    UperNet takes the four stride-16 maps). Pass `img_size` (the training crop) so a 224-px checkpoint's position
    embedding and RoPE tables are resized once at load."""

    models = ("local_vim_*", "test_local_vim")
    plain = False
    out_norm = True
    out_norm_name = "outnorm_{}"
    default_kwargs = MappingProxyType({"dynamic_img_size": True})
    checkpoint_filter = staticmethod(localmamba.checkpoint_filter_fn)

    def _check_out_indices(self, out_indices: Sequence[int] | None, count: int) -> tuple[int, ...]:
        if out_indices is None:  # four evenly spaced blocks, LocalVim's [4, 9, 14, 19] at depth 20
            out_indices = tuple(count * (k + 1) // 4 - 1 for k in range(4))
        return super()._check_out_indices(out_indices, count)


# ---------------------------------------------------------------------------------------------------- VMamba


@MODELS.register_module()
class VMambaBackbone(VSSMBackbone):
    """VMamba (MzeroMiko/VMamba) as its `MM_VSSM`: the stage maps before each downsample through `outnorm{i}`."""

    models = ("vmamba_*", "test_vmamba")
    head_keys = ("norm.", "head.")  # the v0 checkpoints' names of classifier.norm / classifier.head
    checkpoint_filter = staticmethod(vmamba.checkpoint_filter_fn)


@MODELS.register_module()
class LocalVMambaBackbone(VSSMBackbone):
    """LocalVMamba (hunto/LocalMamba) as its `MM_LocalVSSM`: the stage maps before each downsample through
    `outnorm{i}`; non-square inputs scan `v` directions with the original's reverse (`v_reverse`, as classification)."""

    models = ("local_vssm_*", "test_local_vssm")
    checkpoint_filter = staticmethod(localmamba.checkpoint_filter_fn)


@MODELS.register_module()
class MSVMambaBackbone(VSSMBackbone):
    """MSVMamba (YuHengsss/MSVMamba) as its `MM_VSSM`: the stage maps before each downsample through `outnorm{i}`."""

    models = ("msvmamba_*", "test_msvmamba")
    checkpoint_filter = staticmethod(msvmamba.checkpoint_filter_fn)


@MODELS.register_module()
class GroupMambaBackbone(VSSMBackbone):
    """GroupMamba (Amshaker/GroupMamba) for dense prediction: each stage's blocks' output before the stage's norm
    (strides 4/8/16/32) through `outnorm{i}`. The authors released no detection / segmentation wrapper; this is the
    VMamba-style one (`MM_VSSM`) over GroupMamba's stages."""

    models = ("groupmamba_*", "test_groupmamba")
    checkpoint_filter = staticmethod(groupmamba.checkpoint_filter_fn)


# ---------------------------------------------------------------------------------------------------- PlainMamba


def _plainmamba_checkpoint_filter(state_dict: dict[str, Tensor], net: plainmamba.PlainMamba) -> dict[str, Tensor]:
    """`plainmamba.checkpoint_filter_fn`, without the final norm (`ln1.`, ours `norm.`) where the dense network
    pruned it (no output at the last layer)."""
    if isinstance(net.norm, nn.Identity):
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(("ln1.", "norm."))}
    return plainmamba.checkpoint_filter_fn(state_dict, net)


@MODELS.register_module()
class PlainMambaBackbone(VSSMBackbone):
    """PlainMamba (ChenhongyiYang/PlainMamba) as its segmentation backbone `PlainMambaSeg`: the layer outputs at
    `out_indices` (default four evenly spaced, the original configs' [5, 11, 17, 23] / [8, 17, 26, 35]), all at stride
    16, through LayerNorms `norm_layer{i}` (eps 1e-6), except an output at the last layer, which gets the network's
    final norm instead (the original's `ln1`). Any input size: the position embedding is resampled to the grid at
    every forward, as the original does (leave `img_size` at the checkpoint's 224)."""

    models = ("plainmamba_*", "test_plainmamba")
    out_norm = True
    out_norm_name = "norm_layer{}"
    checkpoint_filter = staticmethod(_plainmamba_checkpoint_filter)

    def __init__(self, model: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        if self.use_out_norm:  # the original's norm_cfg: LayerNorm eps 1e-6; none where the final norm applies
            for i, channels in zip(self.out_indices, self.out_channels):
                final = self._applies_final_norm(i)
                setattr(self, self.out_norm_name.format(i), nn.Identity() if final else LayerNorm2d(channels, eps=1e-6))

    def _applies_final_norm(self, index: int) -> bool:
        return index == len(self._net.layers) - 1 and not isinstance(self._net.norm, nn.Identity)

    def _check_out_indices(self, out_indices: Sequence[int] | None, count: int) -> tuple[int, ...]:
        if out_indices is None:  # four evenly spaced layers, the original's [5, 11, 17, 23] at depth 24
            out_indices = tuple(count * (k + 1) // 4 - 1 for k in range(4))
        return super()._check_out_indices(out_indices, count)

    @staticmethod
    def prune_network(net: plainmamba.PlainMamba, indices: Sequence[int]) -> None:
        """The classifier and the layers after the last output; the final norm unless the last layer is an output."""
        net.prune_intermediate_layers(list(indices), prune_norm=max(indices) != len(net.layers) - 1, prune_head=True)

    def network_features(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """The layer outputs (the residual stream) at `indices`, NCHW; the last layer's through the final norm."""
        net = self._net
        tokens, grid = net.embed(x)
        _, taps = net.forward_layers(tokens, grid, indices, max(indices) + 1)
        maps = []
        for i, tap in zip(indices, taps):
            if self._applies_final_norm(i):
                tap = net.norm(tap)
            maps.append(tap.transpose(1, 2).reshape(tap.shape[0], tap.shape[2], *grid))
        return maps


# ---------------------------------------------------------------------------------------------------- MambaVision


@MODELS.register_module()
class MambaVisionBackbone(VSSMBackbone):
    """MambaVision (NVlabs/MambaVision) as its `MM_mamba_vision`: the level maps before each downsample through
    `outnorm{i}`, the configured `drop_path_rate` honoured (the original wrapper dropped it: 0.2 whatever the
    config said). The det/seg configs set `window_size` to cover a whole padded level map."""

    models = ("mambavision_*", "test_mambavision")
    checkpoint_filter = staticmethod(mambavision.checkpoint_filter_fn)


# ---------------------------------------------------------------------------------------------------- U-Mamba


def _under(matcher: dict, prefix: str) -> dict:
    """A timm group matcher for a submodule, rewritten for the parent's parameter names (`^x` -> `^prefix\\.x`)."""
    def rewrite(pattern: str) -> str:
        return f"^{re.escape(prefix)}\\.{pattern.removeprefix('^')}"

    out = {}
    for group, spec in matcher.items():
        if isinstance(spec, str):
            out[group] = rewrite(spec)
        else:
            out[group] = [(rewrite(pattern), suffix) for pattern, suffix in spec]
    return out


@MODELS.register_module()
class UMambaBackbone(VSSMBackbone):
    """U-Mamba (bowang-lab/U-Mamba) as a whole network for mmseg: encoder (with its Mamba layers) and decoder; the
    outputs are the decoder's maps, highest resolution first (strides 1, 2, 4, ... of the plan). With mmseg's
    `FCNHead(num_convs=0)` on map 0 it is U-Mamba's network; more such heads on maps 1.. are its deep supervision.

    `model` picks the placement and default plan (`umamba_bot_2d`, `umamba_enc_2d`, `test_umamba_*_2d`); `plan=`
    (a `UMambaPlan` or its fields), `img_size` (the patch size), `in_chans` (default 1), `scan`, `block_surgery`
    and `allow_autocast` are passed on. `init_cfg=dict(type='Pretrained', checkpoint=...)` loads an nnU-Net U-Mamba
    checkpoint (the original's trainers or vssm.nnunet's) without its segmentation convs.
    """

    models = ("umamba_*", "test_umamba_*")
    out_norm = False
    checkpoint_filter = staticmethod(umamba.checkpoint_filter_fn)

    @classmethod
    def build_network(cls, model: str, kwargs: dict[str, Any]) -> umamba.UMamba:
        encoder_kwargs = {key: kwargs.pop(key) for key in ("plan", "img_size") if key in kwargs}
        with torch.device("meta"):  # only for the name's plan and placement
            encoder = timm.create_model(model, pretrained=False, **encoder_kwargs)
        kwargs.setdefault("in_chans", 1)
        return umamba.UMamba(encoder.plan, num_classes=1, placement=encoder.placement, **kwargs)

    def network_features(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        maps = self._net.forward_decoder_features(x)
        return [maps[i] for i in indices]

    @staticmethod
    def feature_info(net: umamba.UMamba) -> list[dict[str, Any]]:
        plan, info, reduction = net.plan, [], 1
        for s in range(plan.n_stages - 1):  # the decoder's maps, highest resolution first: encoder stage s's size
            reduction *= min(plan.strides[s])
            info.append({"num_chs": plan.features_per_stage[s], "reduction": reduction})
        return info

    @staticmethod
    def prune_network(net: umamba.UMamba, indices: Sequence[int]) -> None:
        net.decoder.seg_layers = nn.ModuleList()  # the segmentation convs are the mmseg heads' `conv_seg`

    def network_group_matcher(self, coarse: bool) -> dict:
        return _under(self._net.encoder.group_matcher(coarse=coarse), "encoder")

    def network_no_weight_decay(self) -> set[str]:
        return {f"encoder.{name}" for name in self._net.encoder.no_weight_decay()}

"""`VSSMBackbone`: one adapter from vssm's timm networks to MMDetection / MMSegmentation backbones.

A family is a subclass that sets a few class attributes and, where its network differs from the timm feature
contract, overrides a hook (see `vssm/mm/families.py`):

    models              fnmatch patterns of the timm names the type builds ('vmamba_*', 'test_vmamba')
    checkpoint_filter   the family's `checkpoint_filter_fn` (official / our checkpoint -> our keys, strict)
    default_kwargs      network kwargs the dense setting needs (Vim: no class token, any input size)
    out_norm            per-output LayerNorm2d `outnorm{i}` by default, as the original wrappers
    plain               single-stride network: the multi-scale adapter `fpn1..fpn4` (strides 4/8/16/32)
    head_keys           classification-only checkpoint prefixes under legacy names, dropped on load
    hooks               build_network, network_features, feature_info, prune_network, network_group_matcher,
                        network_no_weight_decay

The backbone registers the network's children, parameters and buffers as its own (the network object stays outside
the module tree and runs its methods on them), so parameter names, optimizer `custom_keys` and checkpoint keys are the
original wrappers': `backbone.layers.0.blocks.0...`, `backbone.outnorm0.weight`, `backbone.fpn1.0.weight`. Before the
network runs, it is pointed at them again through `setattr` (`_point_network`): whatever replaces a registered member
(`to_empty` after a meta-device build, a model-wide module swap) does so in the backbone's registry only. Registering
the network as a submodule instead would put a prefix in every parameter name (`backbone.net.layers...`), which
`custom_keys` such as `backbone.patch_embed` and the layer-decay groups match. The network's classifier and final norm
are pruned (as the originals delete them), and so are the stages after the last output.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import timm
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize
from timm.layers import LayerNorm2d
from timm.models._manipulate import group_with_matcher
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from vssm.checkpoints import read_checkpoint
from vssm.models import list_models

from .checkpoint import is_url, resolve_checkpoint, state_dict_of
from .pyramid import PYRAMID_STRIDES, simple_pyramid

__all__ = ["VSSMBackbone"]

_UNMATCHED = "\x00"  # a parameter name no group matcher matches
OUT_NORM_EPS = 1e-5  # the originals' `outnorm{i}`: nn.LayerNorm / their LayerNorm2d at PyTorch's default eps


def _removed_prefixes(before: set[str], after: set[str]) -> tuple[str, ...]:
    """The outermost module prefixes (`classifier.`, `layers.3.`) of the state-dict keys in `before` and not in
    `after`; a prefix also matches checkpoint keys under legacy names inside that module."""
    prefixes = set()
    for key in before - after:
        parts = key.split(".")
        outermost = next((".".join(parts[:n]) + "." for n in range(1, len(parts))
                          if not any(k.startswith(".".join(parts[:n]) + ".") for k in after)), key)
        prefixes.add(outermost)
    return tuple(sorted(prefixes))


class VSSMBackbone(BaseModule):
    """A vssm network as an MMEngine backbone: `forward(x) -> tuple` of NCHW maps, one per `out_indices`.

    Args:
        model: the network's timm name (one of the family's, e.g. 'vmamba_tiny'; `vssm.list_models()`).
        out_indices: which network features to return (hierarchical: stages 0-3 at strides 4-32, the default all;
            plain: the blocks whose maps feed the multi-scale adapter, default four evenly spaced, Vim's [5, 11, 17,
            23]; one index feeds all four branches, ViTDet-style).
        out_norm: LayerNorm2d (eps 1e-5) on each output, `outnorm{i}` (default: as the family's original wrapper).
        frozen_stages: -1 trains everything; 0 freezes the stem (patch embedding, position embedding); k > 0 also the
            first k stages (plain: blocks), with their out norms. Frozen modules stay in eval mode.
        norm_eval: keep every BatchNorm in eval mode while training (running statistics frozen).
        drop_path_rate: stochastic depth of the network (None: the variant's own).
        with_cp: gradient checkpointing in the network's blocks.
        pyramid_norm_cfg: mmcv norm of the multi-scale adapter (plain networks; the original used SyncBN).
        init_cfg: mmengine init config; `dict(type='Pretrained', checkpoint=PATH_OR_URL, prefix=None)` loads an
            official or vssm checkpoint through the family's conversion (strict: a mismatch raises ValueError naming
            the keys), `prefix='backbone.'` a detector's or segmentor's backbone. A missing local file fails here.
        **model_kwargs: passed to the network (e.g. `img_size`, `scan`, `plan`).
    """

    models: ClassVar[tuple[str, ...]] = ()
    default_kwargs: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    out_norm: ClassVar[bool] = True
    plain: ClassVar[bool] = False
    head_keys: ClassVar[tuple[str, ...]] = ()
    out_norm_name: ClassVar[str] = "outnorm{}"

    def __init__(
        self,
        model: str,
        out_indices: Sequence[int] | None = None,
        out_norm: bool | None = None,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        drop_path_rate: float | None = None,
        with_cp: bool = False,
        pyramid_norm_cfg: dict | None = None,
        init_cfg: dict | list[dict] | None = None,
        **model_kwargs: Any,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self._check_init_cfg(init_cfg)
        self.model_name = self._check_model(model)
        kwargs = {**self.default_kwargs, **model_kwargs}
        if drop_path_rate is not None:
            kwargs["drop_path_rate"] = drop_path_rate
        net = self.build_network(model, kwargs)
        object.__setattr__(self, "_net", net)  # outside the module tree: its modules become ours below
        info = self.feature_info(net)
        self.out_indices = self._check_out_indices(out_indices, len(info))
        self.norm_eval = norm_eval
        if pyramid_norm_cfg is not None and not self.plain:
            raise ValueError(f"pyramid_norm_cfg: {type(self).__name__} networks are hierarchical and have no "
                             "multi-scale adapter")

        before = set(net.state_dict())
        self.prune_network(net, self.out_indices)
        # Checkpoint entries of what the dense backbone does not have (classifier, final norm, unused stages).
        self._pruned_prefixes = _removed_prefixes(before, set(net.state_dict()))
        self._pruned_prefixes += self.head_keys
        self.frozen_stages = self._check_frozen_stages(frozen_stages)
        if with_cp:
            net.set_grad_checkpointing(True)

        persistent = set(net.state_dict(keep_vars=True))
        for name, child in net.named_children():
            self.add_module(name, child)
        for name, param in net.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, buffer in net.named_buffers(recurse=False):
            self.register_buffer(name, buffer, persistent=name in persistent)
        members = [*net.named_children(), *net.named_parameters(recurse=False), *net.named_buffers(recurse=False)]
        self._network_members = tuple(name for name, _ in members)

        self.use_out_norm = self.out_norm if out_norm is None else out_norm
        added = []
        channels = [info[i]["num_chs"] for i in self.out_indices]
        if self.use_out_norm:
            for i, chs in zip(self.out_indices, channels):
                added.append(self.out_norm_name.format(i))
                self.add_module(added[-1], LayerNorm2d(chs, eps=OUT_NORM_EPS))
        if self.plain:
            stride = info[self.out_indices[0]]["reduction"]
            norm_cfg = pyramid_norm_cfg if pyramid_norm_cfg is not None else dict(type="SyncBN", requires_grad=True)
            for k, branch in enumerate(simple_pyramid(channels[0], stride, norm_cfg), start=1):
                added.append(f"fpn{k}")
                self.add_module(added[-1], branch)
            channels = [channels[0]] * len(PYRAMID_STRIDES)
            strides = list(PYRAMID_STRIDES)
        else:
            strides = [info[i]["reduction"] for i in self.out_indices]
        self._adapter_prefixes = tuple(f"{name}." for name in added)
        self.out_channels: list[int] = channels
        self.out_strides: list[int] = strides
        frozen = self._frozen_parameters()
        for name, param in self.named_parameters():
            if name in frozen:
                param.requires_grad_(False)
        self._frozen_modules = self._modules_within(frozen)

    # ------------------------------------------------------------------------------------------------- family hooks

    @staticmethod
    def checkpoint_filter(state_dict: dict[str, Tensor], net: nn.Module) -> dict[str, Tensor]:
        raise NotImplementedError("a family sets checkpoint_filter (its checkpoint_filter_fn)")

    @classmethod
    def build_network(cls, model: str, kwargs: dict[str, Any]) -> nn.Module:
        """The timm model (its classifier and final norm are pruned by `prune_network`)."""
        return timm.create_model(model, pretrained=False, **kwargs)

    def network_features(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """The network's maps at `indices`, NCHW (default: timm's `forward_intermediates`)."""
        return self._net.forward_intermediates(x, indices=list(indices), stop_early=True, intermediates_only=True)

    @staticmethod
    def feature_info(net: nn.Module) -> list[dict[str, Any]]:
        """One dict per selectable feature with its channels (`num_chs`) and stride (`reduction`)."""
        return list(net.feature_info)

    @staticmethod
    def prune_network(net: nn.Module, indices: Sequence[int]) -> None:
        """Drop what the dense backbone does not use: the classifier, the final norm, stages after `indices`."""
        net.prune_intermediate_layers(list(indices), prune_norm=True, prune_head=True)

    def network_group_matcher(self, coarse: bool) -> dict:
        return self._net.group_matcher(coarse=coarse)

    def network_no_weight_decay(self) -> set[str]:
        return set(self._net.no_weight_decay())

    # ------------------------------------------------------------------------------------------------- validation

    @classmethod
    def valid_models(cls) -> list[str]:
        return [name for name in list_models() if any(fnmatch.fnmatchcase(name, p) for p in cls.models)]

    @classmethod
    def _check_model(cls, model: str) -> str:
        valid = cls.valid_models()
        if not isinstance(model, str) or model not in valid:
            close = difflib.get_close_matches(str(model), valid, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"{cls.__name__}: unknown model {model!r}{hint}; expected one of {valid}")
        return model

    def _check_out_indices(self, out_indices: Sequence[int] | None, count: int) -> tuple[int, ...]:
        if out_indices is None and not self.plain:
            return tuple(range(count))
        if out_indices is None:  # four evenly spaced blocks, Vim's [5, 11, 17, 23] at depth 24
            if count < len(PYRAMID_STRIDES):
                raise ValueError(f"out_indices: {type(self).__name__}({self.model_name!r}) has {count} blocks, too few "
                                 f"for the default four; pass out_indices (one block feeds all four branches)")
            out_indices = tuple(count * (k + 1) // 4 - 1 for k in range(4))
        indices = tuple(out_indices) if isinstance(out_indices, Sequence) else (out_indices,)
        bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count]
        if not indices or bad or len(set(indices)) != len(indices) or list(indices) != sorted(indices):
            what = "blocks" if self.plain else "feature maps"
            raise ValueError(f"out_indices: {type(self).__name__}({self.model_name!r}) has {count} {what}; expected "
                             f"distinct increasing indices from 0..{count - 1}, got {out_indices!r}")
        if self.plain and len(indices) not in (1, len(PYRAMID_STRIDES)):
            raise ValueError(f"out_indices: the multi-scale adapter takes {len(PYRAMID_STRIDES)} blocks (or one for "
                             f"all branches), got {out_indices!r}")
        return indices

    def _check_frozen_stages(self, frozen_stages: int) -> int:
        stages = len(self._coarse_groups()) - 1
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= stages:
            raise ValueError(f"frozen_stages: expected -1 (none), 0 (stem) .. {stages} (stem and every stage of "
                             f"{self.model_name}), got {frozen_stages!r}")
        return frozen_stages

    @staticmethod
    def _check_init_cfg(init_cfg: dict | list[dict] | None) -> None:
        cfgs = [init_cfg] if isinstance(init_cfg, Mapping) else list(init_cfg or [])
        for cfg in cfgs:
            if cfg.get("type") != "Pretrained":
                continue
            if not cfg.get("checkpoint"):
                raise ValueError(f"init_cfg: a Pretrained init needs checkpoint=PATH_OR_URL, got {dict(cfg)}")
            if not is_url(cfg["checkpoint"]):
                resolve_checkpoint(cfg["checkpoint"])  # a missing local file fails at build time

    # ------------------------------------------------------------------------------------------------- freezing

    def _coarse_groups(self) -> dict[int, list[str]]:
        """Network parameter names per coarse group: 0 the stem, then one group per stage (plain: per block).
        Parameters the matcher leaves out (U-Mamba's decoder) join timm's last group, with a sentinel name that
        matches nothing; that group is not a stage."""
        named = [(name, None) for name, _ in self._net.named_parameters()] + [(_UNMATCHED, None)]
        groups = group_with_matcher(named, self.network_group_matcher(coarse=True))
        return {g: names for g, names in groups.items() if _UNMATCHED not in names}

    def _frozen_parameters(self) -> set[str]:
        if self.frozen_stages < 0:
            return set()
        groups = self._coarse_groups()
        frozen = {name for g in range(self.frozen_stages + 1) for name in groups.get(g, [])}
        if self.use_out_norm:
            for i in self.out_indices:
                if i < self.frozen_stages:  # output i comes from stage (plain: block) i, coarse group i + 1
                    prefix = f"{self.out_norm_name.format(i)}."
                    frozen |= {name for name, _ in self.named_parameters() if name.startswith(prefix)}
        return frozen

    def _modules_within(self, names: set[str]) -> list[str]:
        """The outermost modules all of whose (one or more) parameters are in `names`."""
        if not names:
            return []
        inside = []
        for name, module in self.named_modules():
            params = [n for n, _ in module.named_parameters(prefix=name)]
            if params and all(n in names for n in params) and not any(name.startswith(f"{o}.") for o in inside):
                inside.append(name)
        return inside

    def train(self, mode: bool = True) -> VSSMBackbone:
        """As mmdet's backbones: frozen modules and (norm_eval) BatchNorms stay in eval mode while training."""
        super().train(mode)
        self._net.training = mode
        if mode:
            for name in self._frozen_modules:
                self.get_submodule(name).eval()
            if self.norm_eval:
                for module in self.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()
        return self

    # ------------------------------------------------------------------------------------------------- forward

    def _point_network(self) -> None:
        """Point the network at the children, parameters and buffers registered here again: `to_empty` after a
        meta-device build replaces parameters in this module's registry and not in the network's (measured: Vim's
        `pos_embed` stayed on the meta device), and so does a model-wide swap of a network child."""
        for name in self._network_members:
            setattr(self._net, name, getattr(self, name))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """x: (B, C, H, W) -> one map (B, C_i, H / s_i, W / s_i) per output (`out_channels`, `out_strides`)."""
        self._point_network()
        maps = self.network_features(x, self.out_indices)
        if self.use_out_norm:
            maps = [getattr(self, self.out_norm_name.format(i))(m) for i, m in zip(self.out_indices, maps)]
        if self.plain:
            maps = maps * len(PYRAMID_STRIDES) if len(maps) == 1 else maps
            maps = [getattr(self, f"fpn{k}")(m) for k, m in enumerate(maps, start=1)]
        return tuple(m.contiguous() for m in maps)

    # ------------------------------------------------------------------------------------------------- optimizer

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's group matcher of the network (the adapter's own modules match nothing: head group)."""
        return self.network_group_matcher(coarse)

    def no_weight_decay(self) -> set[str]:
        return self.network_no_weight_decay()

    def layer_ids(self) -> tuple[dict[str, int], int]:
        """Layer id of every network parameter and the number of layers after the stem, L: id 0 is the stem, then
        timm's fine groups in order (Vim: block i is layer i + 1, L = 24). Parameters left out (the adapter's own
        modules, U-Mamba's decoder) and everything after the backbone are layer L + 1, as in BEiT's and ViTDet's layer
        decay."""
        self._point_network()
        named = [(name, None) for name, _ in self._net.named_parameters()] + [(_UNMATCHED, None)]
        ids = group_with_matcher(named, self.network_group_matcher(coarse=False), reverse=True)
        head = ids.pop(_UNMATCHED)  # unmatched names sort last: the head group, L + 1
        return {name: i for name, i in ids.items() if i != head}, head - 1

    # ------------------------------------------------------------------------------------------------- weights

    def init_weights(self) -> None:
        """mmengine's init, except that `Pretrained` loads through the family's checkpoint conversion (mmengine's own
        would load nothing from an official `{'model': ...}` checkpoint, and nothing renamed)."""
        cfgs = [self.init_cfg] if isinstance(self.init_cfg, Mapping) else list(self.init_cfg or [])
        others = [cfg for cfg in cfgs if cfg.get("type") != "Pretrained"]
        if others:
            initialize(self, others)
        for cfg in cfgs:
            if cfg.get("type") == "Pretrained":
                self.load_pretrained(cfg["checkpoint"], prefix=cfg.get("prefix"))
        self._is_init = True

    def load_pretrained(self, source: str, prefix: str | None = None) -> None:
        """Load an official classification checkpoint, a vssm one, or (with `prefix='backbone.'`) a detector's or
        segmentor's, converted by the family's filter. Only the adapter's own modules (out norms, multi-scale adapter)
        may be absent from the checkpoint; any other mismatch raises ValueError."""
        weights = state_dict_of(read_checkpoint(resolve_checkpoint(source)), prefix)
        adapter = {k: v for k, v in weights.items()
                   if k.startswith(self._adapter_prefixes) and not k.startswith(self._pruned_prefixes)}
        network = {k: v for k, v in weights.items()
                   if not k.startswith(self._adapter_prefixes) and not k.startswith(self._pruned_prefixes)}
        self._point_network()
        try:
            converted = type(self).checkpoint_filter(network, self._net)
        except ValueError as error:
            hint = ""
            if prefix is None and sum(k.startswith("backbone.") for k in weights) > len(weights) // 2:
                hint = " (a detector/segmentor checkpoint: pass prefix='backbone.')"
            raise ValueError(f"{type(self).__name__}({self.model_name!r}) from {source}{hint}: {error}") from error
        result = self.load_state_dict({**converted, **adapter}, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith(self._adapter_prefixes)]
        if missing or result.unexpected_keys:
            raise ValueError(f"{type(self).__name__}({self.model_name!r}) from {source}: missing {missing[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")
        fresh = sorted({k.split(".")[0] for k in result.missing_keys})
        print_log(f"{type(self).__name__}({self.model_name!r}): loaded {source}"
                  + (f"; newly initialised: {', '.join(fresh)}" if fresh else ""), logger="current")

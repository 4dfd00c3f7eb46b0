"""Layer-wise learning-rate decay for models with a vssm backbone (BEiT's and ViTDet's rule).

mmseg's `LayerDecayOptimizerConstructor` and mmdet's `LearningRateDecayOptimizerConstructor` know the layer names of
ConvNeXt, BEiT and MAE only. This one asks the backbone (`VSSMBackbone.layer_ids`, from the network's timm group
matcher): the stem is layer 0, the network's layers 1..L in order (Vim: block i is layer i + 1, L = 24), and
everything else (the adapter's out norms and multi-scale branches, neck, heads) layer L + 1. A parameter of layer l
trains at `lr · rate^(L + 1 - l)`. One-dimensional parameters (norms, biases, D) and the backbone's
`no_weight_decay()` (position embedding, A_log) get no weight decay.

    optim_wrapper = dict(
        optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
        constructor='VSSMLayerDecayOptimizerConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.92, num_layers=24))   # num_layers: optional, checked
"""

from __future__ import annotations

from typing import Any

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from .backbone import VSSMBackbone

__all__ = ["VSSMLayerDecayOptimizerConstructor"]

_OPTIONS = ("layer_decay_rate", "num_layers")


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class VSSMLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups per (layer, decay / no decay) for a model whose `backbone` is a `VSSMBackbone`.

    paramwise_cfg:
        layer_decay_rate: 0 < rate <= 1.
        num_layers: the backbone's L, if given it must match (the original configs state it: Vim 24).
    """

    def _validate_cfg(self) -> None:
        unknown = sorted(set(self.paramwise_cfg) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"paramwise_cfg: VSSMLayerDecayOptimizerConstructor takes {list(_OPTIONS)}, got {unknown}")
        rate = self.paramwise_cfg.get("layer_decay_rate")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
            raise ValueError(f"paramwise_cfg.layer_decay_rate: expected a number in (0, 1], got {rate!r}")
        if self.base_lr is None or self.base_wd is None:
            raise ValueError("optimizer: layer decay needs lr and weight_decay in the optimizer config")

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, **kwargs: Any) -> None:
        backbone = getattr(module, "backbone", None)
        if not isinstance(backbone, VSSMBackbone):
            raise TypeError(f"VSSMLayerDecayOptimizerConstructor needs a model whose `backbone` is a vssm backbone, "
                            f"got {type(backbone).__name__} in {type(module).__name__}")
        ids, num_layers = backbone.layer_ids()
        expected = self.paramwise_cfg.get("num_layers")
        if expected is not None and expected != num_layers:
            raise ValueError(f"paramwise_cfg.num_layers: {type(backbone).__name__}({backbone.model_name!r}) has "
                             f"{num_layers} layers after its stem, the config says {expected}")
        rate = self.paramwise_cfg["layer_decay_rate"]
        no_decay = {f"backbone.{name}" for name in backbone.no_weight_decay()}
        groups: dict[tuple[int, bool], dict[str, Any]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer = ids.get(name.removeprefix("backbone."), num_layers + 1) if name.startswith("backbone.") else (
                num_layers + 1)
            decay = param.ndim > 1 and name not in no_decay
            group = groups.setdefault((layer, decay), {
                "params": [],
                "param_names": [],
                "layer_id": layer,
                "lr": self.base_lr * rate ** (num_layers + 1 - layer),
                "weight_decay": self.base_wd if decay else 0.0,
            })
            group["params"].append(param)
            group["param_names"].append(name)
        params.extend(groups[key] for key in sorted(groups))
        print_log(f"layer decay {rate} over {num_layers + 2} layers of {type(backbone).__name__}"
                  f"({backbone.model_name!r}): {len(groups)} parameter groups", logger="current")

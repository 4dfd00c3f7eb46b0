"""`LN2d`: LayerNorm over the channels of NCHW maps for mmcv's `build_norm_layer` (`norm_cfg=dict(type='LN2d')`).

ViTDet's detectors (mmdet's `projects/ViTDet`, which mmdet's pip package does not ship) normalise the SimpleFPN neck
and the convs of their RoI heads with a norm of this name. This is timm's `LayerNorm2d` under the module name mmcv
gives ViTDet's class inside a `ConvModule` (`norm_layer`: mmcv infers it from the class name), so the parameter names
match ViTDet's checkpoints. Registered in mmengine's root MODELS, where mmcv's norm builder finds it from any scope.
Built through `build_norm_layer`, both classes get mmcv's eps 1e-5 unless the `norm_cfg` names one; built directly,
ViTDet's default 1e-6.
"""

from __future__ import annotations

from mmengine.registry import MODELS
from timm.layers import LayerNorm2d

__all__ = ["LN2d"]


@MODELS.register_module(name="LN2d")
class LN2d(LayerNorm2d):
    """x: (B, C, H, W) -> (B, C, H, W): every position normalised over its C channels (biased variance, eps 1e-6),
    then scaled and shifted per channel (`weight`, `bias`: (C,)).

    Args:
        num_channels: C.
        eps: added to the variance (ViTDet's class default 1e-6; mmcv's `build_norm_layer` passes 1e-5).
    """

    _abbr_ = "norm_layer"  # mmcv's `infer_abbr` for ViTDet's LN2d (an nn.Module whose name says no norm kind)

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

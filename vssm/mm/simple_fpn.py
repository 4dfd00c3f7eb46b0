"""`SimpleFPN`: ViTDet's simple feature pyramid for a plain backbone's single stride-16 map (Li et al., "Exploring
Plain Vision Transformer Backbones for Object Detection", arXiv:2203.16527), as mmdet's `projects/ViTDet` builds it.

mmdet's pip package does not ship `projects/`, so the neck is registered here, in mmengine's root MODELS (a config
in mmdet's scope finds it through the parent registry). Module and parameter names are those of mmdet's class
(`fpn1.0`, `fpn1.1`, `fpn1.3`, `fpn2.0`, `lateral_convs.i.conv`, `lateral_convs.i.norm_layer`, `fpn_convs.i.*`), so
its checkpoints load. With a stride-16 input map x: (B, C, H, W):

    fpn1  ConvT 2x2 (C -> C/2) -> norm -> GELU -> ConvT 2x2 (C/2 -> C/4)    (B, C/4, 4H, 4W)    stride 4
    fpn2  ConvT 2x2 (C -> C/2)                                               (B, C/2, 2H, 2W)    stride 8
    fpn3  identity                                                           (B, C, H, W)        stride 16
    fpn4  max pool 2                                                         (B, C, H/2, W/2)    stride 32
    level i -> lateral_convs[i] (1x1 conv + norm) -> fpn_convs[i] (3x3 conv + norm)   (B, out_channels, ...)
    num_outs - 4 extra levels: the previous output subsampled by 2 (stride 64, ...)

No top-down pathway: the levels are independent (ViTDet's finding that a plain backbone needs none).
"""

from __future__ import annotations

from collections.abc import Sequence

from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SimpleFPN"]

_LEVELS = 4  # fpn1..fpn4


@MODELS.register_module()
class SimpleFPN(BaseModule):
    """ViTDet's neck: one (B, C, H, W) map -> `num_outs` maps of `out_channels` at 4H, 2H, H, H/2, then halving.

    Args:
        backbone_channel: C, the channels of the backbone's map (divisible by 4).
        in_channels: the channels of the four resampled levels, [C/4, C/2, C, C] (stated as in mmdet's configs;
            checked).
        out_channels: channels of every output.
        num_outs: number of outputs, at least 4 (ViTDet: 5).
        conv_cfg: mmcv conv config of the lateral and output convs.
        norm_cfg: mmcv norm config of fpn1 and of the lateral and output convs (ViTDet: `dict(type='LN2d')`).
        act_cfg: activation after the lateral and output convs (ViTDet: none).
        init_cfg: mmengine init config.
    """

    def __init__(
        self,
        backbone_channel: int,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        conv_cfg: dict | None = None,
        norm_cfg: dict | None = None,
        act_cfg: dict | None = None,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        channels = backbone_channel
        if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0 or channels % 4:
            raise ValueError(f"backbone_channel: expected a positive multiple of 4, got {channels!r}")
        expected = [channels // 4, channels // 2, channels, channels]
        if isinstance(in_channels, str | int) or list(in_channels) != expected:
            raise ValueError(f"in_channels: the four levels of a {channels}-channel map have {expected} channels, "
                             f"got {in_channels!r}")
        if isinstance(num_outs, bool) or not isinstance(num_outs, int) or num_outs < _LEVELS:
            raise ValueError(f"num_outs: expected an int >= {_LEVELS}, got {num_outs!r}")
        if norm_cfg is None:
            raise ValueError("norm_cfg: fpn1 normalises between its transposed convs; pass one, e.g. "
                             "dict(type='LN2d', requires_grad=True) (ViTDet's)")
        self.backbone_channel = channels
        self.in_channels = expected
        self.out_channels = out_channels
        self.num_outs = num_outs

        half, quarter = channels // 2, channels // 4
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(channels, half, kernel_size=2, stride=2),
            build_norm_layer(norm_cfg, half)[1],
            nn.GELU(),
            nn.ConvTranspose2d(half, quarter, kernel_size=2, stride=2),
        )
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(channels, half, kernel_size=2, stride=2))
        self.fpn3 = nn.Sequential(nn.Identity())
        self.fpn4 = nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2))

        conv = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
        self.lateral_convs = nn.ModuleList(ConvModule(c, out_channels, 1, **conv) for c in expected)
        self.fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, **conv) for _ in expected)

    def _single_map(self, inputs: Tensor | Sequence[Tensor]) -> Tensor:
        """The backbone's one map: a tensor, or a sequence holding one (what a vssm backbone returns)."""
        if isinstance(inputs, Tensor):
            x = inputs
        elif isinstance(inputs, Sequence) and not isinstance(inputs, str):
            if len(inputs) != 1 or not isinstance(inputs[0], Tensor):
                raise ValueError(f"SimpleFPN takes one backbone map, got {len(inputs)} items: give the backbone a "
                                 "single output (e.g. out_indices=(19,) for LocalVim)")
            x = inputs[0]
        else:
            raise TypeError(f"SimpleFPN takes a tensor (B, C, H, W) or a sequence holding one, got "
                            f"{type(inputs).__name__}")
        if x.ndim != 4 or x.shape[1] != self.backbone_channel:
            raise ValueError(f"SimpleFPN expected a map (B, {self.backbone_channel}, H, W), got {tuple(x.shape)}")
        return x

    def forward(self, inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
        """inputs: (B, C, H, W) at stride s, or a sequence holding it -> `num_outs` maps (B, out_channels, ·, ·) at
        strides s/4, s/2, s, 2s, then doubling (for s = 16: 4, 8, 16, 32, 64)."""
        x = self._single_map(inputs)
        levels = (self.fpn1(x), self.fpn2(x), self.fpn3(x), self.fpn4(x))
        outs = [fpn_conv(lateral(level)) for level, lateral, fpn_conv in zip(levels, self.lateral_convs,
                                                                             self.fpn_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return tuple(outs)

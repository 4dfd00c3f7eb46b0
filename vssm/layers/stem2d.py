"""Stride-4 stems of hierarchical backbones, in either layout, with VMamba's parameter names.

Both are `nn.Sequential`s whose layout placeholders (identity or permute) keep the indices of the original
modules, so checkpoint keys are `patch_embed.{0,2,5,7}` (conv stem) and `patch_embed.{0,2}` (patch stem).
"""

from __future__ import annotations

import torch
from torch import nn

from vssm.layers.layout import Layout, from_nchw_module, layer_norm, to_nchw_module


class ConvStem(nn.Sequential):
    """VMamba v2 stem: 3×3 s2 conv (C/2) -> LN -> GELU -> 3×3 s2 conv (C) -> LN.  (B, in, H, W) -> ⌈H/4⌉ × ⌈W/4⌉."""

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        layout: Layout = Layout.CHANNELS_FIRST,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory = {"device": device, "dtype": dtype}
        half = embed_dim // 2
        super().__init__(
            nn.Conv2d(in_chans, half, 3, stride=2, padding=1, **factory),
            from_nchw_module(layout),
            layer_norm(layout, half, **factory),
            to_nchw_module(layout),
            nn.GELU(),
            nn.Conv2d(half, embed_dim, 3, stride=2, padding=1, **factory),
            from_nchw_module(layout),
            layer_norm(layout, embed_dim, **factory),
        )


class PatchStem(nn.Sequential):
    """VMamba v1 stem: 4×4 stride-4 patch conv -> LN.  (B, in, H, W) -> ⌊H/4⌋ × ⌊W/4⌋ (a remainder is dropped)."""

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        layout: Layout = Layout.CHANNELS_LAST,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory = {"device": device, "dtype": dtype}
        super().__init__(
            nn.Conv2d(in_chans, embed_dim, 4, stride=4, **factory),
            from_nchw_module(layout),
            layer_norm(layout, embed_dim, **factory),
        )

"""Stride-2 downsampling between the stages of hierarchical backbones, in either layout."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vssm.layers.layout import Layout, from_nchw_module, layer_norm, linear, to_nchw_module


class ConvDownsample(nn.Sequential):
    """VMamba v3 downsample: 3×3 stride-2 conv (C -> C_out) -> LN.  H × W -> ⌈H/2⌉ × ⌈W/2⌉.

    Keys `1.*` (conv) and `3.*` (norm): the layout placeholders keep the original indices.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        layout: Layout = Layout.CHANNELS_FIRST,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory = {"device": device, "dtype": dtype}
        super().__init__(
            to_nchw_module(layout),
            nn.Conv2d(dim, out_dim, 3, stride=2, padding=1, **factory),
            from_nchw_module(layout),
            layer_norm(layout, out_dim, **factory),
        )


class PatchMerging2d(nn.Module):
    """Swin/VMamba v1 patch merging: 2×2 neighbours -> channels -> LN(4C) -> linear 4C -> C_out (no bias).

    Odd H or W is zero-padded at the bottom/right first (H × W -> ⌈H/2⌉ × ⌈W/2⌉). The neighbours are concatenated
    in the order (row, col) = (even, even), (odd, even), (even, odd), (odd, odd), which the weights depend on.
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        layout: Layout = Layout.CHANNELS_LAST,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.layout = layout
        self.reduction = linear(layout, 4 * dim, out_dim, bias=False, **factory)
        self.norm = layer_norm(layout, 4 * dim, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = self.layout.spatial_size(x)
        if self.layout is Layout.CHANNELS_FIRST:
            x = F.pad(x, (0, width % 2, 0, height % 2))
            parts = [x[..., 0::2, 0::2], x[..., 1::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 1::2]]
            x = torch.cat(parts, dim=1)
        else:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
            parts = [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]]
            x = torch.cat(parts, dim=-1)
        return self.reduction(self.norm(x))

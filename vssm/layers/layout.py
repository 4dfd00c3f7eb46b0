"""Channel-first (B, C, H, W) and channel-last (B, H, W, C) feature maps with one set of parameter names.

VMamba's v2 models run channel-first (1×1 convs with 2-D weights, `LayerNorm2d`), the v0 models channel-last
(`nn.Linear`, `nn.LayerNorm`); their state dicts are identical. The layers here let one module definition run in
either layout, so a checkpoint loads into both.
"""

from __future__ import annotations

import enum

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

LAYER_NORM_EPS = 1e-5  # torch's default, what VMamba and LocalMamba use (timm's LayerNorm2d defaults to 1e-6)


class Layout(enum.Enum):
    """Memory layout of the feature maps inside a network."""

    CHANNELS_FIRST = "channels_first"  # (B, C, H, W)
    CHANNELS_LAST = "channels_last"  # (B, H, W, C)

    @property
    def channel_dim(self) -> int:
        return 1 if self is Layout.CHANNELS_FIRST else -1

    def from_nchw(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> this layout."""
        return x if self is Layout.CHANNELS_FIRST else x.permute(0, 2, 3, 1)

    def to_nchw(self, x: torch.Tensor) -> torch.Tensor:
        """This layout -> (B, C, H, W)."""
        return x if self is Layout.CHANNELS_FIRST else x.permute(0, 3, 1, 2)

    def spatial_size(self, x: torch.Tensor) -> tuple[int, int]:
        return (x.shape[2], x.shape[3]) if self is Layout.CHANNELS_FIRST else (x.shape[1], x.shape[2])


class Linear2d(nn.Linear):
    """A linear map over the channels of a (B, C, H, W) map: a 1×1 conv that keeps `nn.Linear`'s 2-D weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


class Permute(nn.Module):
    """`x.permute(*dims)` as a module (keeps the index of every neighbour in an `nn.Sequential`)."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.dims))


def linear(layout: Layout, in_features: int, out_features: int, bias: bool = True, **factory) -> nn.Linear:
    """A channel-mixing linear layer for `layout` (same parameter names and shapes in both layouts)."""
    cls = Linear2d if layout is Layout.CHANNELS_FIRST else nn.Linear
    return cls(in_features, out_features, bias=bias, **factory)


def layer_norm(layout: Layout, channels: int, eps: float = LAYER_NORM_EPS, **factory) -> nn.LayerNorm:
    """LayerNorm over the channels of a map in `layout`."""
    if layout is Layout.CHANNELS_FIRST:
        return LayerNorm2d(channels, eps=eps, **factory)
    return nn.LayerNorm(channels, eps=eps, **factory)


def from_nchw_module(layout: Layout) -> nn.Module:
    """`layout.from_nchw` as a module: (B, C, H, W) -> `layout`."""
    return nn.Identity() if layout is Layout.CHANNELS_FIRST else Permute(0, 2, 3, 1)


def to_nchw_module(layout: Layout) -> nn.Module:
    """`layout.to_nchw` as a module: `layout` -> (B, C, H, W)."""
    return nn.Identity() if layout is Layout.CHANNELS_FIRST else Permute(0, 3, 1, 2)

"""MSVMamba's block: pre-norm multi-scale SS2D and a pre-norm convolutional FFN, each with a residual (channel-last)."""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from vssm.layers.layout import LAYER_NORM_EPS


class ConvFFN(nn.Module):
    """(B, C, H, W): 1×1 conv C -> eC, x + depthwise 3×3(x), GELU, 1×1 conv eC -> C (the original's `ConvFFN`,
    keys `linear1`, `dwc`, `linear2`)."""

    def __init__(
        self, channels: int, expansion: int = 2, device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        hidden = channels * expansion
        self.linear1 = nn.Conv2d(channels, hidden, 1, **factory)
        self.dwc = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, **factory)
        self.act = nn.GELU()
        self.linear2 = nn.Conv2d(hidden, channels, 1, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear1(x)
        return self.linear2(self.act(x + self.dwc(x)))


class MSVSSBlock(nn.Module):
    """x <- x + DropPath(op(norm(x))); x <- x + DropPath(convFFN(norm2(x))), on (B, H, W, C).

    Args:
        dim: channels C.
        op: the token mixer, (B, H, W, C) -> same (a `MultiScaleSS2D`).
        drop_path: stochastic-depth rate of both branches.
    """

    def __init__(
        self, dim: int, op: nn.Module, drop_path: float = 0.0, device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS, **factory)
        self.op = op
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS, **factory)
        self.convFFN = ConvFFN(dim, **factory)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.op(self.norm(x)))
        ffn = self.convFFN(self.norm2(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.drop_path(ffn)

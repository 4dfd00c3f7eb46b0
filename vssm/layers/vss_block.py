"""The VSS block: pre-norm SS2D and an optional pre-norm MLP, each with a residual and stochastic depth."""

from __future__ import annotations

import torch
from timm.layers import DropPath
from torch import nn

from vssm.layers.layout import Layout, layer_norm, linear


class LayoutMlp(nn.Module):
    """fc1 -> GELU -> fc2 over the channels of a map in `layout` (timm's `Mlp` keys: fc1, fc2)."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        layout: Layout = Layout.CHANNELS_FIRST,
        act_layer: type[nn.Module] = nn.GELU,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.fc1 = linear(layout, in_features, hidden_features, device=device, dtype=dtype)
        self.act = act_layer()
        self.fc2 = linear(layout, hidden_features, in_features, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VSSBlock(nn.Module):
    """x <- x + DropPath(op(norm(x))); then, with mlp_ratio > 0, x <- x + DropPath(mlp(norm2(x))).

    Args:
        dim: channels C.
        op: the token mixer, C -> C in `layout` (an `SS2D`).
        mlp_ratio: hidden width of the MLP as a multiple of C; 0 = no MLP (VMamba v0).
        drop_path: stochastic-depth rate of both branches.
        layout: layout of x, (B, C, H, W) or (B, H, W, C).
    """

    def __init__(
        self,
        dim: int,
        op: nn.Module,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        layout: Layout = Layout.CHANNELS_FIRST,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.norm = layer_norm(layout, dim, **factory)
        self.op = op
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if mlp_ratio > 0:
            self.norm2 = layer_norm(layout, dim, **factory)
            self.mlp = LayoutMlp(dim, int(dim * mlp_ratio), layout, **factory)
        else:
            self.norm2 = self.mlp = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.op(self.norm(x)))
        if self.mlp is not None:
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x

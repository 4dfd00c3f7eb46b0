"""Mamba over the tokens of a 2D or 3D feature map, whose output replaces the map (U-Mamba's `MambaLayer`).

    patch tokens   : x (B, C, *S) -> the ∏S positions are the tokens (last axis fastest), C features each
    channel tokens : x (B, C, *S) -> the C channels are the tokens, ∏S features each (for maps with few positions)
    tokens -> LayerNorm -> Mamba (one parameter set per scan route) -> back to (B, C, *S)

There is no residual: the Mamba output is the layer's output. The layer runs with autocast off and in its
parameters' dtype (fp32 under AMP: half-precision inputs are cast up; a float64 model stays float64).
Routes: 2D patch tokens follow the scan order over the H × W grid; 3D patch tokens and channel tokens are one
sequence, routed as a 1 × L strip (for `raster`, the C-order flattening of D × H × W).
"""

from __future__ import annotations

import contextlib
import enum
import math

import torch
from torch import Tensor, nn

from vssm import scans
from vssm.scans import ScanOrder, SequenceRoutes, token_routes

from .fx import fx_leaf
from .mamba_mixer import MambaMixer, RouteMerge
from .ssm_core import RouteNaming, SSMConfig


class MapTokens(enum.Enum):
    """What a map's tokens are."""

    PATCH = "patch"  # one token per position, d_model = channels
    CHANNEL = "channel"  # one token per channel, d_model = number of positions


class MapMamba(nn.Module):
    """LayerNorm + Mamba over a feature map's tokens, no residual.

    Args:
        d_model: token width: the map's channels (patch tokens) or its number of positions (channel tokens).
        tokens: `MapTokens.PATCH` or `MapTokens.CHANNEL`.
        scan: scan order (name or `ScanOrder`); the mixer has one parameter set per route. U-Mamba: `raster`.
        config: the Mamba hyper-parameters (U-Mamba: d_state 16, d_conv 4, expand 2, the defaults).

    x: (B, C, *S) -> (B, C, *S) in the parameters' dtype. State-dict keys: `norm.*`, `mamba.*` (stock Mamba's names
    for one route: in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj; Vim's `*_b` for two; `*_k` for more). The
    routes' outputs are averaged.
    """

    def __init__(
        self,
        d_model: int,
        tokens: MapTokens = MapTokens.PATCH,
        scan: str | ScanOrder = "raster",
        config: SSMConfig | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.d_model = d_model
        self.tokens = MapTokens(tokens)
        self.order = scans.get(scan)
        self.norm = nn.LayerNorm(d_model, **dd)
        routes = self.order.num_routes
        # One route keeps stock Mamba's keys (`A_log`, `conv1d`, ...); more get LocalMamba's indexed names.
        naming = RouteNaming.BACKWARD_SUFFIX if routes <= 2 else RouteNaming.INDEXED
        self.mamba = MambaMixer(d_model, routes, config, naming, merge=RouteMerge.MEAN, **dd)

    def extra_repr(self) -> str:
        return f"tokens={self.tokens.value}, scan={self.order!r}"

    def _routes(self, x: Tensor, length: int) -> SequenceRoutes:
        if self.tokens is MapTokens.PATCH and x.ndim == 4:
            return token_routes(self.order, x.shape[2], x.shape[3], x.device)
        return token_routes(self.order, 1, length, x.device)

    @fx_leaf  # its checks and routes follow the map's shape
    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, *S) with S two or three spatial sizes -> (B, C, *S)."""
        if x.ndim not in (4, 5):
            raise ValueError(f"MapMamba expects a map (B, C, H, W) or (B, C, D, H, W), got shape {tuple(x.shape)}")
        batch, channels, *spatial = x.shape
        positions = math.prod(spatial)
        width = channels if self.tokens is MapTokens.PATCH else positions
        if width != self.d_model:
            what = "channels" if self.tokens is MapTokens.PATCH else "positions (∏ of the spatial sizes)"
            raise ValueError(
                f"MapMamba ({self.tokens.value} tokens) has d_model={self.d_model}, but the map {tuple(x.shape)} has "
                f"{width} {what}"
            )
        # No autocast on devices without one (meta: shape inference).
        no_autocast = (torch.autocast(device_type=x.device.type, enabled=False)
                       if torch.amp.is_autocast_available(x.device.type) else contextlib.nullcontext())
        with no_autocast:
            x = x.to(self.norm.weight.dtype)
            if self.tokens is MapTokens.PATCH:
                t = x.reshape(batch, channels, positions).transpose(1, 2)  # (B, L = ∏S, C)
            else:
                t = x.reshape(batch, channels, positions)  # (B, L = C, ∏S)
            y = self.mamba(self.norm(t), self._routes(x, t.shape[1]))
            if self.tokens is MapTokens.PATCH:
                # Back to the channels-first layout the convolutions after this layer expect (the transposed view
                # would be channels-last, a slower path for them).
                y = y.transpose(1, 2).contiguous()
            return y.reshape(batch, channels, *spatial)

"""MambaVision's token mixer: an un-gated selective-SSM branch and a symmetric non-SSM branch, concatenated.

    x (B, L, C) -> in_proj (no bias) -> [x ; z] (B, C/2, L) each
      x -> SiLU(depthwise conv1d, kernel d_conv, 'same' padding, no bias)  -> selective scan (no z gate)  -> y
      z -> SiLU(depthwise conv1d, kernel d_conv, 'same' padding, no bias)                                  -> z'
    [y ; z'] (B, C, L) -> out_proj (no bias) -> (B, L, C)

Both convolutions are non-causal and run along the scan sequence. The SSM (`SSMCore`) acts on the C/2 channels of
the x branch with d_state N = 8 and dt rank ⌈C/16⌉ (from C, not C/2), as in the original (NVlabs/MambaVision,
`MambaVisionMixer`).

Scan orders. The original mixer sees the tokens of one window in raster order. With `scan=` another order routes the
window's grid: each of its K routes gets its own convolutions and SSM parameters (`conv1d_x_k`, `x_proj_k`, ...;
route-less names for K = 1), both branches are read along every route, and their outputs are written back to the
tokens and averaged over the routes that visit each token before the concatenation.
"""

from __future__ import annotations

import enum
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vssm import scans
from vssm.layers.fx import fx_leaf
from vssm.layers.ssm_core import RouteNaming, SSMConfig, SSMCore, default_init, skip_default_init
from vssm.scans import SequenceRoutes, token_routes


class DtBias(enum.Enum):
    """How often the mixer adds `dt_proj.bias` to the time step: Δ = softplus(W_dt·ρ + n·b_dt).

    The original adds it in `dt_proj` (a Linear with bias) and again as the scan's `delta_bias`, so every released
    MambaVision checkpoint was trained with n = 2 (acknowledged upstream in MambaVision#32). `ONCE` is Mamba's
    definition, for training new models without the quirk.
    """

    TWICE = "twice"
    ONCE = "once"


class MambaVisionMixer(SSMCore):
    """The MambaVision mixer on token sequences of one window.

    Args:
        d_model: token width C (even: the two branches have C/2 channels each).
        window_size: side w of the square window whose w·w tokens a sequence holds, the grid `scan` routes (None: the
            sequence is routed as a 1 × L strip, any length).
        scan: the order of the window's tokens along which the convolutions and the scan run (a `scans` name or
            order); its number of routes K sets the number of parameter sets. The original's is `raster`.
        d_state: SSM state size N.
        d_conv: kernel size of the two depthwise convolutions.
        dt_bias: `DtBias.TWICE` (the released checkpoints, default) or `DtBias.ONCE`.
        device, dtype: factory kwargs.

    State-dict keys (K = 1): in_proj.weight (C, C), x_proj.weight (R + 2N, C/2), dt_proj.{weight (C/2, R), bias},
    A_log (C/2, N), D (C/2), conv1d_x.weight / conv1d_z.weight (C/2, 1, d_conv), out_proj.weight (C, C).
    """

    def __init__(
        self,
        d_model: int,
        window_size: int | None = None,
        scan: str | scans.ScanOrder = "raster",
        d_state: int = 8,
        d_conv: int = 3,
        dt_bias: DtBias | str = DtBias.TWICE,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if isinstance(d_model, bool) or not isinstance(d_model, int) or d_model < 2 or d_model % 2:
            raise ValueError(f"MambaVisionMixer: d_model must be an even int >= 2 (two halves), got {d_model!r}")
        order = scans.get(scan)
        config = SSMConfig(d_state=d_state, d_conv=d_conv, expand=0.5, dt_rank=math.ceil(d_model / 16),
                           conv_bias=False)
        naming = RouteNaming.BACKWARD_SUFFIX if order.num_routes == 1 else RouteNaming.INDEXED
        super().__init__(d_model, order.num_routes, config, naming, device=device, dtype=dtype)
        if d_conv < 1:
            raise ValueError(f"MambaVisionMixer: d_conv must be >= 1, got {d_conv}")
        self.dt_bias = DtBias(dt_bias)
        self.order, self.window_size = order, window_size
        dd = {"device": device, "dtype": dtype}
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False, **dd)
        # Each branch's K route convolutions as one (`SSMCore.stack_routes`), initialised in the original's module
        # order (conv1d_x_0, conv1d_z_0, conv1d_x_1, ...).
        channels = self.num_routes * self.d_inner
        for branch in ("conv1d_x", "conv1d_z"):
            conv = skip_default_init(nn.Conv1d, channels, channels, d_conv, groups=channels, bias=False, **dd)
            self.add_module(branch, conv)
        self.stack_routes("conv1d_x.weight", "conv1d_z.weight")
        for weights in zip(self.route_views("conv1d_x.weight"), self.route_views("conv1d_z.weight")):
            for weight in weights:
                default_init(weight)
        self.out_proj = nn.Linear(2 * self.d_inner, d_model, bias=False, **dd)

    def delta_bias(self) -> Tensor:
        bias = super().delta_bias()
        return 2 * bias if self.dt_bias is DtBias.TWICE else bias

    def _conv(self, x: Tensor, branch: str) -> Tensor:
        """x: (B, K, E, L') routes in visit order -> SiLU('same' depthwise conv along each route), same shape."""
        batch, routes, channels, steps = x.shape
        weight = getattr(self, branch).weight
        y = F.conv1d(x.reshape(batch, routes * channels, steps), weight, padding="same", groups=routes * channels)
        return F.silu(y).view(batch, routes, channels, steps)

    def _routes(self, length: int, device: torch.device) -> SequenceRoutes:
        """The order's routes through a window (or, without window_size, the sequence as a 1 × L strip); raster's are
        the identity, whose gather and merge are views."""
        if self.window_size is None:
            height, width = 1, length
        elif length != self.window_size**2:
            raise ValueError(
                f"MambaVisionMixer routes {self.window_size}×{self.window_size} windows: expected sequences of "
                f"{self.window_size**2} tokens, got {length}"
            )
        else:
            height = width = self.window_size
        return token_routes(self.order, height, width, device)

    @fx_leaf  # its routes follow the sequence length
    def forward(self, x: Tensor) -> Tensor:
        """x: (B, L, C) the tokens of B windows in raster order -> (B, L, C)."""
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MambaVisionMixer expects x of shape (B, L, C={self.d_model}), got {tuple(x.shape)}")
        routes = self._routes(x.shape[1], x.device)
        x_branch, z_branch = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)  # (B, E, L) each
        y = routes.scatter_mean(self.ssm(self._conv(routes.gather(x_branch), "conv1d_x")))
        z = routes.scatter_mean(self._conv(routes.gather(z_branch), "conv1d_z"))
        return self.out_proj(torch.cat([y, z], dim=1).transpose(1, 2))

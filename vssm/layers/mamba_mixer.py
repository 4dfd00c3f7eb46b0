"""The Mamba-1 sequence mixer over K scan routes (Vim's bimamba v2 for K = 2, stock Mamba for K = 1).

    x (B, L, D) -> in_proj -> [x ; z] (B, E, L) each
                -> gather each route                      (B, K, E, L')   the causal conv runs along the route
                -> per-route causal depthwise conv1d + SiLU
                -> per-route x_proj, dt_proj, A, D: one batched selective scan   (`SSMCore`)
                -> merge: outputs written back to their tokens, summed over routes (/ routes with `RouteMerge.MEAN`)
                -> gate by silu(z) -> out_proj             (B, L, D)

in_proj and out_proj are shared by the routes. Gating after the merge equals mamba_ssm's gating of each route (every
route's output at a token meets the same z) when the merge writes each step back to the token it read; routes whose
merge writes elsewhere (LocalMamba's official `v` reverse on non-square grids) are gated along the route. So is every
route when a `route_mixer` (LocalVim's per-direction channel attention) processes each route's gated output before
the merge.
"""

from __future__ import annotations

import enum

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vssm.scans import SequenceRoutes

from .fx import fx_leaf
from .ssm_core import RouteNaming, SSMConfig, SSMCore, default_init, skip_default_init


class RouteMerge(enum.Enum):
    """How the routes' outputs at one token are combined."""

    SUM = "sum"  # LocalMamba, VMamba
    MEAN = "mean"  # Vim's `if_divide_out`: the sum divided by the number of routes that visit the token


def shifted_causal_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x: (B, C, L), weight: (C, 1, d_conv), bias: (C,) or None -> (B, C, L) causal depthwise conv as d_conv shifted
    multiply-adds: 4x faster on CPU than a grouped `F.conv1d` (measured 4.0 vs 16.8 ms for Vim-S at batch 8, one
    thread)."""
    steps = x.shape[-1]
    weight = weight[:, 0]
    last = weight.shape[1] - 1
    y = x * weight[:, last:] if bias is None else torch.addcmul(bias[:, None], x, weight[:, last:])
    for j in range(last):
        shift = last - j
        if shift < steps:
            y[..., shift:].addcmul_(x[..., : steps - shift], weight[:, j : j + 1])
    return y


def grouped_causal_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """x: (B, C, L), weight: (C, 1, d_conv), bias: (C,) or None -> (B, C, L) causal depthwise conv as one grouped
    `F.conv1d` padded on both sides and cut to the first L steps (the original's `nn.Conv1d` arithmetic). On CUDA
    one kernel instead of d_conv passes over (B, C, L) and their in-place slices' backward: Vim-S's training step at
    batch 128 as `vssm.analysis.roofline` predicts it fell from 302 to 138 ms."""
    return F.conv1d(x, weight, bias, padding=weight.shape[-1] - 1, groups=x.shape[1])[..., : x.shape[-1]]


class MambaMixer(SSMCore):
    """Mamba-1 mixer with one parameter set per scan route.

    Args:
        d_model: token width D.
        num_routes: K; must equal the `routes` given to `forward`.
        config: `SSMConfig` (d_state, d_conv, expand, dt_rank, ...); `d_conv` must be >= 1 here.
        naming: parameter names of route k (`RouteNaming.BACKWARD_SUFFIX` gives Vim's / stock Mamba's keys).
        merge: how route outputs are combined at each token.
        route_mixer: optional module `(ys, num_tokens) -> ys'` applied to the routes' gated outputs ys (B, K, E, L')
            in visit order before the merge; ys is exactly zero at padding steps, so a mixer whose statistics are
            sums over tokens (a per-route channel gate) needs no mask and no token order. None = plain merge.

    State-dict keys (K = 2, Vim): in_proj.weight, conv1d.{weight,bias}, x_proj.weight, dt_proj.{weight,bias}, A_log, D,
    conv1d_b.*, x_proj_b.weight, dt_proj_b.*, A_b_log, D_b, out_proj.weight.
    """

    def __init__(
        self,
        d_model: int,
        num_routes: int = 1,
        config: SSMConfig | None = None,
        naming: RouteNaming = RouteNaming.BACKWARD_SUFFIX,
        merge: RouteMerge = RouteMerge.MEAN,
        route_mixer: nn.Module | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(d_model, num_routes, config, naming, device=device, dtype=dtype)
        cfg = self.config
        if cfg.d_conv < 1:
            raise ValueError(f"MambaMixer needs a causal convolution: expected config.d_conv >= 1, got {cfg.d_conv}")
        dd = {"device": device, "dtype": dtype}
        self.merge_mode = RouteMerge(merge)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=cfg.proj_bias, **dd)
        # The K routes' depthwise convolutions as one (`SSMCore.stack_routes`), initialised route by route in the
        # original's module order.
        channels = num_routes * self.d_inner
        self.conv1d = skip_default_init(nn.Conv1d, channels, channels, kernel_size=cfg.d_conv, groups=channels,
                                        padding=cfg.d_conv - 1, bias=cfg.conv_bias, **dd)
        self.stack_routes("conv1d.weight", *(("conv1d.bias",) if cfg.conv_bias else ()))
        biases = self.route_views("conv1d.bias") if cfg.conv_bias else (None,) * num_routes
        for weight, bias in zip(self.route_views("conv1d.weight"), biases):
            default_init(weight, bias)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=cfg.proj_bias, **dd)
        self.route_mixer = route_mixer

    def causal_conv(self, x: Tensor) -> Tensor:
        """x: (B, K, E, L') routes in visit order -> SiLU(causal depthwise conv along each route), same shape.

        y[t] = b + sum_j w[j] · x[t - (d_conv - 1) + j] with x[< 0] = 0: shifted multiply-adds on the CPU, one
        depthwise `F.conv1d` elsewhere and in exported programs (`shifted_causal_conv`, `grouped_causal_conv`).
        """
        batch, routes, channels, steps = x.shape
        # Exported graphs take the grouped conv too: the shifted slices export as slice_scatter, which ONNX Runtime
        # runs as Transpose + ScatterND + Transpose (46 % of vim_small's ONNX Runtime time at batch 8).
        eager_cpu = x.device.type == "cpu" and not torch.compiler.is_exporting()
        conv = shifted_causal_conv if eager_cpu else grouped_causal_conv
        y = conv(x.reshape(batch, routes * channels, steps), self.conv1d.weight, self.conv1d.bias)
        return F.silu(y).view(batch, routes, channels, steps)

    def _check(self, x: Tensor, routes: SequenceRoutes) -> None:
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MambaMixer expects x of shape (B, L, D={self.d_model}), got {tuple(x.shape)}")
        if routes.num_routes != self.num_routes or routes.length != x.shape[1]:
            raise ValueError(
                f"MambaMixer has {self.num_routes} route parameter sets for sequences of length {x.shape[1]}, got "
                f"{routes.num_routes} routes over {routes.length} tokens"
            )

    def project_in(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, L, D) -> (x, z), each (B, E, L) (strided views of one (B, L, 2E) projection)."""
        # F.linear and a transposed view: 21 ms against 32 ms for mamba_ssm's W @ x^T (Vim-S, batch 8, one thread).
        xz = F.linear(x, self.in_proj.weight, self.in_proj.bias).transpose(1, 2)
        return xz[:, : self.d_inner], xz[:, self.d_inner :]

    def _scatter(self, ys: Tensor, routes: SequenceRoutes) -> Tensor:
        """ys: (B, K, E, L') route outputs -> (B, E, L): written back to their tokens, summed or averaged over the
        routes that wrote each token (`RouteMerge`)."""
        return routes.scatter_mean(ys) if self.merge_mode is RouteMerge.MEAN else routes.scatter_sum(ys)

    @fx_leaf  # the routes decide the gathers and the merge
    def forward(self, x: Tensor, routes: SequenceRoutes) -> Tensor:
        """x: (B, L, D), routes: K routes through the L tokens -> (B, L, D).

        The gate silu(z) is applied once after the merge: every route's output at a token is gated by the same z, so
        this equals gating each route (mamba_ssm's order) up to rounding, without gathering z along every route.
        With a route mixer, or routes whose merge is not the gather's adjoint, z is gathered and the scan gates every
        step in visit order (mamba_ssm's order; padding steps read z = 0, so their outputs are exactly 0).
        """
        self._check(x, routes)
        x_in, z = self.project_in(x)
        if self.route_mixer is not None or not routes.adjoint:
            ys = self.ssm(self.causal_conv(routes.gather(x_in)), routes.gather(z))
            if self.route_mixer is not None:
                ys = self.route_mixer(ys, routes.length)
            return self.out_proj(self._scatter(ys, routes).transpose(1, 2))
        ys = self.ssm(self.causal_conv(routes.gather(x_in)))
        y = self._scatter(ys, routes)
        # silu(z) first: its (B, L, E)-contiguous result sets the product's layout, so out_proj reads it without a copy.
        return self.out_proj(F.silu(z.transpose(1, 2)) * y.transpose(1, 2))

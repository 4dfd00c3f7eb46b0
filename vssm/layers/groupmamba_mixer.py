"""GroupMamba's token mixer: channel groups that each scan one route, with channel affinity modulation.

Shaker et al., "GroupMamba: Efficient Group-Based Visual State Space Model", CVPR 2025
(https://arxiv.org/abs/2407.13772); original code: Amshaker/GroupMamba, `classification/models/groupmamba.py`
(`GroupMambaLayer`) and `ss2d.py` (`SS2D`, forward_type "v2") @ c1800ed.

`GroupedSS2D` is the original's four "visual single selective scan" (VSSS) blocks `mamba_g1..4` in one module: the
channels are split into K groups (K = the scan order's number of routes; GroupMamba's `cross` has 4: row-major,
column-major and both reversed, `CrossScan_1..4` of the original), and group k runs a gated SS2D with one route,
route k. Every per-group weight is stacked along a leading K dimension, so the K groups run as one batched matmul,
one depthwise conv and ONE selective scan whose channel block k reads its tokens along route k (the op's `route=`):
no K-fold copy of anything. Where the backend would gather jumping routes (GPUs, the cost model's meta tensors),
groups whose routes share base layouts (`vssm.layers.route_bases`; cross: the raster and its transpose) are
permuted into their base first, so every route is read in place; groupmamba_tiny, batch 128, predicted by
benchmarks/gpu_model.py for an H100: inference 56.68 -> 55.22 ms, training step 160.83 -> 157.92 ms (the gathers
and scatter, 4.0 ms of the forward, become 2.55 ms of copies).

`ChannelAffinityMamba` is the original's `GroupMambaLayer`: LN, the grouped scan, `* skip_scale * x`, a squeeze-and-
excitation style channel modulation computed from the normalised input, the same LN again, and a linear projection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import trunc_normal_
from torch import nn

from vssm import scans
from vssm.kernels import compute_dtype
from vssm.layers.fx import fx_leaf
from vssm.layers.layout import LAYER_NORM_EPS
from vssm.layers.route_bases import BaseKind, RouteBases, permute_groups, route_bases
from vssm.layers.selective_ssm import SSMWeights, init_ssm_parameters, selective_ssm
from vssm.layers.ss2d import in_base_layouts, routable
from vssm.scans.functional import sink_index

__all__ = ["ChannelAffinityMamba", "GroupedSS2D"]


class GroupedSS2D(nn.Module):
    """K channel groups, group k a gated single-route SS2D along route k of `scan` (the original's VSSS blocks).

    Args:
        dim: C, channels in and out; split into K groups of C/K (K must divide C).
        d_state: N, SSM state size.
        expand: E = int(expand · C/K), each group's inner width ("ssm_ratio").
        dt_rank: R; None = ceil((C/K) / 16), from the group's width as in the original.
        d_conv: depthwise conv kernel size.
        scan: a scan order or its registered name; its K routes set the number of groups.
        route_addressing: feed the scan op through `route=` (default) instead of gathering each group's route.

    Parameters (group k at index k; the original's `mamba_g{k+1}.<name>` stacked): `in_proj_weight (K, 2E, C/K)`,
    `conv2d` (depthwise over K·E channels), `x_proj_weight (K, R + 2N, E)`, `dt_projs_weight (K, E, R)`,
    `dt_projs_bias (K, E)`, `A_logs (K·E, N)`, `Ds (K·E)`, `out_norm_weight` / `out_norm_bias (K, E)`,
    `out_proj_weight (K, C/K, E)`.

    Shapes: x (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(
        self,
        dim: int,
        d_state: int = 1,
        expand: float = 1.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        scan: str | scans.ScanOrder = "cross",
        route_addressing: bool = True,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.order = scans.get(scan)
        groups = self.order.num_routes
        if dim % groups:
            raise ValueError(
                f"dim: GroupMamba splits the channels into one group per route of the scan order ({self.order!r} has "
                f"{groups}); expected a multiple of {groups}, got {dim}"
            )
        if d_conv < 1 or d_conv % 2 == 0:
            raise ValueError(f"d_conv: expected an odd kernel size >= 1, got {d_conv}")
        factory = {"device": device, "dtype": dtype}
        self.dim = dim
        self.num_groups = groups
        self.group_dim = dim // groups
        self.d_state = d_state
        self.d_inner = int(expand * self.group_dim)
        self.dt_rank = math.ceil(self.group_dim / 16) if dt_rank is None else dt_rank
        self.route_addressing = route_addressing
        inner, width = self.d_inner, self.group_dim

        self.in_proj_weight = nn.Parameter(torch.empty(groups, 2 * inner, width, **factory))
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(
            groups * inner, groups * inner, d_conv, padding=(d_conv - 1) // 2, groups=groups * inner, **factory
        )
        self.x_proj_weight = nn.Parameter(torch.empty(groups, self.dt_rank + 2 * d_state, inner, **factory))
        self.dt_projs_weight = nn.Parameter(torch.empty(groups, inner, self.dt_rank, **factory))
        self.dt_projs_bias = nn.Parameter(torch.empty(groups, inner, **factory))
        self.A_logs = nn.Parameter(torch.empty(groups * inner, d_state, **factory))
        self.Ds = nn.Parameter(torch.empty(groups * inner, **factory))
        self.out_norm_weight = nn.Parameter(torch.empty(groups, inner, **factory))
        self.out_norm_bias = nn.Parameter(torch.empty(groups, inner, **factory))
        self.out_proj_weight = nn.Parameter(torch.empty(groups, width, inner, **factory))
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The original's init: its blocks' `_init_weights` for the projections (trunc-normal 0.02), the conv
        (N(0, 2 / k²)) and the out norm (1, 0); Mamba's for the SSM parameters (VMamba's `mamba_init`)."""
        if self.A_logs.is_meta:
            return
        trunc_normal_(self.in_proj_weight, std=0.02)
        trunc_normal_(self.out_proj_weight, std=0.02)
        kernel = self.conv2d.kernel_size
        self.conv2d.weight.normal_(0, math.sqrt(2.0 / (kernel[0] * kernel[1])))
        self.conv2d.bias.zero_()
        self.out_norm_weight.fill_(1.0)
        self.out_norm_bias.zero_()
        self.x_proj_weight.uniform_(-(self.d_inner**-0.5), self.d_inner**-0.5)  # nn.Linear(E, R + 2N)'s default
        dt_min, dt_max, floor = self._dt_range
        init_ssm_parameters(
            self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds, dt_min=dt_min, dt_max=dt_max,
            dt_init_floor=floor,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        groups, inner = self.num_groups, self.d_inner
        tokens = height * width
        x = x.reshape(batch, tokens, groups, self.group_dim).permute(0, 2, 3, 1)  # (B, K, C/K, L)
        x, z = torch.matmul(self.in_proj_weight, x).split(inner, dim=2)  # (B, K, E, L) each
        x = self.act(self.conv2d(x.reshape(batch, groups * inner, height, width)))
        y = self.ssm(x.view(batch, groups, inner, height, width))  # (B, K, E, L), float32 (float64 stays)
        # The out norm sees the float32 scan output (the original's SelectiveScanCore returns float32).
        y = F.layer_norm(y.transpose(2, 3), (inner,), eps=LAYER_NORM_EPS)  # (B, K, L, E)
        y = torch.addcmul(self.out_norm_bias.unsqueeze(1), y, self.out_norm_weight.unsqueeze(1))
        y = y.to(z.dtype) * self.act(z).transpose(2, 3)
        y = torch.matmul(y, self.out_proj_weight.transpose(1, 2))  # (B, K, L, C/K)
        return y.permute(0, 2, 1, 3).reshape(batch, height, width, self.dim)

    @fx_leaf  # the route tables follow the grid
    def ssm(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, K, E, H, W), group k's scan input -> (B, K, E, H·W): group k's SSM output along route k, in token
        order, float32 (float64 for float64 x)."""
        batch, groups, inner, height, width = x.shape
        u = x.reshape(batch, groups, inner, height * width)
        dtype = compute_dtype(u.dtype)  # the original scans float32 inputs (force_fp32)
        weights = SSMWeights(
            self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias.reshape(-1), self.A_logs, self.Ds
        )
        if self.route_addressing and routable(self.order, height, width):
            bases = self._shared_bases(x) if in_base_layouts(x.device, dtype) else None
            if bases is not None:
                return self._ssm_in_bases(bases, x, weights, dtype)
            return selective_ssm(u, weights, dtype, route=self.order.route(height, width, x.device), out_float32=True)
        # Materialised: group k's channels gathered along route k (pad steps read 0), scanned, written back.
        route = self.order.route(height, width, x.device)
        padded = self.order.tables(height, width).padded
        if padded:
            u = F.pad(u, (0, 1))
        index = sink_index(route, height * width).view(1, groups, 1, -1).expand(batch, -1, inner, -1)
        y = selective_ssm(u.gather(3, index), weights, dtype, out_float32=True)
        return self.order.unscan(y, height, width).flatten(3)

    def _shared_bases(self, x: torch.Tensor) -> RouteBases | None:
        """The base layouts of the groups' routes when they share them without gathers (cross: group k in the raster
        or its transpose, k % 2), else None (`vssm.layers.route_bases`; the groups keep the order's route order)."""
        bases = route_bases(self.order, *x.shape[-2:], x.device, keep_route_order=True)
        if bases.num_bases == self.num_groups or BaseKind.GATHER.value in bases.kinds:
            return None
        return bases

    def _ssm_in_bases(self, bases: RouteBases, x: torch.Tensor, weights: SSMWeights,
                      dtype: torch.dtype) -> torch.Tensor:
        """`ssm` with group k's input permuted into base k % nb, where its route is a neighbour walk read in place,
        and its output permuted back: a transposed copy of the column-major groups' u and y instead of the op's
        gathers of u, delta, B and C and scatter of y."""
        batch, groups, inner, height, width = x.shape
        u = permute_groups(bases, x.view(batch, groups, inner, height * width), into_bases=True)
        y = selective_ssm(u, weights, dtype, route=bases.route, out_float32=True)
        return permute_groups(bases, y, into_bases=False)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, scan={self.order!r}, groups={self.num_groups}, d_state={self.d_state}, "
            f"d_inner={self.d_inner}, dt_rank={self.dt_rank}, route_addressing={self.route_addressing}"
        )


class ChannelAffinityMamba(nn.Module):
    """The original's `GroupMambaLayer` ("modulated group mamba"), on channel-last maps.

        x <- norm(x);  a = sigmoid(fc2(relu(fc1(mean over tokens of x))))   (B, C) channel affinity
        y <- grouped_scan(x) · skip_scale · x · a;  out = proj(norm(y))       (the same LN twice)

    Args:
        dim: C, channels in and out.
        reduction: fc1 maps C -> C // reduction.
        scan_kwargs: the `GroupedSS2D`'s other arguments (d_state, expand, scan, ...).

    Shapes: x (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(
        self,
        dim: int,
        reduction: int = 16,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **scan_kwargs,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        if dim // reduction < 1:
            raise ValueError(f"dim: the channel affinity needs dim >= reduction ({reduction}), got {dim}")
        self.fc1 = nn.Linear(dim, dim // reduction, **factory)
        self.fc2 = nn.Linear(dim // reduction, dim, **factory)
        self.relu = nn.ReLU()
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS, **factory)
        self.vsss = GroupedSS2D(dim, **scan_kwargs, **factory)
        self.proj = nn.Linear(dim, dim, **factory)
        self.skip_scale = nn.Parameter(torch.ones(1, **factory))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        affinity = torch.sigmoid(self.fc2(self.relu(self.fc1(x.mean(dim=(1, 2))))))  # (B, C)
        # skip_scale folded into the (B, C) affinity: one pass over the map fewer, the same product.
        y = self.vsss(x) * x * (affinity * self.skip_scale)[:, None, None, :]
        return self.proj(self.norm(y))

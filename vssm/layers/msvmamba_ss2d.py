"""MSVMamba's multi-scale SS2D (Shi et al., NeurIPS 2024; YuHengsss/MSVMamba `SS2D` with
`sscore_type="multiscale_4scan_12"`), channel-last:

    x -> in_proj -> [x ; z], z <- SiLU(z)
      full:   SiLU(conv3×3(x))          (B, E, H, W) -> `full` routes  -> selective SSM -> sum -> out_norm
      coarse: SiLU(conv7×7 stride 2(x)) (B, E, h, w) -> `coarse` routes back to back (one sequence)
                                        -> selective SSM -> out_norm at every step -> sum per token -> bilinear to H × W
      y = full + coarse -> squeeze-excite -> * z -> out_proj

Both branches run on the shared selective-SSM core (`vssm.layers.selective_ssm`); the routes and the
up/down-sampling geometry are a `scans.multiscale.MultiScale`. The parameters keep the original's names:
`x_proj_weight (1 + K, R + 2N, E)`, `dt_projs_weight (1 + K, E, R)`, `dt_projs_bias (1 + K, E)`, `A_logs ((1 + K)·E,
N)`, `Ds ((1 + K)·E)`, set 0 for the coarse chain and sets 1..K for the K full-resolution routes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vssm.kernels import compute_dtype
from vssm.layers.fx import fx_leaf
from vssm.layers.selective_ssm import SSMWeights, init_ssm_parameters, selective_ssm
from vssm.layers.ss2d import routable
from vssm.scans.multiscale import MultiScale


class SqueezeExcite(nn.Module):
    """Channel gate of a (B, C, H, W) map: x · sigmoid(fc2(ReLU(fc1(mean over H, W)))), bias-free linears (the
    original's `SEModule`, keys `fc.0`, `fc.2`)."""

    def __init__(
        self, channels: int, reduction: int = 8, device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        hidden = channels // reduction
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False, **factory),
            nn.ReLU(),
            nn.Linear(hidden, channels, bias=False, **factory),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class MultiScaleSS2D(nn.Module):
    """The multi-scale SS2D mixer, (B, H, W, C) -> (B, H, W, C).

    Args:
        d_model: C, channels in and out.
        d_state: N, SSM state size per channel.
        expand: E = int(expand · C), the inner width ("ssm_ratio").
        dt_rank: R; None = ceil(C / 16).
        d_conv: kernel of the full-resolution depthwise conv.
        coarse_kernel: kernel of the strided depthwise conv that makes the coarse map (padding half of it).
        scan: the routes and grids (`MultiScale`); its full order's K sets the parameter groups (1 + K).
        se_reduction: squeeze-excite hidden width E / se_reduction.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 1,
        expand: float = 2.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        coarse_kernel: int = 7,
        scan: MultiScale | None = None,
        se_reduction: int = 8,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        scan = MultiScale() if scan is None else scan
        if not isinstance(scan, MultiScale):
            raise TypeError(f"scan: expected a scans.multiscale.MultiScale, got {scan!r}")
        factory = {"device": device, "dtype": dtype}
        self.scan = scan
        self.d_model, self.d_state = d_model, d_state
        self.d_inner = inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else dt_rank
        sets = scan.num_parameter_sets

        self.in_proj = nn.Linear(d_model, 2 * inner, bias=False, **factory)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(inner, inner, d_conv, padding=(d_conv - 1) // 2, groups=inner, **factory)
        self.conv2d_b1 = nn.Conv2d(
            inner, inner, coarse_kernel, stride=scan.stride, padding=(coarse_kernel - 1) // 2, groups=inner, **factory
        )
        self.x_proj_weight = nn.Parameter(torch.empty(sets, self.dt_rank + 2 * d_state, inner, **factory))
        self.dt_projs_weight = nn.Parameter(torch.empty(sets, inner, self.dt_rank, **factory))
        self.dt_projs_bias = nn.Parameter(torch.empty(sets, inner, **factory))
        self.A_logs = nn.Parameter(torch.empty(sets * inner, d_state, **factory))
        self.Ds = nn.Parameter(torch.empty(sets * inner, **factory))
        self.out_norm = nn.LayerNorm(inner, **factory)
        self.se = SqueezeExcite(inner, se_reduction, **factory)
        self.out_proj = nn.Linear(inner, d_model, bias=False, **factory)
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Mamba's initialisation, one independent draw per parameter set."""
        dt_min, dt_max, floor = self._dt_range
        bound = self.d_inner**-0.5  # x_proj_weight[k] like a default nn.Linear(E, R + 2N)
        self.x_proj_weight.uniform_(-bound, bound)
        init_ssm_parameters(
            self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds, dt_min=dt_min, dt_max=dt_max,
            dt_init_floor=floor,
        )

    def _weights(self, sets: slice) -> SSMWeights:
        inner = self.d_inner
        rows = slice(sets.start * inner, sets.stop * inner)
        return SSMWeights(
            self.x_proj_weight[sets], self.dt_projs_weight[sets], self.dt_projs_bias[sets].reshape(-1),
            self.A_logs[rows], self.Ds[rows],
        )

    def _norm(self, y: torch.Tensor) -> torch.Tensor:
        """out_norm over the channels of (B, E, ...) at every position; it sees the float32 scan output."""
        return self.out_norm(y.movedim(1, -1).to(self.out_norm.weight.dtype)).movedim(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, z = self.in_proj(x).chunk(2, dim=-1)
        z = self.act(z)
        x = x.permute(0, 3, 1, 2)  # (B, E, H, W)
        y = self.ssm(self.act(self.conv2d(x)), self.act(self.conv2d_b1(x)))
        y = self.se(y).permute(0, 2, 3, 1)
        return self.out_proj((y * z).to(z.dtype))

    @fx_leaf  # its routes follow the grids
    def ssm(self, x: torch.Tensor, x_coarse: torch.Tensor) -> torch.Tensor:
        """x: (B, E, H, W) after the conv, x_coarse: (B, E, h, w) after the strided conv -> both branches' outputs
        summed, (B, E, H, W), float32 (float64 for float64 input)."""
        return self._full(x) + self._coarse(x_coarse, *x.shape[-2:])

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        """The full-resolution routes' outputs summed at their tokens, normalised."""
        batch, inner, height, width = x.shape
        order = self.scan.full
        weights = self._weights(slice(1, self.scan.num_parameter_sets))
        dtype = compute_dtype(x.dtype)
        if routable(order, height, width):
            route = order.route(height, width, x.device)
            u = x.reshape(batch, inner, height * width)
            # the routes summed at their tokens in the scan's epilogue
            y = selective_ssm(u, weights, dtype, route=route, out_float32=True, fold=order.num_routes)
            y = y.view(batch, inner, height, width)
        else:
            y = order.merge(selective_ssm(order.scan(x), weights, dtype, out_float32=True), height, width)
        return self._norm(y)

    def _coarse(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The chained coarse routes' outputs, each step normalised, summed at their tokens, upsampled to H × W."""
        chain = self.scan.chain(x).unsqueeze(1)  # (B, 1, E, K·L')
        ys = selective_ssm(chain, self._weights(slice(0, 1)), compute_dtype(x.dtype), out_float32=True)
        y = self.scan.unchain(self._norm(ys[:, 0]), *x.shape[-2:])
        return self.scan.upsample(y, height, width)

    def extra_repr(self) -> str:
        return (
            f"scan={self.scan!r}, d_state={self.d_state}, d_inner={self.d_inner}, dt_rank={self.dt_rank}"
        )

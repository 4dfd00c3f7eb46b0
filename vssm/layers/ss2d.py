"""SS2D: VMamba's 2-D selective-scan mixer over any scan order (Liu et al., "VMamba", NeurIPS 2024).

    x -> in_proj -> [x ; z] -> depthwise conv -> SiLU -> K routes through the grid -> per-route x_proj / dt_proj
      -> selective scan (fp32 state, fp32 output) -> sum of the routes at their tokens -> out_norm [-> * SiLU(z)]
      -> out_proj

The K routes come from a `scans.ScanOrder` (VMamba's `cross` has K = 4); every per-route parameter has K groups:
`x_proj_weight (K, R + 2N, E)`, `dt_projs_weight (K, E, R)`, `dt_projs_bias (K, E)`, `A_logs (K·E, N)`, `Ds (K·E)`.

Three ways to run the scan, equal up to rounding (tested forward and backward against the float64 reference):

* route addressing (default on the CPU): the projections run once in token order and
  `kernels.selective_scan(..., route=)` reads every route through its index table, writing each route's output back
  to token positions.
* base layouts (default off the CPU, and wherever the scan backend would gather jumping routes): u is permuted once
  per base layout (`vssm.layers.route_bases`: VMamba's cross needs one transposed copy), the projections run there,
  every route is a neighbour walk read in place, and the routes sharing a base are summed in it before the nb sums
  are permuted back (no gathers of delta / u / B / C, no (B, K, E, L) scatter).
* materialised: `order.scan` gathers K permuted copies, the op scans them, `order.merge` scatters and sums: the
  reference path, and the one used for orders that route addressing cannot express (see `routable`).

The SSM itself (Mamba's initialisation, the projections, the scan call) is `vssm.layers.selective_ssm`, which the
Mamba mixers share.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass

import torch
from torch import nn

from vssm import scans
from vssm.kernels import compute_dtype
from vssm.kernels.backends import IMPLEMENTATIONS, select_backend
from vssm.layers.fx import fx_leaf
from vssm.layers.layout import Layout, layer_norm, linear
from vssm.layers.route_bases import RouteBases, from_bases, route_bases, to_bases
from vssm.layers.selective_ssm import SSMWeights, init_ssm_parameters, selective_ssm


@dataclass(frozen=True)
class SS2DOptions:
    """What distinguishes the released SS2D forms.

    gate: in_proj also produces z (C -> 2E) and the output is out_norm(y) * SiLU(z).
    conv_bias: the depthwise conv has a bias.
    fp32_scan_inputs: u, delta, B and C enter the scan in float32 (otherwise in the activation dtype, e.g. fp16
        under AMP); the state and the scan's output are float32 either way.
    """

    gate: bool
    conv_bias: bool
    fp32_scan_inputs: bool


class SS2DForm(enum.Enum):
    """The two SS2D forms of the released VMamba checkpoints (`forward_type` in the original code)."""

    V05_NOZ = SS2DOptions(gate=False, conv_bias=False, fp32_scan_inputs=False)  # forward_type="v05_noz": v2 release
    V0 = SS2DOptions(gate=True, conv_bias=True, fp32_scan_inputs=True)  # forward_type="v0": vanilla (and LocalVMamba)

    @property
    def options(self) -> SS2DOptions:
        return self.value


# On CPU the per-route tensors (B, K, E, L) (delta, the scan's float32 output) are built a few samples at a time, each
# under this size: glibc serves blocks above 32 MiB (its largest dynamic mmap threshold) as fresh mappings that are
# page-faulted on first touch and unmapped when freed, 22 ms per 77 MB tensor on the 2-core container. Samples are
# independent, so the result is the same (the effect on local_vssm_tiny: benchmarks/targets.md).
CPU_ROUTE_TENSOR_BYTES = 24 << 20


def routable(order: scans.ScanOrder, height: int, width: int) -> bool:
    """Whether `route=` addressing reproduces `order` on an H × W grid.

    The op scans every route over all L tokens and writes each step's output where the step read from. Orders whose
    routes partition the grid (`atrous`) or whose merge writes elsewhere (LocalMamba's official `v` reverse on
    H != W) run materialised. Python values of the cached tables, no cache of its own: torch.compile traces through an
    `lru_cache` wrapper and warns that it does.
    """
    tables = order.tables(height, width)
    return all(visits == height * width for visits in tables.visits) and tables.merge_route is tables.route


class SS2D(nn.Module):
    """The SS2D mixer.

    Args:
        d_model: C, channels in and out.
        d_state: N, SSM state size per channel.
        expand: E = int(expand · C), the inner width.
        dt_rank: R, rank of the delta projection; None = ceil(C / 16) (from C, not E, as the original).
        d_conv: kernel size of the depthwise conv.
        form: which released form (`SS2DForm.V05_NOZ` or `SS2DForm.V0`).
        scan: a scan order or its registered name; its number of routes K sets the parameter groups.
        layout: layout of the input and output maps (the parameters are the same in both).
        route_addressing: feed the scan op through `route=` (default) instead of K gathered copies.
        route_mixer: optional module applied to the per-route outputs, (B, K, E, L) -> (B, K, E, L), before they are
            summed (e.g. a per-route channel gate); None = plain sum. It must not depend on the token order
            (`BiAttn`): with base layouts it sees each route in its base's token order.

    Shapes: x (B, C, H, W) channel-first or (B, H, W, C) channel-last -> same.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 1,
        expand: float = 1.0,
        dt_rank: int | None = None,
        d_conv: int = 3,
        form: SS2DForm = SS2DForm.V05_NOZ,
        scan: str | scans.ScanOrder = "cross",
        layout: Layout = Layout.CHANNELS_FIRST,
        route_addressing: bool = True,
        route_mixer: nn.Module | None = None,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(form, SS2DForm):
            raise TypeError(f"form: expected an SS2DForm ({', '.join(f.name for f in SS2DForm)}), got {form!r}")
        if not isinstance(layout, Layout):
            raise TypeError(f"layout: expected a Layout, got {layout!r}")
        if d_conv < 1 or d_conv % 2 == 0:
            raise ValueError(f"d_conv: expected an odd kernel size >= 1, got {d_conv}")
        factory = {"device": device, "dtype": dtype}
        self.form = form
        self.layout = layout
        self.order = scans.get(scan)
        self.route_addressing = route_addressing
        self.d_model = d_model
        self.d_state = d_state
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank is None else dt_rank
        self.num_routes = self.order.num_routes
        options = form.options
        inner, routes = self.d_inner, self.num_routes

        self.in_proj = linear(layout, d_model, inner * (2 if options.gate else 1), bias=False, **factory)
        self.act = nn.SiLU()
        self.conv2d = nn.Conv2d(
            inner, inner, d_conv, padding=(d_conv - 1) // 2, groups=inner, bias=options.conv_bias, **factory
        )
        self.x_proj_weight = nn.Parameter(torch.empty(routes, self.dt_rank + 2 * d_state, inner, **factory))
        self.dt_projs_weight = nn.Parameter(torch.empty(routes, inner, self.dt_rank, **factory))
        self.dt_projs_bias = nn.Parameter(torch.empty(routes, inner, **factory))
        self.A_logs = nn.Parameter(torch.empty(routes * inner, d_state, **factory))
        self.Ds = nn.Parameter(torch.empty(routes * inner, **factory))
        self.out_norm = layer_norm(layout, inner, **factory)
        self.out_proj = linear(layout, inner, d_model, bias=False, **factory)
        self.route_mixer = route_mixer
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Mamba's initialisation, one independent draw per route (VMamba's `mamba_init`)."""
        dt_min, dt_max, floor = self._dt_range
        # x_proj_weight[k] is initialised like a default nn.Linear(E, R + 2N): U(±1/sqrt(E)).
        bound = self.d_inner**-0.5
        self.x_proj_weight.uniform_(-bound, bound)
        init_ssm_parameters(
            self.dt_projs_weight, self.dt_projs_bias, self.A_logs, self.Ds, dt_min=dt_min, dt_max=dt_max,
            dt_init_floor=floor,
        )

    # --------------------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_proj(x)
        options = self.form.options
        if options.gate:
            x, z = x.chunk(2, dim=self.layout.channel_dim)
            z = self.act(z)
        x = self.act(self.conv2d(self.layout.to_nchw(x)))  # (B, E, H, W)
        y = self.layout.from_nchw(self.ssm(x))
        # out_norm sees the float32 scan output (its parameters are float32 under AMP), as in the original.
        y = self.out_norm(y.to(self.out_norm.weight.dtype))
        if options.gate:
            y = y * z
        return self.out_proj(y.to(x.dtype))

    @fx_leaf  # its routes and CPU chunking follow the grid
    def ssm(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, E, H, W) after the conv -> the routes' outputs summed at their tokens, (B, E, H, W).

        The result is float32 (float64 for float64 input), whatever the activation dtype.
        """
        height, width = x.shape[-2:]
        routed = self.route_addressing and routable(self.order, height, width)
        run = self._ssm_routed if routed else self._ssm_materialised
        bases = self._shared_bases(x) if routed and self._in_base_layouts(x) else None
        if bases is not None:
            run = functools.partial(self._ssm_in_bases, bases)
        samples = max(1, CPU_ROUTE_TENSOR_BYTES // (4 * self.num_routes * math.prod(x.shape[1:])))
        # Compiled and exported graphs run whole: splitting a symbolic batch would fix it (the split is an eager
        # allocator workaround; a traced graph plans its own buffers).
        if x.device.type != "cpu" or torch.compiler.is_compiling() or samples >= x.shape[0]:
            return run(x)
        return torch.cat([run(part) for part in x.split(samples)])

    def _ssm_routed(self, x: torch.Tensor) -> torch.Tensor:
        batch, inner, height, width = x.shape
        # Every route reads the same u in token order ("shared u"): no K-fold copy, no gather.
        route = self.order.route(height, width, x.device)
        u = x.reshape(batch, inner, height * width)
        if self.route_mixer is None:  # the K routes summed in the scan's epilogue
            return self._scan_routes(u, route, fold=self.num_routes).view(batch, inner, height, width)
        return self.route_mixer(self._scan_routes(u, route)).sum(dim=1).view(batch, inner, height, width)

    def _in_base_layouts(self, x: torch.Tensor) -> bool:
        """Whether the routes run in base layouts: off the CPU (a CUDA run, the cost model's meta tensors) and on a
        CPU backend that gathers jumping routes (the Triton interpreter). vmamba_tiny, batch 128, predicted by
        benchmarks/gpu_model.py for an H100: the gathers, scatter and sum of route addressing (3.79 + 1.62 + 1.96 ms
        of 32.43 ms per inference batch) become two copies of u, a pairwise sum and a transposed add (1.20 + 2.31 +
        1.28 ms of 31.21 ms; 396 -> 368 MB per image); a training step 84.41 -> 80.29 ms.
        The C scan reads jumping routes in place as fast as neighbour walks, so the CPU keeps route addressing.
        Compiled graphs decide the same way as eager calls."""
        return in_base_layouts(x.device, compute_dtype(x.dtype) if self.form.options.fp32_scan_inputs else x.dtype)

    def _shared_bases(self, x: torch.Tensor) -> RouteBases | None:
        """The base layouts of the routes on x's grid when routes share them (a direction and its flip), else None.
        With a base per route (most of LocalVMamba's searched direction lists: three distinct walks in four) the
        model predicts no gain: K copies of u and K permuted outputs to sum cost what the gathers cost
        (local_vssm_tiny, inference: 94.6 ms in base layouts, 91.8 ms with route addressing)."""
        bases = route_bases(self.order, *x.shape[-2:], x.device, keep_route_order=self.route_mixer is not None)
        return bases if bases.num_bases < self.num_routes else None

    def _ssm_in_bases(self, bases: RouteBases, x: torch.Tensor) -> torch.Tensor:
        batch, inner, height, width = x.shape
        count = bases.num_bases
        if self.route_mixer is None:
            # the routes sharing a base (order[i], base i % nb) summed in the scan's epilogue: (B, nb, E, L)
            y = self._scan_routes(to_bases(bases, x), bases.route, bases, fold=self.num_routes // count)
            return from_bases(bases, y.view(batch, 1, count, inner, height * width))
        y = self.route_mixer(self._scan_routes(to_bases(bases, x), bases.route, bases))  # (B, K, E, L)
        return from_bases(bases, y.view(batch, self.num_routes // count, count, inner, height * width))

    def _ssm_materialised(self, x: torch.Tensor) -> torch.Tensor:
        batch, inner, height, width = x.shape
        y = self._scan_routes(self.order.scan(x), None)  # (B, K, E, L')
        if self.route_mixer is None:
            return self.order.merge(y, height, width)
        y = self.order.unscan(y, height, width).flatten(3)  # (B, K, E, L)
        return self.route_mixer(y).sum(dim=1).view(batch, inner, height, width)

    def _scan_routes(self, u: torch.Tensor, route: torch.Tensor | None, bases: RouteBases | None = None,
                     fold: int = 1) -> torch.Tensor:
        """u: (B, E, L) in token order with `route`, (B, nb·E, L) the base layouts with `route` and `bases` (routes
        in `bases.order`), else (B, K, E, L') the gathered routes -> every route's SSM output (B, K, E, L or L'),
        float32 (float64 for float64 u); with `fold` F, routes k, k + K/F, ... summed by the scan: (B, K/F, E, L)."""
        # The v0 form scans float32 inputs (the original's force_fp32); v05_noz scans the activations' dtype.
        dtype = compute_dtype(u.dtype) if self.form.options.fp32_scan_inputs else u.dtype
        weights = SSMWeights(
            self.x_proj_weight, self.dt_projs_weight, self.dt_projs_bias.reshape(-1), self.A_logs, self.Ds
        )
        if bases is not None and bases.order != tuple(range(self.num_routes)):
            weights = _reorder_routes(weights, bases.order)
        return selective_ssm(u, weights, dtype, route=route, out_float32=True, fold=fold)

    def extra_repr(self) -> str:
        return (
            f"form={self.form.name}, scan={self.order!r}, routes={self.num_routes}, d_state={self.d_state}, "
            f"d_inner={self.d_inner}, dt_rank={self.dt_rank}, layout={self.layout.value}, "
            f"route_addressing={self.route_addressing}"
        )


def in_base_layouts(device: torch.device, scan_dtype: torch.dtype) -> bool:
    """Whether routes that share base layouts run in them (`SS2D._in_base_layouts`): off the CPU, and on a CPU
    backend that gathers jumping routes."""
    return device.type != "cpu" or _backend_gathers_routes(device, scan_dtype)


@torch.compiler.assume_constant_result
def _backend_gathers_routes(device: torch.device, dtype: torch.dtype) -> bool:
    # Read once while torch.compile traces, as the scan op reads its backend (vssm.kernels.interface): the backend
    # probe calls into C (os.stat) that Dynamo cannot trace.
    return IMPLEMENTATIONS[select_backend(device, dtype)].gathers_scattered_routes


def _reorder_routes(weights: SSMWeights, order: tuple[int, ...]) -> SSMWeights:
    """The K routes' parameters with route `order[i]` in place i."""
    index = list(order)
    routes = len(order)

    def per_route(t: torch.Tensor) -> torch.Tensor:
        return t.view(routes, -1, *t.shape[1:])[index].reshape(t.shape)

    return SSMWeights(weights.x_proj[index], weights.dt_proj[index], per_route(weights.delta_bias),
                      per_route(weights.A_log), per_route(weights.D))

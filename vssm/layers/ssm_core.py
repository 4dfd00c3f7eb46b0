"""Mamba's selective SSM with K parameter sets, one per scan route, run as one batched scan.

`SSMCore` owns, for each route k, the parameters of mamba_ssm's `Mamba` that act on the inner width E:
`x_proj` (E -> R + 2N), `dt_proj` (R -> E, with the dt bias), `A_log` (E, N) and `D` (E). Its `ssm` method takes
the K routes' inputs (B, K, E, L) and runs all of them in ONE selective scan (`vssm.layers.selective_ssm`, shared
with VMamba's SS2D).

Parameter names follow a `RouteNaming`, so checkpoints of the original models load without renames: Vim's bimamba
v2 (`A_log`, `A_b_log`, `conv1d_b`, ...) or LocalMamba's indexed sets (`A_log_0`, `x_proj_3`, ...). Subclasses (the
mixers) add their projections and convolutions next to these parameters, in the same flat namespace.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .selective_ssm import DtInit, SSMWeights, init_ssm_parameters, selective_ssm


@dataclass(frozen=True)
class SSMConfig:
    """Hyper-parameters of one Mamba (S6) mixer, mamba_ssm's names and defaults.

    `dt_rank=None` means mamba_ssm's "auto": ceil(d_model / 16). `d_conv=0` means no causal convolution (a mixer that
    has its own, or none). `proj_bias` is mamba_ssm's `bias` (in_proj/out_proj), `conv_bias` the conv1d bias.
    """

    d_state: int = 16
    d_conv: int = 4
    expand: float = 2.0
    dt_rank: int | None = None
    dt_min: float = 1e-3
    dt_max: float = 0.1
    dt_init: DtInit = DtInit.RANDOM
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    conv_bias: bool = True
    proj_bias: bool = False

    def __post_init__(self) -> None:
        for name in ("d_state", "d_conv"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "d_state" else 0):
                raise ValueError(f"SSMConfig.{name}: expected an int >= {int(name == 'd_state')}, got {value!r}")
        if self.dt_rank is not None and (isinstance(self.dt_rank, bool) or not isinstance(self.dt_rank, int)
                                         or self.dt_rank < 1):
            raise ValueError(f"SSMConfig.dt_rank: expected None (auto) or an int >= 1, got {self.dt_rank!r}")
        if not self.expand > 0:
            raise ValueError(f"SSMConfig.expand: expected a positive number, got {self.expand!r}")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(
                f"SSMConfig: expected 0 < dt_min <= dt_max, got dt_min={self.dt_min}, dt_max={self.dt_max}"
            )
        object.__setattr__(self, "dt_init", DtInit(self.dt_init))

    def inner_dim(self, d_model: int) -> int:
        """E = int(expand · d_model), as mamba_ssm computes it."""
        return int(self.expand * d_model)

    def rank(self, d_model: int) -> int:
        """R, the rank of the dt projection."""
        return self.dt_rank if self.dt_rank is not None else math.ceil(d_model / 16)


class RouteNaming(enum.Enum):
    """How the parameters of route k are named in the state dict (so official checkpoints load unchanged)."""

    # Stock Mamba for K = 1; Vim's bimamba v2 for K = 2: route 1 is `conv1d_b`, `x_proj_b`, `dt_proj_b`, `D_b` and
    # (sic) `A_b_log`.
    BACKWARD_SUFFIX = "backward_suffix"
    # LocalMamba's MultiMamba: every route k has `conv1d_k`, `x_proj_k`, `dt_proj_k`, `A_log_k`, `D_k`.
    INDEXED = "indexed"

    def max_routes(self) -> int | None:
        return 2 if self is RouteNaming.BACKWARD_SUFFIX else None

    def attr_name(self, base: str, route: int) -> str:
        """The attribute name of parameter (or module) `base` of route `route`.

        (Not `name`: that would shadow the enum member's own `name`, which torch.compile's tracing relies on.)"""
        if self is RouteNaming.INDEXED:
            return f"{base}_{route}"
        if route == 0:
            return base
        return "A_b_log" if base == "A_log" else f"{base}_b"


def _activation_dtype(u: Tensor) -> torch.dtype:
    """The one dtype of the scan's activations (u, delta, B, C, z): autocast's where it is on for u's device (the
    projections then come out in it while a conv with float32 weights promotes u to float32; mamba_ssm's kernels
    likewise scan in the autocast dtype with a float32 state), else u's."""
    device = u.device.type
    if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return u.dtype


class SSMCore(nn.Module):
    """K routes' selective-SSM parameters and the batched scan over them.

    Args:
        d_model: width D of the tokens the mixer sees (sets E = expand·D and the auto dt rank).
        num_routes: K, the number of parameter sets (one per scan route).
        config: the mixer's hyper-parameters.
        naming: how route k's parameters are named.
    """

    def __init__(
        self,
        d_model: int,
        num_routes: int = 1,
        config: SSMConfig | None = None,
        naming: RouteNaming = RouteNaming.BACKWARD_SUFFIX,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        config = SSMConfig() if config is None else config
        if not isinstance(config, SSMConfig):
            raise TypeError(f"config: expected an SSMConfig, got {type(config).__name__}")
        naming = RouteNaming(naming)
        if isinstance(num_routes, bool) or not isinstance(num_routes, int) or num_routes < 1:
            raise ValueError(f"num_routes: expected an int >= 1, got {num_routes!r}")
        limit = naming.max_routes()
        if limit is not None and num_routes > limit:
            raise ValueError(f"naming {naming.value!r} names at most {limit} routes, got num_routes={num_routes}")
        dd = {"device": device, "dtype": dtype}
        self.config, self.naming, self.num_routes = config, naming, num_routes
        self.d_model = d_model
        self.d_inner = config.inner_dim(d_model)
        self.d_state = config.d_state
        self.dt_rank = config.rank(d_model)
        for k in range(num_routes):
            # x_proj keeps nn.Linear's default init (mamba_ssm's); dt_proj's default draws stay before Mamba's init
            # replaces them, as in mamba_ssm, so seeded models keep their numbers.
            x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * self.d_state, bias=False, **dd)
            dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **dd)
            a_log = nn.Parameter(torch.empty(self.d_inner, self.d_state, **dd))
            d = nn.Parameter(torch.empty(self.d_inner, **dd))
            init_ssm_parameters(
                dt_proj.weight, dt_proj.bias, a_log, d, dt_min=config.dt_min, dt_max=config.dt_max,
                dt_init_floor=config.dt_init_floor, dt_scale=config.dt_scale, dt_init=config.dt_init,
            )
            self.add_module(naming.attr_name("x_proj", k), x_proj)
            self.add_module(naming.attr_name("dt_proj", k), dt_proj)
            self.register_parameter(naming.attr_name("A_log", k), a_log)
            self.register_parameter(naming.attr_name("D", k), d)

    # ------------------------------------------------------------------------------------------------ access

    def route_params(self, base: str) -> list[Tensor | nn.Module]:
        """Parameter (or module) `base` of every route, in route order."""
        return [getattr(self, self.naming.attr_name(base, k)) for k in range(self.num_routes)]

    def delta_bias(self) -> Tensor:
        """(K·E,) the bias the scan adds to delta before the softplus: every route's `dt_proj.bias`, in route order.

        Mixers whose released checkpoints were trained with another effective bias override this (MambaVision's
        mixer adds `dt_proj.bias` twice).
        """
        return self._cat([p.bias for p in self.route_params("dt_proj")])

    def _cat(self, tensors: list[Tensor]) -> Tensor:
        return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=0)

    def _stack(self, tensors: list[Tensor]) -> Tensor:
        return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors, dim=0)

    # ------------------------------------------------------------------------------------------------ compute

    def ssm(self, u: Tensor, z: Tensor | None = None) -> Tensor:
        """Selective scan of every route with its own parameters.

        Args:
            u: (B, K, E, L) the routes' (convolved, activated) inputs, each route in its own visit order.
            z: optional (B, K, E, L) gate; the output is multiplied by silu(z).

        Returns:
            y: (B, K, E, L), in the activations' dtype (autocast's under autocast, else u's).
        """
        if u.dim() != 4 or u.shape[1:3] != (self.num_routes, self.d_inner):
            raise ValueError(
                f"SSMCore.ssm expects u of shape (B, K={self.num_routes}, E={self.d_inner}, L), got {tuple(u.shape)}"
            )
        weights = SSMWeights(
            self._stack([p.weight for p in self.route_params("x_proj")]),
            self._stack([p.weight for p in self.route_params("dt_proj")]),
            self.delta_bias(),
            self._cat(self.route_params("A_log")),
            self._cat(self.route_params("D")),
        )
        return selective_ssm(u, weights, _activation_dtype(u), z=z)

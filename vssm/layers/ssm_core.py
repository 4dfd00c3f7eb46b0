"""Mamba's selective SSM with K parameter sets, one per scan route, run as one batched scan.

`SSMCore` owns, for each route k, the parameters of mamba_ssm's `Mamba` that act on the inner width E:
`x_proj` (E -> R + 2N), `dt_proj` (R -> E, with the dt bias), `A_log` (E, N) and `D` (E). Its `ssm` method takes
the K routes' inputs (B, K, E, L) and runs all of them in ONE selective scan (`vssm.layers.selective_ssm`, shared
with VMamba's SS2D).

Each of these is ONE parameter holding the K routes' tensors along dim 0 (`x_proj.weight` (K·(R + 2N), E),
`dt_proj.weight` (K·E, R), `dt_proj.bias` (K·E,), `A_log` (K·E, N), `D` (K·E,)), which the scan reads as it is. The
state dict names each route's part as the original models do (`RouteNaming`), so their checkpoints load without
renames: Vim's bimamba v2 (`A_log`, `A_b_log`, `conv1d_b`, ...) or LocalMamba's indexed sets (`A_log_0`,
`x_proj_3`, ...); `named_parameters()` gives the stacked names (`A_log`, `x_proj.weight`, ...), which is what
optimizer groups match. Subclasses (the mixers) add their projections and convolutions next to these parameters, in
the same flat namespace, and declare their own per-route ones with `stack_routes`.
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


def skip_default_init(
    module_cls: type[nn.Module], *args: object, device: torch.device | str | None = None, **kwargs: object
) -> nn.Module:
    """`module_cls(*args, **kwargs)` on `device` (None: torch's default device) with uninitialised parameters, its
    default init's random draws not taken (the caller initialises route by route)."""
    return nn.utils.skip_init(module_cls, *args, device=torch.get_default_device() if device is None else device,
                              **kwargs)


@torch.no_grad()
def default_init(weight: Tensor, bias: Tensor | None = None) -> None:
    """nn.Linear's and nn.ConvNd's default init, in place, of one route's weight (out, in, ...) and bias (out,):
    kaiming-uniform(a=√5), the bias U(±1/√fan_in); the same draws as a module of that route's shape."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)


def _split_routes(module: SSMCore, state_dict: dict[str, Tensor], prefix: str, local_metadata: dict) -> None:
    """State-dict post-hook: each stacked parameter replaced, where it stood, by its routes' tensors under the original
    names. They are views of the parameter (timm's ModelEma updates the state dict's tensors in place).

    `state_dict(keep_vars=True)` keeps the stacked Parameters under their own names: it is how torch.jit.trace (fvcore's
    counts) finds a module's parameters, and route views there would be traced as constants."""
    parts = {}
    for name in module._route_stacked:
        key = prefix + name
        if key in state_dict and state_dict[key] is not module.get_parameter(name):
            views = state_dict[key].chunk(module.num_routes)
            parts[key] = {prefix + module.route_name(name, k): view for k, view in enumerate(views)}
    if all(list(routes) == [key] for key, routes in parts.items()):
        return  # one route under the stacked name: nothing to rename
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        state_dict.update(parts.get(key, {key: value}))


def _merge_routes(
    module: SSMCore,
    state_dict: dict[str, Tensor],
    prefix: str,
    local_metadata: dict,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Load-state-dict pre-hook: the routes' tensors (original names) stacked into each parameter's key, reported as
    nn.Module reports its own keys: a route's missing tensor is a missing key (the parameter keeps that route's
    values, as strict=False keeps a missing parameter), a wrong shape a size mismatch naming the route's key, and
    the stacked name itself, where no route has it, an unexpected key."""
    for name in module._route_stacked:
        key = prefix + name
        route_keys = [prefix + module.route_name(name, k) for k in range(module.num_routes)]
        if route_keys == [key]:
            continue
        if key in state_dict and key not in route_keys:
            del state_dict[key]
            unexpected_keys.append(key)
        given = [state_dict.pop(route_key, None) for route_key in route_keys]
        reference = next((t for t in given if isinstance(t, Tensor)), None)
        parts = []
        for route_key, tensor, current in zip(route_keys, given, module.route_views(name)):
            if tensor is None:
                missing_keys.append(route_key)
            elif not isinstance(tensor, Tensor) or tensor.shape != current.shape:
                shape = tensor.shape if isinstance(tensor, Tensor) else type(tensor).__name__
                error_msgs.append(f"size mismatch for {route_key}: copying a param with shape {shape} from checkpoint, "
                                  f"the shape in current model is {current.shape}.")
            else:
                parts.append(tensor)
                continue
            parts.append(current.detach() if reference is None else current.detach().to(reference))
        state_dict[key] = torch.cat(parts)


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
        self._route_stacked: list[str] = []
        # Every per-route parameter is ONE tensor holding the K routes' tensors one after another along dim 0 (route
        # k's rows k·n ... (k+1)·n - 1): the forward reads it as it is, where concatenating K tensors per call cost 7
        # launches per mixer and forward (168 of vim_small's 924, `benchmarks/gpu_model.py`). The state dict still
        # names every route's tensor as the original does (`stack_routes`).
        self.x_proj = skip_default_init(nn.Linear, self.d_inner, num_routes * (self.dt_rank + 2 * self.d_state),
                                        bias=False, **dd)
        self.dt_proj = skip_default_init(nn.Linear, self.dt_rank, num_routes * self.d_inner, bias=True, **dd)
        self.A_log = nn.Parameter(torch.empty(num_routes * self.d_inner, self.d_state, **dd))
        self.D = nn.Parameter(torch.empty(num_routes * self.d_inner, **dd))
        self.stack_routes("x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D")
        for x_proj, dt_weight, dt_bias, a_log, d in zip(
            *(self.route_views(name) for name in ("x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D"))
        ):
            # Route by route in the order of mamba_ssm's modules (x_proj's nn.Linear default init, dt_proj's default
            # draws that Mamba's init then replaces), so seeded models keep their numbers.
            default_init(x_proj)
            default_init(dt_weight, dt_bias)
            init_ssm_parameters(
                dt_weight, dt_bias, a_log, d, dt_min=config.dt_min, dt_max=config.dt_max,
                dt_init_floor=config.dt_init_floor, dt_scale=config.dt_scale, dt_init=config.dt_init,
            )
        self.register_state_dict_post_hook(_split_routes)
        self.register_load_state_dict_pre_hook(_merge_routes)

    # ------------------------------------------------------------------------------------------------ storage

    def stack_routes(self, *names: str) -> None:
        """Declare parameters (state-dict names relative to this module: `A_log`, `conv1d.weight`) as the K routes'
        tensors stacked along dim 0: the state dict splits each into the routes' tensors under the original names
        (`RouteNaming`: `A_log`, `A_b_log`; `conv1d_0.weight`, ...) and loading stacks them back."""
        for name in names:
            rows = self.get_parameter(name).shape[0]
            if rows % self.num_routes:
                raise ValueError(f"{name}: {rows} rows do not split into {self.num_routes} routes")
        self._route_stacked.extend(names)

    def route_name(self, name: str, route: int) -> str:
        """The original state-dict name of route `route`'s part of the stacked parameter `name`."""
        base, dot, leaf = name.partition(".")
        return self.naming.attr_name(base, route) + dot + leaf

    def route_views(self, name: str) -> tuple[Tensor, ...]:
        """Route k's part of the stacked parameter `name` (views, in route order)."""
        return self.get_parameter(name).chunk(self.num_routes)

    def route_linears(self) -> list[tuple[Tensor, Tensor | None]]:
        """(weight, bias) of every route's x_proj then dt_proj (views), in the order of the per-route nn.Linear
        modules the originals have (x_proj_0, dt_proj_0, x_proj_1, ...): models whose init draws per Linear walk these
        so that seeded models keep their numbers."""
        views = zip(*(self.route_views(name) for name in ("x_proj.weight", "dt_proj.weight", "dt_proj.bias")))
        return [pair for x_proj, dt_weight, dt_bias in views for pair in ((x_proj, None), (dt_weight, dt_bias))]

    def delta_bias(self) -> Tensor:
        """(K·E,) the bias the scan adds to delta before the softplus: every route's dt_proj bias, in route order.

        Mixers whose released checkpoints were trained with another effective bias override this (MambaVision's
        mixer adds `dt_proj.bias` twice).
        """
        return self.dt_proj.bias

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
        routes = self.num_routes
        weights = SSMWeights(
            self.x_proj.weight.view(routes, -1, self.d_inner),
            self.dt_proj.weight.view(routes, self.d_inner, self.dt_rank),
            self.delta_bias(),
            self.A_log,
            self.D,
        )
        return selective_ssm(u, weights, _activation_dtype(u), z=z)

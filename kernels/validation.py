"""Argument checks for `selective_scan`: bad input raises ValueError/TypeError naming the tensor and both shapes."""

from __future__ import annotations

import torch
from torch.utils.weak import WeakIdKeyDictionary

from .scan_tensors import ScanShape, ScanTensors

INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
ROUTE_DTYPES = (torch.int32, torch.int64)
MAX_STATE = 256  # the CUDA op's limit on N, mirrored so models stay portable


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _shares_u(delta: tuple[int, ...], u: tuple[int, ...], routes: int) -> bool:
    """Whether u of shape `u` is a shared u for delta of shape `delta`: KD = S x u's channels with S dividing K."""
    if len(delta) != 3 or delta[0] != u[0] or delta[2] != u[2] or delta[1] % u[1]:
        return False
    return routes % (delta[1] // u[1]) == 0


def _check_tensor(name: str, t: object, optional: bool = False) -> None:
    if t is None and optional:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")


def _check_same_device(name: str, t: torch.Tensor, A: torch.Tensor) -> None:
    # Checked against A, a parameter, so that a layer fed an input on another device is told the input's device
    # (given) differs from the layer's (expected); checked against u, the message had them the wrong way round.
    if t.device != A.device:
        raise ValueError(f"{name}: expected device {A.device} (same as the parameter A), got {t.device}")


def _param_dtypes(u: torch.Tensor) -> tuple[torch.dtype, ...]:
    return (torch.float32, torch.float64) if u.dtype == torch.float64 else (torch.float32,)


def check_inputs(scan: ScanTensors) -> ScanShape:
    """Validate shapes, dtypes and devices; returns the sizes. Route values are checked by `check_route_values`."""
    u, delta, A, B, C, D, z, delta_bias, route = scan
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        _check_tensor(name, t)
    for name, t in (("D", D), ("z", z), ("delta_bias", delta_bias), ("route", route)):
        _check_tensor(name, t, optional=True)

    if u.dim() != 3:
        raise ValueError(f"u: expected shape (batch, KD, L), got {_shape(u)}")
    if u.dtype not in INPUT_DTYPES:
        raise TypeError(f"u: expected dtype in {[str(d) for d in INPUT_DTYPES]}, got {u.dtype}")
    batch, u_channels, length = u.shape
    if length < 1 or u_channels < 1:
        raise ValueError(f"u: expected KD >= 1 and L >= 1, got shape {_shape(u)}")
    _check_same_device("u", u, A)
    routes = _route_rows(route, A)

    _check_same_device("delta", delta, A)
    if delta.dtype != u.dtype:
        raise TypeError(f"delta: expected dtype {u.dtype} (same as u), got {delta.dtype}")
    shared = (batch, routes * u_channels, length)
    if _shape(delta) != _shape(u) and not (routes > 1 and _shares_u(_shape(delta), _shape(u), routes)):
        shared_option = (f" or {shared} (u of KD/K channels, shared by the K = {routes} routes; or of KD/S "
                         f"channels, S dividing K)" if routes > 1 else "")
        raise ValueError(f"delta: expected shape {_shape(u)} (same as u){shared_option}, got {_shape(delta)}")
    channels = delta.shape[1]
    if z is not None:
        _check_same_device("z", z, A)
        if z.shape != delta.shape:
            raise ValueError(f"z: expected shape {_shape(delta)} (same as delta), got {_shape(z)}")
        if z.dtype != u.dtype:
            raise TypeError(f"z: expected dtype {u.dtype} (same as u), got {z.dtype}")

    param_dtypes = _param_dtypes(u)
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(
            f"A: expected shape (KD, N) = ({channels}, N) for delta of shape {_shape(delta)}, got {_shape(A)}"
        )
    if A.dtype not in param_dtypes:
        raise TypeError(f"A: expected dtype in {[str(d) for d in param_dtypes]} for u of {u.dtype}, got {A.dtype}")
    state = A.shape[1]
    if not 1 <= state <= MAX_STATE:
        raise ValueError(f"A: expected 1 <= N <= {MAX_STATE}, got shape {_shape(A)}")

    if B.dim() not in (3, 4):
        raise ValueError(f"B: expected shape (batch, G, N, L) or (batch, N, L), got {_shape(B)}")
    groups = B.shape[1] if B.dim() == 4 else 1
    expected_b = (batch, groups, state, length) if B.dim() == 4 else (batch, state, length)
    for name, t in (("B", B), ("C", C)):
        _check_same_device(name, t, A)
        if _shape(t) != expected_b:
            raise ValueError(
                f"{name}: expected shape {expected_b} (batch, [G,] N, L) for u of shape {_shape(u)} and A of shape "
                f"{_shape(A)}, got {_shape(t)}"
            )
        if t.dtype != u.dtype:
            raise TypeError(f"{name}: expected dtype {u.dtype} (same as u), got {t.dtype}")
    if groups < 1 or channels % groups:
        raise ValueError(f"B: expected G dividing KD = {channels}, got G = {groups} (B shape {_shape(B)})")

    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is None:
            continue
        _check_same_device(name, t, A)
        if _shape(t) != (channels,):
            raise ValueError(f"{name}: expected shape ({channels},) (KD of delta {_shape(delta)}), got {_shape(t)}")
        if t.dtype not in param_dtypes:
            raise TypeError(f"{name}: expected dtype in {[str(d) for d in param_dtypes]}, got {t.dtype}")

    steps = length
    if route is not None:
        steps = route.shape[1]
        if channels % routes:
            raise ValueError(f"route: expected K dividing KD = {channels} (delta {_shape(delta)}), got shape "
                             f"{_shape(route)}")
        if steps < length:
            raise ValueError(
                f"route: expected L' >= L = {length} (every token visited once), got shape {_shape(route)}"
            )
    return ScanShape(batch, channels, length, state, groups, routes, steps, u_channels)


def check_fold(fold: object, shape: ScanShape, routed: bool) -> None:
    """`fold` = F sums channel d's output into y[:, d % (KD/F)]: a positive int dividing K with a route of K rows
    (routes fold onto routes, each route's channel block whole), dividing KD without one."""
    if isinstance(fold, bool) or not isinstance(fold, int):
        raise TypeError(f"fold: expected an int, got {type(fold).__name__}")
    divides, what = ((shape.routes, f"the number of routes K = {shape.routes}") if routed
                     else (shape.channels, f"KD = {shape.channels} (no route)"))
    if fold < 1 or divides % fold:
        raise ValueError(f"fold: expected a positive int dividing {what}, got {fold}")


def _route_rows(route: torch.Tensor | None, A: torch.Tensor) -> int:
    """K, the number of routes (1 without a route), after checking the route's device, dtype and rank."""
    if route is None:
        return 1
    _check_same_device("route", route, A)
    if route.dtype not in ROUTE_DTYPES:
        raise TypeError(f"route: expected dtype int32 or int64, got {route.dtype}")
    if route.dim() != 2 or route.shape[0] < 1:
        raise ValueError(f"route: expected shape (K, L'), got {_shape(route)}")
    return route.shape[0]


# Routes are built once and reused every layer; checking their values costs a host sync on GPU, so remember
# which tensors (at which in-place version) already passed.
_checked_routes = WeakIdKeyDictionary()


def check_route_values(route: torch.Tensor, length: int) -> None:
    """Each row of `route` must be a permutation of 0..length-1 with -1 (padding) anywhere in between."""
    key = (route._version, length)
    if _checked_routes.get(route) == key:
        return
    if bool(((route < -1) | (route >= length)).any()):
        bad = route[(route < -1) | (route >= length)][0].item()
        raise ValueError(f"route: expected entries in [-1, {length}) for L = {length}, got {bad}")
    valid = route >= 0
    counts = valid.sum(dim=1)
    if bool((counts != length).any()):
        k = int((counts != length).nonzero()[0, 0])
        raise ValueError(
            f"route: row {k} visits {int(counts[k])} tokens, expected each of the L = {length} tokens exactly once"
        )
    sorted_rows = torch.where(valid, route, torch.full_like(route, length)).sort(dim=1).values[:, :length]
    expected = torch.arange(length, device=route.device, dtype=route.dtype).expand_as(sorted_rows)
    if not torch.equal(sorted_rows, expected):
        k = int((sorted_rows != expected).any(dim=1).nonzero()[0, 0])
        raise ValueError(f"route: row {k} is not a permutation of 0..{length - 1} (apart from -1 padding)")
    _checked_routes[route] = key

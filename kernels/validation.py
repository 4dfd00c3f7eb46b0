"""Argument checks for `selective_scan`: bad input raises ValueError/TypeError naming the tensor and both shapes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.weak import WeakIdKeyDictionary

INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
ROUTE_DTYPES = (torch.int32, torch.int64)
MAX_STATE = 256  # the CUDA op's limit on N, mirrored so models stay portable


@dataclass(frozen=True)
class ScanShape:
    """Sizes of one call. `length` is the number of tokens L, `steps` the scanned length (L, or L' with a route)."""

    batch: int
    channels: int  # KD
    length: int
    state: int  # N
    groups: int  # G, number of B/C groups
    routes: int  # K, number of routes (1 without a route)
    steps: int


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_tensor(name: str, t: object, optional: bool = False) -> None:
    if t is None and optional:
        return
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")


def _check_same_device(name: str, t: torch.Tensor, u: torch.Tensor) -> None:
    if t.device != u.device:
        raise ValueError(f"{name}: expected device {u.device} (same as u), got {t.device}")


def _param_dtypes(u: torch.Tensor) -> tuple[torch.dtype, ...]:
    return (torch.float32, torch.float64) if u.dtype == torch.float64 else (torch.float32,)


def check_inputs(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    route: torch.Tensor | None,
) -> ScanShape:
    """Validate shapes, dtypes and devices; returns the sizes. Route values are checked by `check_route_values`."""
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        _check_tensor(name, t)
    for name, t in (("D", D), ("z", z), ("delta_bias", delta_bias), ("route", route)):
        _check_tensor(name, t, optional=True)

    if u.dim() != 3:
        raise ValueError(f"u: expected shape (batch, KD, L), got {_shape(u)}")
    if u.dtype not in INPUT_DTYPES:
        raise TypeError(f"u: expected dtype in {[str(d) for d in INPUT_DTYPES]}, got {u.dtype}")
    batch, channels, length = u.shape
    if length < 1 or channels < 1:
        raise ValueError(f"u: expected KD >= 1 and L >= 1, got shape {_shape(u)}")

    for name, t in (("delta", delta), ("z", z)):
        if t is None:
            continue
        _check_same_device(name, t, u)
        if t.shape != u.shape:
            raise ValueError(f"{name}: expected shape {_shape(u)} (same as u), got {_shape(t)}")
        if t.dtype != u.dtype:
            raise TypeError(f"{name}: expected dtype {u.dtype} (same as u), got {t.dtype}")

    param_dtypes = _param_dtypes(u)
    _check_same_device("A", A, u)
    if A.dim() != 2 or A.shape[0] != channels:
        raise ValueError(f"A: expected shape (KD, N) = ({channels}, N) for u of shape {_shape(u)}, got {_shape(A)}")
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
        _check_same_device(name, t, u)
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
        _check_same_device(name, t, u)
        if _shape(t) != (channels,):
            raise ValueError(f"{name}: expected shape ({channels},) (KD of u {_shape(u)}), got {_shape(t)}")
        if t.dtype not in param_dtypes:
            raise TypeError(f"{name}: expected dtype in {[str(d) for d in param_dtypes]}, got {t.dtype}")

    routes, steps = 1, length
    if route is not None:
        _check_same_device("route", route, u)
        if route.dtype not in ROUTE_DTYPES:
            raise TypeError(f"route: expected dtype int32 or int64, got {route.dtype}")
        if route.dim() != 2:
            raise ValueError(f"route: expected shape (K, L'), got {_shape(route)}")
        routes, steps = route.shape
        if routes < 1 or channels % routes:
            raise ValueError(f"route: expected K dividing KD = {channels} (u {_shape(u)}), got shape {_shape(route)}")
        if steps < length:
            raise ValueError(
                f"route: expected L' >= L = {length} (every token visited once), got shape {_shape(route)}"
            )
    return ScanShape(batch, channels, length, state, groups, routes, steps)


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

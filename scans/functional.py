"""Gather and scatter along routes: the two tensor operations every scan order is made of.

A route table `route: (K, L')` lists, for each of K routes, the token read at every step (an index into the
sequence axis of length L), or `PAD` (-1) for a zero padding step. These functions work on any token sequence:
`ScanOrder.scan` / `merge` route a bare grid with them, `SequenceRoutes` (scans/tokens.py) a model's token sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PAD = -1


def sink_index(route: Tensor, length: int) -> Tensor:
    """Route with every `PAD` replaced by `length`, the index of an extra all-zero slot after the sequence."""
    return torch.where(route < 0, torch.full_like(route, length), route)


def gather_routes(x: Tensor, index: Tensor, padded: bool) -> Tensor:
    """x: (B, C, L), index: (K, L') with pads already mapped to L  ->  (B, K, C, L'); pad steps read 0."""
    batch, channels, length = x.shape
    num_routes, route_length = index.shape
    if padded:
        x = F.pad(x, (0, 1))
        length += 1
    # One gather with a broadcast (stride-0) index: measured as fast as hand-written flatten/transpose/flip copies
    # for the cross order on (8, 192, 56, 56), and it writes the (B, K, C, L') layout directly.
    source = x.unsqueeze(1).expand(batch, num_routes, channels, length)
    return source.gather(3, index.view(1, num_routes, 1, route_length).expand(batch, -1, channels, -1))


def scatter_routes(ys: Tensor, index: Tensor, length: int, padded: bool, sum_routes: bool = True) -> Tensor:
    """Adjoint of `gather_routes`. ys: (B, K, C, L'), index: (K, L') with pads mapped to `length`.

    Returns (B, C, L) (summed over routes) or, with `sum_routes=False`, (B, K, C, L) with each route's own inverse
    (zeros at tokens a route does not visit). Pad steps are dropped.
    """
    batch, num_routes, channels, _ = ys.shape
    slots = length + 1 if padded else length
    if sum_routes:
        out = ys.new_zeros(batch, channels, slots)
        for k in range(num_routes):
            # index_add_ along the token axis: 1.8x faster than a gather through the inverse map + sum on CPU.
            out.index_add_(2, index[k], ys[:, k])
    else:
        out = ys.new_zeros(batch, num_routes, channels, slots)
        for k in range(num_routes):
            out[:, k].index_add_(2, index[k], ys[:, k])
    return out[..., :length].contiguous() if padded else out


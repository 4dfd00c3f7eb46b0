"""The tensors of one scan as the code below the public entry passes them (`ScanTensors`), and their sizes
(`ScanShape`).

Both are named tuples: a `ScanTensors` unpacks into the custom op's plain-tensor arguments and into
`save_for_backward`, and both are built on every call, where a named tuple costs about a third of a frozen
dataclass (0.4 against 1.3 µs for eight fields, Python 3.11).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class ScanShape(NamedTuple):
    """Sizes of one call. `length` is the number of tokens L, `steps` the scanned length (L, or L' with a route).

    `u_channels` is KD, or KD / S with S dividing K when the routes share u ("shared u": channel d reads
    u[:, d % u_channels]; S = K: every route reads the same u, route k's channel j reads u[:, j]).
    """

    batch: int
    channels: int  # KD, the channels of delta (and z, A, D, delta_bias, y)
    length: int
    state: int  # N
    groups: int  # G, number of B/C groups
    routes: int  # K, number of routes (1 without a route)
    steps: int
    u_channels: int

    @property
    def shared_u(self) -> bool:
        return self.u_channels != self.channels


class ScanTensors(NamedTuple):
    """The tensors of one scan, in the custom op's order; an absent optional input is None.

    u: (batch, KD, L), or (batch, KD/S, L) shared by the routes (S dividing K); delta, z: (batch, KD, L); A: (KD, N);
    B, C: (batch, G, N, L) (the public entry also takes (batch, N, L)); D, delta_bias: (KD,); route: (K, L') int,
    -1 at padding steps. Gradients come in the same order, without the route's.
    """

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None = None
    z: torch.Tensor | None = None
    delta_bias: torch.Tensor | None = None
    route: torch.Tensor | None = None

    def sizes(self) -> ScanShape:
        """The sizes read off the tensors (B, C as (batch, G, N, L)), unchecked: `kernels.validation.check_inputs`
        checks them at the public entry."""
        batch, channels, length = self.delta.shape  # delta, not u: a shared u has KD / K channels
        routes, steps = (1, length) if self.route is None else self.route.shape
        return ScanShape(batch, channels, length, self.A.shape[1], self.B.shape[1], routes, steps, self.u.shape[1])

    def contiguous(self) -> ScanTensors:
        return ScanTensors(*(None if t is None else t.contiguous() for t in self))

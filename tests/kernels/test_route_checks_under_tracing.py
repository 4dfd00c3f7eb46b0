"""Route value checks: a bad route gets its ValueError in eager calls; traced calls (torch.compile, torch.export)
skip the value check, whose reads of the route's values would be data-dependent guards, and keep the op whole."""

from __future__ import annotations

import pytest
import torch

from vssm.kernels import selective_scan
from vssm.kernels.testing import random_route, random_scan_inputs


def _scan(inputs, route: torch.Tensor) -> torch.Tensor:
    return selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, D=inputs.D, z=inputs.z,
                          delta_bias=inputs.delta_bias, delta_softplus=True, route=route)


def test_bad_route_still_raises_in_eager_mode() -> None:
    route = random_route(2, 12, pad=3)
    inputs = random_scan_inputs(2, 8, 12, 4, 2, route=route)
    route[1, route[1] >= 0] = route[1, route[1] >= 0][0]  # row 1 now visits one token twelve times
    with pytest.raises(ValueError, match="route: row 1"):
        _scan(inputs, route)


def test_routed_scan_compiles_whole() -> None:
    route = random_route(2, 12, pad=3)
    inputs = random_scan_inputs(2, 8, 12, 4, 2, route=route)
    compiled = torch.compile(lambda r: _scan(inputs, r), backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(route), _scan(inputs, route))

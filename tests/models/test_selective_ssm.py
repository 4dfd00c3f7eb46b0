"""`vssm.layers.selective_ssm`: Mamba's initialisation shared by SS2D (K routes stacked) and SSMCore (one route)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vssm.layers.selective_ssm import DtInit, init_ssm_parameters


@pytest.mark.parametrize("dt_init", list(DtInit), ids=lambda d: d.value)
@pytest.mark.parametrize("routes", [None, 3], ids=["one_route", "stacked"])
def test_init_follows_mamba(dt_init: DtInit, routes: int | None) -> None:
    inner, rank, state = 200, 5, 6
    lead = () if routes is None else (routes,)
    weight, bias = torch.randn(*lead, inner, rank), torch.randn(*lead, inner)
    a_log, d = torch.randn(*lead, inner, state), torch.randn(*lead, inner)
    init_ssm_parameters(weight, bias, a_log, d, dt_min=0.01, dt_max=0.2, dt_init_floor=0.02, dt_scale=2.0,
                        dt_init=dt_init)

    bound = 2.0 / math.sqrt(rank)  # dt_scale / sqrt(R)
    if dt_init is DtInit.CONSTANT:
        assert torch.equal(weight, torch.full_like(weight, bound))
    else:  # U(±bound): std bound / sqrt(3) = 0.58 bound
        assert float(weight.abs().max()) <= bound and float(weight.std()) > 0.4 * bound
    dt = F.softplus(bias)  # the time steps the bias starts at: log-uniform in [0.01, 0.2], raised to the floor 0.02
    assert float(dt.min()) >= 0.02 - 1e-6 and float(dt.max()) <= 0.2 + 1e-6
    assert bool(((dt - 0.02).abs() < 1e-6).any())  # P(dt < floor) = log 2 / log 20 = 0.23 per channel
    assert float(dt.max()) > 0.1
    if routes is not None:
        assert not torch.equal(bias[0], bias[1])  # every route draws its own
    torch.testing.assert_close(a_log, torch.log(torch.arange(1.0, state + 1)).expand_as(a_log), rtol=0, atol=0)
    assert torch.equal(d, torch.ones_like(d))

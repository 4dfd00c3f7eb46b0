"""`vssm.layers.selective_ssm`: Mamba's initialisation shared by SS2D (K routes stacked) and SSMCore (one route)."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from vssm.layers import selective_ssm as selective_ssm_module
from vssm.layers.selective_ssm import DtInit, SSMWeights, init_ssm_parameters, selective_ssm


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


class _ActivationCopies(TorchDispatchMode):
    """Counts the copies (casts, clones, copy_) of (batch, ..., length) tensors: the scan's activations, not the
    parameters (nor the weights the batched matmuls expand to the batch)."""

    def __init__(self, batch: int, length: int) -> None:
        super().__init__()
        self.batch, self.length, self.count = batch, length, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        copy = func._overloadpacket in (torch.ops.aten._to_copy, torch.ops.aten.clone, torch.ops.aten.copy_)
        if copy and out.dim() and out.shape[0] == self.batch and out.shape[-1] == self.length:
            self.count += 1
        return out


def test_scan_inputs_enter_the_scan_cast_and_contiguous_in_one_copy_each(monkeypatch: pytest.MonkeyPatch) -> None:
    batch, routes, inner, state, rank, length = 5, 2, 6, 3, 2, random.randint(7, 11)
    weights = SSMWeights(torch.randn(routes, rank + 2 * state, inner), torch.randn(routes, inner, rank),
                         torch.randn(routes * inner), torch.randn(routes * inner, state), torch.randn(routes * inner))
    # (B, K, E, L) views of (B, K, L, E) maps, as a channel-last model hands them over
    u = torch.randn(batch, routes, length, inner).transpose(2, 3)
    z = torch.randn(batch, routes, length, inner).transpose(2, 3)
    seen = {}

    def scan(u, delta, A, B, C, D, z=None, **kwargs):
        seen.update(u=u, delta=delta, B=B, C=C, z=z)
        return torch.zeros_like(u)

    monkeypatch.setattr(selective_ssm_module.kernels, "selective_scan", scan)
    with _ActivationCopies(batch, length) as copies:
        selective_ssm(u, weights, torch.float64, z=z)
    # u, delta, B, C, z: one copy each (the cast writes the layout the scan reads), not a copy and then a cast
    assert copies.count == 5
    assert all(t.is_contiguous() and t.dtype == torch.float64 for t in seen.values())
    x_dbl = torch.matmul(weights.x_proj, u)
    assert torch.equal(seen["u"], u.reshape(batch, routes * inner, length).double())
    assert torch.equal(seen["z"], z.reshape(batch, routes * inner, length).double())
    assert torch.equal(seen["B"], x_dbl[:, :, rank:rank + state].double())
    assert torch.equal(seen["C"], x_dbl[:, :, rank + state:].double())

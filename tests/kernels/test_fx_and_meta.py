"""The op under torch.fx symbolic tracing (one leaf node, run on real tensors) and on the meta device (its fake
kernel, whatever backend is requested)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vssm import kernels
from vssm.kernels.testing import random_route, random_scan_inputs


class _ScanModule(nn.Module):
    """Calls the op through the package attribute, as the model layers do."""

    def __init__(self, route: torch.Tensor | None) -> None:
        super().__init__()
        self.route = route

    def forward(self, u, delta, A, B, C, D, z, delta_bias):
        return kernels.selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True, route=self.route)


@pytest.mark.parametrize("routed", [False, True])
def test_symbolic_tracing_records_the_op_as_one_leaf(routed: bool) -> None:
    route = random_route(2, 12, pad=3) if routed else None
    inputs = random_scan_inputs(2, 8, 12, 4, route=route)
    module = _ScanModule(route)
    traced = torch.fx.symbolic_trace(module)
    calls = [n for n in traced.graph.nodes if n.op == "call_function"]
    assert [n.target for n in calls] == [kernels.selective_scan]
    args = (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias)
    torch.testing.assert_close(traced(*args), module(*args), rtol=0, atol=0)


@pytest.mark.parametrize("backend", list(kernels.Backend))
@pytest.mark.parametrize("routed", [False, True])
def test_meta_tensors_get_the_fake_kernel_whatever_backend(backend: kernels.Backend, routed: bool) -> None:
    route = random_route(2, 12, pad=3).to("meta") if routed else None
    inputs = random_scan_inputs(2, 8, 12, 4, route=route, device="meta")
    with kernels.use_backend(backend):
        y, last_state = kernels.selective_scan(
            inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias,
            delta_softplus=True, return_last_state=True, route=route,
        )
    assert y.device.type == "meta" and y.shape == (2, 8, 12) and y.dtype == torch.float32
    assert last_state.device.type == "meta" and last_state.shape == (2, 8, 4)

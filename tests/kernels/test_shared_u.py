"""Shared u: with a route of K rows, u may have KD/K channels that every route reads (SS2D's routed path).

Each CPU-runnable backend against itself fed the K-fold copy (bitwise, du summed over the routes) and against the
float64 reference (three-way rule); the reference's own definition (expand, then scan); argument checks; the custom
op's fake kernel and FLOP counts (opcheck and torch.compile with a shared u: test_op.py). The Triton backend's checks
are in test_triton.py.
"""

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vssm import kernels
from vssm.kernels.backends import Backend
from vssm.kernels.op import fvcore_handles
from vssm.kernels.reference import expand_shared_u
from vssm.kernels.scan_tensors import ScanTensors
from vssm.kernels.testing import (
    GRAD_NAMES,
    assert_matches_reference,
    assert_shared_u_matches_expanded,
    cpu_backends,
    random_route,
    random_scan_inputs,
)
from vssm.kernels.validation import check_inputs

CPU_BACKENDS = cpu_backends()

CASES = {
    # name: (K, G, E, L, pad, N, has_D, has_z, has_delta_bias, softplus); the cpu backend's blocks are 16 channels
    "cross_groups_eq_k": (4, 4, 24, 49, 0, 4, True, False, True, True),
    "padded_groups_1_z": (4, 1, 24, 49, 7, 4, True, True, True, True),
    "groups_finer_than_routes": (2, 4, 24, 40, 3, 8, False, True, False, True),
    "no_flags": (2, 2, 8, 30, 2, 4, False, False, False, False),
    "two_cpu_chunks": (2, 2, 20, 150, 10, 16, True, True, True, True),
}


def shared_inputs(case: str, dtype: torch.dtype = torch.float32, u_copies: int | None = None):
    """The case's inputs with u shared by every route, or by `u_copies` = S of them (u of KD/S channels)."""
    routes, groups, inner, length, pad, state, has_D, has_z, has_bias, softplus = CASES[case]
    gen = torch.Generator().manual_seed(list(CASES).index(case))
    route = random_route(routes, length, pad, gen)
    return random_scan_inputs(2, routes * inner, length, state, groups, dtype=dtype, has_D=has_D, has_z=has_z,
                              has_delta_bias=has_bias, delta_softplus=softplus, route=route, shared_u=True,
                              u_copies=u_copies, generator=gen)


# u of KD/S channels shared S < K at a time (SS2D's cross routes in two base layouts: S = 2 of K = 4)
PARTLY_SHARED = [("cross_groups_eq_k", 2), ("padded_groups_1_z", 2)]


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("case", list(CASES))
def test_shared_u_equals_expanded_copy(backend: Backend, case: str) -> None:
    assert_shared_u_matches_expanded(backend, shared_inputs(case))


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("case", list(CASES))
def test_shared_u_matches_float64_reference(backend: Backend, case: str) -> None:
    assert_matches_reference(backend, shared_inputs(case), torch.float32)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize(("case", "u_copies"), PARTLY_SHARED)
def test_partly_shared_u_equals_expanded_copy(backend: Backend, case: str, u_copies: int) -> None:
    inputs = shared_inputs(case, u_copies=u_copies)
    assert inputs.u.shape[1] == inputs.delta.shape[1] // u_copies
    assert_shared_u_matches_expanded(backend, inputs)
    assert_matches_reference(backend, inputs, torch.float32)


def test_partly_shared_u_reads_block_k_mod_k_over_s() -> None:
    inputs = shared_inputs("cross_groups_eq_k", torch.float64, u_copies=2)  # K = 4, E = 24: u = [u0; u1]
    copied = expand_shared_u(inputs.u, 2)
    blocks = copied.view(2, 4, 24, 49)
    for k in range(4):
        assert torch.equal(blocks[:, k], inputs.u.view(2, 2, 24, 49)[:, k % 2])
    with kernels.use_backend(Backend.REFERENCE):
        shared = kernels.selective_scan(*inputs.tensors()[:5], inputs.D, inputs.z, inputs.delta_bias,
                                        delta_softplus=True, route=inputs.route)
        full = kernels.selective_scan(copied, *inputs.tensors()[1:5], inputs.D, inputs.z, inputs.delta_bias,
                                      delta_softplus=True, route=inputs.route)
    assert torch.equal(shared, full)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_shared_u_low_precision_matches_float64_reference(backend: Backend, dtype: torch.dtype) -> None:
    assert_matches_reference(backend, shared_inputs("padded_groups_1_z"), dtype, out_float32=dtype == torch.bfloat16)


def test_reference_defines_shared_u_as_the_expanded_copy() -> None:
    inputs = shared_inputs("padded_groups_1_z", torch.float64)
    copied = dataclasses.replace(inputs, u=expand_shared_u(inputs.u, inputs.route.shape[0]))
    args = dict(delta_softplus=True, route=inputs.route, return_last_state=True)
    with kernels.use_backend(Backend.REFERENCE):
        shared = kernels.selective_scan(*inputs.tensors()[:5], inputs.D, inputs.z, inputs.delta_bias, **args)
        full = kernels.selective_scan(*copied.tensors()[:5], copied.D, copied.z, copied.delta_bias, **args)
    for a, b in zip(shared, full, strict=True):
        assert torch.equal(a, b)
    # route k's channel j reads u[:, j]: channel j of every route block sees the same u
    assert torch.equal(copied.u.view(2, 4, 24, 49), inputs.u[:, None].expand(2, 4, 24, 49))


def test_shared_u_gradcheck_float64() -> None:
    gen = torch.Generator().manual_seed(5)
    route = random_route(2, 6, 2, gen)
    inputs = random_scan_inputs(1, 4, 6, 2, 2, dtype=torch.float64, route=route, shared_u=True,
                                generator=gen).requires_grad_()

    def f(*tensors: torch.Tensor) -> torch.Tensor:
        return kernels.selective_scan(**dict(zip(GRAD_NAMES, tensors, strict=True)), delta_softplus=True, route=route)

    assert inputs.u.shape == (1, 2, 6)
    assert torch.autograd.gradcheck(f, tuple(inputs.tensors()))


def test_check_inputs_records_the_mode() -> None:
    inputs = shared_inputs("cross_groups_eq_k")
    shape = check_inputs(ScanTensors(*inputs.tensors(), inputs.route))
    assert (shape.channels, shape.u_channels, shape.routes, shape.shared_u) == (96, 24, 4, True)
    copied = expand_shared_u(inputs.u, 4)
    shape = check_inputs(ScanTensors(copied, *inputs.tensors()[1:], inputs.route))
    assert (shape.channels, shape.u_channels, shape.shared_u) == (96, 96, False)


def _call(u: torch.Tensor, delta: torch.Tensor, route: torch.Tensor | None, z: torch.Tensor | None = None):
    kd, length = delta.shape[1], delta.shape[2]
    b = torch.randn(2, 2, 3, length)
    return kernels.selective_scan(u, delta, -torch.rand(kd, 3) - 0.5, b, b, z=z, delta_softplus=True, route=route)


@pytest.mark.parametrize(
    ("u_channels", "route_rows", "pattern"),
    [
        # a channel count that is neither KD nor KD/K: the message names u and delta, both shapes and the option
        (3, 2, r"delta: expected shape \(2, 3, 10\) \(same as u\) or \(2, 6, 10\) \(u of KD/K channels, shared by "
               r"the K = 2 routes; or of KD/S channels, S dividing K\), got \(2, 8, 10\)"),
        (2, 2, r"delta: expected shape \(2, 2, 10\) \(same as u\) or \(2, 4, 10\) .*S dividing K\), got \(2, 8, 10\)"),
        # KD / u's channels = 8 (S) does not divide K = 2
        (1, 2, r"delta: expected shape \(2, 1, 10\) \(same as u\) or \(2, 2, 10\) .*S dividing K\), got \(2, 8, 10\)"),
        # without a route, or with one route, u must have delta's shape and KD/K is not offered
        (4, None, r"^delta: expected shape \(2, 4, 10\) \(same as u\), got \(2, 8, 10\)$"),
        (4, 1, r"^delta: expected shape \(2, 4, 10\) \(same as u\), got \(2, 8, 10\)$"),
    ],
)
def test_bad_u_channels(u_channels: int, route_rows: int | None, pattern: str) -> None:
    route = None if route_rows is None else torch.arange(10).repeat(route_rows, 1)
    with pytest.raises(ValueError, match=pattern):
        _call(torch.randn(2, u_channels, 10), torch.randn(2, 8, 10), route)


def test_shared_u_with_wrong_length_or_batch_names_both_shapes() -> None:
    route = torch.arange(10).repeat(2, 1)
    with pytest.raises(ValueError, match=r"delta: expected shape \(2, 4, 9\).* or \(2, 8, 9\).*got \(2, 8, 10\)"):
        _call(torch.randn(2, 4, 9), torch.randn(2, 8, 10), route)
    with pytest.raises(ValueError, match=r"delta: expected shape \(3, 4, 10\).* or \(3, 8, 10\).*got \(2, 8, 10\)"):
        _call(torch.randn(3, 4, 10), torch.randn(2, 8, 10), route)


def test_z_keeps_delta_shape_with_shared_u() -> None:
    route = torch.arange(10).repeat(2, 1)
    with pytest.raises(ValueError, match=r"z: expected shape \(2, 8, 10\) \(same as delta\), got \(2, 4, 10\)"):
        _call(torch.randn(2, 4, 10), torch.randn(2, 8, 10), route, z=torch.randn(2, 4, 10))
    assert _call(torch.randn(2, 4, 10), torch.randn(2, 8, 10), route, z=torch.randn(2, 8, 10)).shape == (2, 8, 10)


def _op_args(inputs, backend: Backend) -> tuple:
    return (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias,
            inputs.route, inputs.delta_softplus, False, backend.value)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_fake_kernel_shapes_with_shared_u(backend: Backend) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    inputs = random_scan_inputs(2, 8, 30, 4, 2, route=random_route(2, 30, 3), shared_u=True, dtype=torch.bfloat16)
    real = torch.ops.vssm.selective_scan(*_op_args(inputs, backend))
    with FakeTensorMode() as mode:
        fake = torch.ops.vssm.selective_scan(*[mode.from_tensor(a) if isinstance(a, torch.Tensor) else a
                                               for a in _op_args(inputs, backend)])
    for r, f in zip(real, fake, strict=True):
        assert (r.shape, r.stride(), r.dtype) == (f.shape, f.stride(), f.dtype)
    assert real[0].shape == (2, 8, 30)


def test_flop_counter_counts_delta_channels() -> None:
    """KD is delta's channel count: a shared u costs the same FLOPs as the copy it replaces."""
    route = random_route(4, 10, 2)
    inputs = random_scan_inputs(2, 16, 10, 4, 4, route=route, shared_u=True).requires_grad_()
    copied = expand_shared_u(inputs.u.detach(), 4)
    counts = []
    for u in (inputs.u, copied):
        with FlopCounterMode(display=False) as counter:
            y = kernels.selective_scan(u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, route=route)
            y.sum().backward()
        counts.append(counter.get_flop_counts()["Global"])
    expected = 9 * 2 * 12 * 16 * 4 + 2 * 16 * 10
    for count in counts:
        assert count[torch.ops.vssm.selective_scan] == expected
        assert count[torch.ops.vssm.selective_scan_backward] == 2 * expected


def test_fvcore_handle_counts_delta_channels() -> None:
    from fvcore.nn import FlopCountAnalysis

    batch, routes, inner, length, state = 2, 2, 4, 9, 3
    route = torch.stack([torch.arange(length), torch.arange(length).flip(0)])

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.A = torch.nn.Parameter(-torch.rand(routes * inner, state) - 0.5)

        def forward(self, u: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
            delta = torch.cat([u.sigmoid()] * routes, dim=1)
            return kernels.selective_scan(u, delta, self.A, B, B, route=route)

    u, B = torch.randn(batch, inner, length), torch.randn(batch, state, length)
    analysis = FlopCountAnalysis(Block(), (u, B)).set_op_handle(**fvcore_handles())
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert analysis.by_operator()["selective_scan"] == 9 * batch * length * routes * inner * state

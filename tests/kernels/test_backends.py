"""Every CPU-runnable backend against the float64 reference with the three-way rule (outputs and all gradients).

The Triton backend runs the same checks under TRITON_INTERPRET=1 in test_triton.py.
"""

import pytest
import torch

from vssm import kernels
from vssm.kernels import cpu
from vssm.kernels.backends import Backend
from vssm.kernels.testing import (
    assert_matches_reference,
    cpu_backends,
    random_route,
    random_scan_inputs,
    run_with_grads,
)

CPU_BACKENDS = cpu_backends()


CASES = {
    # name: (batch, KD, L, N, G, has_D, has_z, has_delta_bias, softplus)
    "vim_like": (2, 16, 100, 16, 1, True, True, True, True),
    "groups_eq_k": (2, 16, 64, 4, 4, True, False, True, True),
    "groups_2": (1, 12, 33, 8, 2, False, True, False, True),
    "no_flags": (2, 8, 64, 4, 1, False, False, False, False),
    "state_1": (2, 32, 196, 1, 4, True, False, True, True),
    "length_1": (2, 8, 1, 4, 2, True, True, True, True),
    "length_7_odd_channels": (2, 6, 7, 3, 3, True, True, True, True),
    "chunks_not_multiple": (1, 20, 300, 16, 2, True, True, True, True),  # cpu chunk 128: 3 chunks, last partial
}


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("case", list(CASES))
def test_fp32_matches_float64_reference(backend: Backend, case: str) -> None:
    batch, kd, length, state, groups, has_D, has_z, has_bias, softplus = CASES[case]
    inputs = random_scan_inputs(batch, kd, length, state, groups, has_D=has_D, has_z=has_z, has_delta_bias=has_bias,
                                delta_softplus=softplus)
    assert_matches_reference(backend, inputs, torch.float32)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("out_float32", [False, True])
def test_low_precision_matches_float64_reference(backend: Backend, dtype: torch.dtype, out_float32: bool) -> None:
    inputs = random_scan_inputs(2, 16, 64, 8, 2)
    assert_matches_reference(backend, inputs, dtype, out_float32=out_float32)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize(("routes", "groups", "pad"), [(2, 2, 3), (4, 4, 0), (4, 1, 5), (2, 4, 2)])
def test_routes_match_float64_reference(backend: Backend, routes: int, groups: int, pad: int) -> None:
    gen = torch.Generator().manual_seed(routes * 31 + groups * 7 + pad)
    route = random_route(routes, 49, pad, gen)
    inputs = random_scan_inputs(2, 16, 49, 4, groups, route=route, generator=gen)
    assert_matches_reference(backend, inputs, torch.float32)


def test_cpu_squeezed_B_C_gradients_keep_their_shape() -> None:
    inputs = random_scan_inputs(2, 8, 20, 4, 1, squeeze_groups=True)
    assert_matches_reference(Backend.CPU, inputs, torch.float32)


@pytest.mark.skipif(Backend.CPU not in CPU_BACKENDS, reason="no C compiler")
def test_cpu_backward_is_deterministic_across_thread_counts() -> None:
    inputs = random_scan_inputs(2, 64, 150, 16, 1)
    grad = torch.randn(inputs.u.shape)
    threads = torch.get_num_threads()
    with kernels.use_backend(Backend.CPU):
        first = run_with_grads(kernels.selective_scan, inputs, grad)
        torch.set_num_threads(1)
        try:
            second = run_with_grads(kernels.selective_scan, inputs, grad)
        finally:
            torch.set_num_threads(threads)
    for a, b in zip([first[0], *first[2]], [second[0], *second[2]], strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(Backend.CPU not in CPU_BACKENDS, reason="no C compiler")
def test_cpu_keeps_only_chunk_states_for_backward() -> None:
    """Bounded memory: the forward saves (batch, KD, ceil(L/T) - 1, N), never a (batch, KD, L, N) tensor."""
    inputs = random_scan_inputs(1, 16, 3000, 16, 1)
    _, _, saved = torch.ops.vssm.selective_scan(
        inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias, None, True,
        False, Backend.CPU.value,
    )
    assert saved.shape == (1, 16, 3000 // 128, 16)


def test_cpu_is_the_default_on_cpu_tensors() -> None:
    expected = Backend.CPU if Backend.CPU in CPU_BACKENDS else Backend.REFERENCE
    assert kernels.select_backend(torch.device("cpu"), torch.float32) is expected
    assert kernels.select_backend(torch.device("cpu"), torch.bfloat16) is expected


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_empty_batch(backend: Backend) -> None:
    inputs = random_scan_inputs(0, 8, 5, 4, 2).requires_grad_()
    with kernels.use_backend(backend):
        y = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                                   inputs.delta_bias, delta_softplus=True)
        y.sum().backward()
    assert y.shape == (0, 8, 5)
    assert torch.equal(inputs.A.grad, torch.zeros_like(inputs.A))


@pytest.mark.skipif(Backend.CPU not in CPU_BACKENDS or not cpu.uses_openmp(), reason="no C compiler with OpenMP")
def test_cpu_openmp_team_matches_the_thread_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = random_scan_inputs(2, 64, 150, 16, 2)
    grad = torch.randn(inputs.u.shape)
    with kernels.use_backend(Backend.CPU):
        team = run_with_grads(kernels.selective_scan, inputs, grad)
        monkeypatch.setattr(cpu, "uses_openmp", lambda: False)
        pool = run_with_grads(kernels.selective_scan, inputs, grad)
    for a, b in zip([team[0], *team[2]], [pool[0], *pool[2]], strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(Backend.CPU not in CPU_BACKENDS, reason="no C compiler")
def test_cpu_library_without_openmp_falls_back_to_the_thread_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    build = cpu._build

    def build_without_openmp(cc: str, version: str, openmp: bool):
        return "no OpenMP here" if openmp else build(cc, version, openmp)

    monkeypatch.setattr(cpu, "_build", build_without_openmp)
    cpu._library.cache_clear()
    try:
        assert cpu.unavailable_reason() is None and not cpu.uses_openmp()
        inputs = random_scan_inputs(2, 64, 150, 16, 2)
        assert_matches_reference(Backend.CPU, inputs, torch.float32)
    finally:
        monkeypatch.undo()
        cpu._library.cache_clear()

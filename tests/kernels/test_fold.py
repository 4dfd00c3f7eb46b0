"""`selective_scan(..., fold=F)`: channel d's output added into y[:, d % (KD/F)] in the scan's epilogue, on the
CPU-runnable backends against the float64 reference (three-way rule, outputs and every gradient); the op with a fold
(opcheck, FLOP count) and a bad fold. The Triton kernels' fold runs under the interpreter in test_triton.py and
test_triton_state1.py; ONNX export of a folded scan in test_onnx.py."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vssm import kernels
from vssm.kernels.backends import Backend
from vssm.kernels.op import scan_flops
from vssm.kernels.reference import fold_channels
from vssm.kernels.testing import (
    assert_eager_matches_custom_op,
    assert_matches_reference,
    assert_shared_u_matches_expanded,
    cpu_backends,
    random_route,
    random_scan_inputs,
)

CPU_BACKENDS = cpu_backends()

FOLD_CASES = {
    # name: (K, G, E, L, pad, N, u copies S (None: u of KD channels), fold F, has_z)
    "cross_shared_u_fold_k": (4, 4, 4, 13, 0, 1, 4, 4, False),
    "bases_partly_shared_fold_2": (4, 2, 4, 11, 3, 2, 2, 2, True),
    "own_u_fold_2_padded": (2, 1, 6, 9, 2, 3, None, 2, True),
    "bases_state_1_fold_2": (4, 2, 4, 11, 3, 1, 2, 2, True),
    "state_1_two_blocks_fold_2": (2, 1, 8, 13, 2, 1, None, 2, True),  # Triton N = 1: 2 blocks per backward program
}


def fold_inputs(case: str, dtype: torch.dtype = torch.float32):
    routes, groups, inner, length, pad, state, copies, fold, has_z = FOLD_CASES[case]
    gen = torch.Generator().manual_seed(list(FOLD_CASES).index(case) + 100)
    return random_scan_inputs(2, routes * inner, length, state, groups, has_z=has_z, dtype=dtype,
                              route=random_route(routes, length, pad, gen), u_copies=copies, fold=fold, generator=gen)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("case", list(FOLD_CASES))
def test_fold_matches_float64_reference(backend: Backend, case: str) -> None:
    inputs = fold_inputs(case)
    assert_matches_reference(backend, inputs, torch.float32)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("out_float32", [False, True])
def test_fold_bf16_matches_float64_reference(backend: Backend, out_float32: bool) -> None:
    assert_matches_reference(backend, fold_inputs("bases_partly_shared_fold_2"), torch.bfloat16,
                             out_float32=out_float32)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_fold_without_route_matches_float64_reference(backend: Backend) -> None:
    inputs = random_scan_inputs(2, 12, 20, 4, 2, fold=3)
    assert_matches_reference(backend, inputs, torch.float32)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.usefixtures("route_reading")
def test_fold_is_the_sum_of_the_unfolded_output(backend: Backend) -> None:
    """The definition: y with fold F is the unfolded y's F channel blocks summed (float32: one rounding either way
    up to the summation order), gradients included."""
    inputs = fold_inputs("bases_partly_shared_fold_2").requires_grad_()
    args = (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias, True)
    with kernels.use_backend(backend):
        folded = kernels.selective_scan(*args, route=inputs.route, fold=2)
        summed = fold_channels(kernels.selective_scan(*args, route=inputs.route), 2)
    grad = torch.randn_like(folded)
    tensors = [t for t in inputs.tensors() if t is not None]
    for a, b in zip(torch.autograd.grad(folded, tensors, grad), torch.autograd.grad(summed, tensors, grad),
                    strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(folded, summed, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_folded_shared_u_equals_expanded_copy(backend: Backend) -> None:
    assert_shared_u_matches_expanded(backend, fold_inputs("cross_shared_u_fold_k"))


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_fold_eager_function_matches_the_custom_op(backend: Backend) -> None:
    assert_eager_matches_custom_op(backend, fold_inputs("own_u_fold_2_padded"))


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_opcheck_with_fold(backend: Backend) -> None:
    inputs = fold_inputs("bases_partly_shared_fold_2").requires_grad_()
    args = (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias, inputs.route,
            True, False, backend.value, 2)
    torch.library.opcheck(torch.ops.vssm.selective_scan.default, args)


def test_flop_count_does_not_depend_on_the_fold() -> None:
    # the sum after an unfolded scan is an aten.sum, which neither FlopCounterMode nor fvcore counts
    batch, kd, length, state = 2, 8, 10, 2
    route = torch.stack([torch.arange(length), torch.arange(length).flip(0)])
    inputs = random_scan_inputs(batch, kd, length, state, 2, route=route, fold=2)
    with FlopCounterMode(display=False) as counter:
        kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, route=route, fold=2)
    expected = 9 * batch * length * kd * state + batch * kd * length
    assert scan_flops(batch, kd, length, length, state, True) == expected
    assert counter.get_flop_counts()["Global"][torch.ops.vssm.selective_scan] == expected


@pytest.mark.parametrize(("fold", "routed", "message"), [
    (0, True, "fold: expected a positive int dividing the number of routes K = 4, got 0"),
    (3, True, "fold: expected a positive int dividing the number of routes K = 4, got 3"),
    (8, True, "fold: expected a positive int dividing the number of routes K = 4, got 8"),
    (5, False, r"fold: expected a positive int dividing KD = 16 \(no route\), got 5"),
])
def test_bad_fold_says_expected_and_given(fold: int, routed: bool, message: str) -> None:
    route = random_route(4, 6, 0) if routed else None
    inputs = random_scan_inputs(1, 16, 6, 2, route=route)
    with pytest.raises(ValueError, match=message):
        kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, route=route, fold=fold)


def test_fold_of_wrong_type_is_a_type_error() -> None:
    inputs = random_scan_inputs(1, 8, 6, 2)
    with pytest.raises(TypeError, match="fold: expected an int, got float"):
        kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, fold=2.0)

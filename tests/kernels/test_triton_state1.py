"""The Triton backend's d_state 1 kernels (kernels/triton_scan_state1.py) under TRITON_INTERPRET=1 on CPU tensors:
chunks of one save interval (8 steps: 2 per lane on 4 lanes), blocks of up to 4 channels, up to 2 blocks per backward
program; and (`gpu`) on CUDA tensors at the GPU's tiles (128-step chunks on 32 lanes).

Same three-way rule against the float64 reference as the other backends; like tests/kernels/test_triton.py, without
TRITON_INTERPRET=1 in the environment this file re-runs itself in a subprocess that has it (triton_interpreter.py).
"""

import importlib

import pytest
import torch

from vssm import kernels
from vssm.kernels.backends import Backend
from vssm.kernels.scan_tensors import ScanTensors
from vssm.kernels.testing import (
    GRAD_NAMES,
    TRITON_MAY_ADD_NONFINITE,
    assert_eager_matches_custom_op,
    assert_matches_reference,
    assert_nonfinite_matches_reference,
    assert_shared_u_matches_expanded,
    random_route,
    random_scan_inputs,
    with_value,
)

triton = pytest.importorskip("triton")
triton_scan = pytest.importorskip("vssm.kernels.triton_scan")
state1 = importlib.import_module("vssm.kernels.triton_scan_state1")  # not importorskip: its absence is a failure

from triton_interpreter import (  # noqa: E402  (tests/kernels/triton_interpreter.py imports triton)
    assert_passes_under_interpreter,
    interpreter_only,
    outside_interpreter,
)


@outside_interpreter
def test_interpreter_suite_in_subprocess() -> None:
    assert_passes_under_interpreter(__file__)


CASES = {
    # name: (batch, KD, L, G, has_D, has_z, has_delta_bias, softplus); chunks of 8 steps under the interpreter
    "all_flags_3_chunks": (1, 4, 20, 1, True, True, True, True),
    "groups_2_no_z": (2, 8, 12, 2, True, False, True, True),
    "no_flags_one_chunk": (1, 4, 8, 1, False, False, False, False),
    "length_1": (2, 4, 1, 2, True, True, True, True),
    "two_blocks_per_backward_program": (2, 16, 13, 2, True, True, True, True),  # 8 channels a group: 2 blocks of 4
}


@interpreter_only
@pytest.mark.parametrize("case", list(CASES))
def test_fp32_matches_float64_reference(case: str) -> None:
    batch, kd, length, groups, has_D, has_z, has_bias, softplus = CASES[case]
    inputs = random_scan_inputs(batch, kd, length, 1, groups, has_D=has_D, has_z=has_z, has_delta_bias=has_bias,
                                delta_softplus=softplus)
    assert_matches_reference(Backend.TRITON, inputs, torch.float32)


@interpreter_only
@pytest.mark.parametrize("out_float32", [False, True])
def test_bf16_matches_float64_reference(out_float32: bool) -> None:
    inputs = random_scan_inputs(1, 4, 19, 1, 2)
    assert_matches_reference(Backend.TRITON, inputs, torch.bfloat16, out_float32=out_float32)


@interpreter_only
@pytest.mark.parametrize(("routes", "groups", "pad"), [(2, 2, 3), (4, 1, 0), (4, 4, 5)])
@pytest.mark.usefixtures("route_reading")
def test_routes_with_padding_match_float64_reference(routes: int, groups: int, pad: int) -> None:
    gen = torch.Generator().manual_seed(routes + pad)
    route = random_route(routes, 11, pad, gen)
    inputs = random_scan_inputs(1, 2 * routes, 11, 1, groups, route=route, generator=gen)
    assert_matches_reference(Backend.TRITON, inputs, torch.float32)


@interpreter_only
@pytest.mark.usefixtures("route_reading")
def test_bf16_route_without_z_matches_float64_reference() -> None:
    gen = torch.Generator().manual_seed(5)
    route = random_route(4, 10, 2, gen)
    inputs = random_scan_inputs(1, 8, 10, 1, 4, has_z=False, route=route, generator=gen)
    assert_matches_reference(Backend.TRITON, inputs, torch.bfloat16, out_float32=True)


def _shared_u_inputs(pad: int):
    gen = torch.Generator().manual_seed(pad)
    return random_scan_inputs(1, 8, 10, 1, 2, route=random_route(2, 10, pad, gen), shared_u=True, generator=gen)


@interpreter_only
@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.usefixtures("route_reading")
def test_shared_u_matches_float64_reference_and_the_expanded_copy(pad: int) -> None:
    assert_matches_reference(Backend.TRITON, _shared_u_inputs(pad), torch.float32)
    assert_shared_u_matches_expanded(Backend.TRITON, _shared_u_inputs(pad))


@interpreter_only
@pytest.mark.usefixtures("route_reading")
def test_partly_shared_u_matches_float64_reference() -> None:
    # K = 4 routes reading u of KD/2 channels (SS2D's two base layouts of the cross routes)
    gen = torch.Generator().manual_seed(11)
    inputs = random_scan_inputs(1, 8, 10, 1, 4, route=random_route(4, 10, 2, gen), u_copies=2, generator=gen)
    assert_matches_reference(Backend.TRITON, inputs, torch.float32)


@interpreter_only
@pytest.mark.parametrize("name", GRAD_NAMES)
def test_nan_in_any_input_gives_nan_where_the_reference_does(name: str) -> None:
    # 13 steps: 2 chunks of 8, the last with 3 steps past the end
    inputs = with_value(random_scan_inputs(1, 4, 13, 1, 1), name, float("nan"))
    assert_nonfinite_matches_reference(Backend.TRITON, inputs, may_add_nonfinite=TRITON_MAY_ADD_NONFINITE)


@interpreter_only
@pytest.mark.parametrize(("name", "value"), [("A", "inf"), ("A", "-inf"), ("delta", "inf"), ("u", "inf")])
def test_inf_gives_finite_values_where_the_reference_does(name: str, value: str) -> None:
    inputs = with_value(random_scan_inputs(1, 4, 13, 1, 1), name, float(value))
    assert_nonfinite_matches_reference(Backend.TRITON, inputs, may_add_nonfinite=TRITON_MAY_ADD_NONFINITE)


@interpreter_only
def test_state_1_runs_the_first_order_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the generic Triton kernels ran at d_state 1")

    monkeypatch.setattr(triton_scan, "selective_scan_triton_fwd", refuse)
    monkeypatch.setattr(triton_scan, "selective_scan_triton_bwd", refuse)
    inputs = random_scan_inputs(1, 4, 9, 1).requires_grad_()
    with kernels.use_backend(Backend.TRITON):
        y = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                                   inputs.delta_bias, delta_softplus=True)
        y.sum().backward()
    assert inputs.A.grad is not None and bool(inputs.A.grad.isfinite().all())


@interpreter_only
@pytest.mark.usefixtures("route_reading")
def test_eager_function_matches_the_custom_op_exactly() -> None:
    gen = torch.Generator().manual_seed(3)
    inputs = random_scan_inputs(2, 8, 10, 1, 2, route=random_route(2, 10, 2, gen), generator=gen)
    assert_eager_matches_custom_op(Backend.TRITON, inputs)


@interpreter_only
def test_saved_states_are_the_generic_kernels() -> None:
    """Same layout and values as kernels/triton_scan.py's saved states (the op's fake kernel allocates that shape)."""
    gen = torch.Generator().manual_seed(7)
    route = random_route(2, 27, 2, gen)
    s = random_scan_inputs(2, 8, 27, 1, 2, route=route, generator=gen)
    scan = ScanTensors(*s.tensors(), route)
    out, last, saved = state1.selective_scan_state1_fwd(scan, True, False)
    out_g, last_g, saved_g = triton_scan.selective_scan_triton_fwd(scan, True, False)
    assert saved.shape == saved_g.shape == (2, 8, 3, 1)
    for a, b in ((out, out_g), (last, last_g), (saved, saved_g)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@interpreter_only
def test_backward_is_deterministic() -> None:
    gen = torch.Generator().manual_seed(2)
    inputs = random_scan_inputs(2, 8, 17, 1, 2, route=random_route(2, 17, 1, gen), generator=gen).requires_grad_()
    grads = []
    for _ in range(2):
        with kernels.use_backend(Backend.TRITON), kernels.use_route_reading("in_kernel"):
            y = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                                       inputs.delta_bias, delta_softplus=True, route=inputs.route)
        grads.append(torch.autograd.grad(y.square().sum(), [inputs.u, inputs.A, inputs.B, inputs.C, inputs.D]))
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


@interpreter_only
def test_rejects_other_states_and_chunks() -> None:
    s = random_scan_inputs(1, 4, 9, 2)
    with pytest.raises(ValueError, match="N = 1, got N = 2"):
        state1.selective_scan_state1_fwd(ScanTensors(*s.tensors()), True, False)
    s = random_scan_inputs(1, 4, 9, 1)
    with pytest.raises(ValueError, match="multiple of save_every"):
        state1.selective_scan_state1_fwd(ScanTensors(*s.tensors()), True, False,
                                         config=state1.State1Config(4, triton_scan.save_every() // 2, 2, 1, 1))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.usefixtures("route_reading")
def test_cuda_vmamba_like_routes_match_float64_reference(dtype: torch.dtype) -> None:
    # 3 chunks of 128 steps, the last partial; K = G = 4 routes with padding, no z, float32 output (VMamba's SS2D)
    gen = torch.Generator().manual_seed(0)
    route = random_route(4, 290, 6, gen)
    inputs = random_scan_inputs(2, 64, 290, 1, 4, has_z=False, route=route, generator=gen)
    assert_matches_reference(Backend.TRITON, inputs, dtype, out_float32=True, device="cuda")


@pytest.mark.gpu
def test_cuda_saved_states_and_outputs_are_the_generic_kernels() -> None:
    gen = torch.Generator().manual_seed(1)
    s = random_scan_inputs(2, 64, 3 * triton_scan.save_every() + 5, 1, 2, generator=gen).to_device("cuda")
    scan = ScanTensors(*s.tensors())
    for a, b in zip(state1.selective_scan_state1_fwd(scan, True, False),
                    triton_scan.selective_scan_triton_fwd(scan, True, False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)

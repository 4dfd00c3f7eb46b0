"""The Triton backend compiled for a real GPU: CUDA tensors at the GPU's tile sizes (chunks of 4 or 8 steps, the
state saved every 64).

The interpreter suite (test_triton.py) checks the kernels' logic on tiny tiles; these check what only a GPU shows:
the lowering, tiles of the real size, sequences of several saved spans, determinism of the compiled backward and
torch.compile over the triton_op. Same three-way rule against the float64 reference (run on the CPU).
"""

import pytest
import torch

from vssm import kernels
from vssm.kernels.backends import Backend
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
from vssm.kernels.triton_scan import save_every

pytestmark = pytest.mark.gpu

CASES = {
    # name: (batch, KD, L, N, G, has_D, has_z, has_delta_bias, softplus)
    "vim_like_3_saved_spans": (2, 64, 2 * save_every() + 5, 16, 1, True, True, True, True),
    "vmamba_like_state_1": (2, 64, 2 * save_every() + 3, 1, 4, True, False, True, True),
    "mambavision_like_state_8": (1, 32, save_every() + 1, 8, 1, True, False, True, True),
    "no_flags_one_step": (3, 32, 1, 16, 1, False, False, False, False),
    "state_3_not_power_of_two": (1, 32, 70, 3, 2, True, True, False, True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fp32_matches_float64_reference(case: str) -> None:
    batch, kd, length, state, groups, has_D, has_z, has_bias, softplus = CASES[case]
    inputs = random_scan_inputs(batch, kd, length, state, groups, has_D=has_D, has_z=has_z, has_delta_bias=has_bias,
                                delta_softplus=softplus)
    assert_matches_reference(Backend.TRITON, inputs, torch.float32, device="cuda")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("out_float32", [False, True])
def test_low_precision_matches_float64_reference(dtype: torch.dtype, out_float32: bool) -> None:
    inputs = random_scan_inputs(2, 64, 150, 16, 2)
    assert_matches_reference(Backend.TRITON, inputs, dtype, out_float32=out_float32, device="cuda")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.usefixtures("route_reading")
def test_eager_function_matches_the_custom_op_exactly(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(11)
    inputs = random_scan_inputs(2, 64, 196, 16, 4, route=random_route(4, 196, 5, gen), generator=gen)
    assert_eager_matches_custom_op(Backend.TRITON, inputs.cast(dtype), device="cuda")


@pytest.mark.parametrize("shared_u", [False, True], ids=["u_per_route", "shared_u"])
@pytest.mark.parametrize(("routes", "groups", "state", "pad"), [(2, 2, 16, 7), (4, 4, 1, 0), (4, 1, 16, 40)])
@pytest.mark.usefixtures("route_reading")
def test_routes_with_padding_match_float64_reference(routes: int, groups: int, state: int, pad: int,
                                                     shared_u: bool) -> None:
    gen = torch.Generator().manual_seed(routes + pad)
    route = random_route(routes, 196, pad, gen)
    inputs = random_scan_inputs(2, 16 * routes, 196, state, groups, route=route, shared_u=shared_u, generator=gen)
    assert_matches_reference(Backend.TRITON, inputs, torch.float32, device="cuda")


@pytest.mark.usefixtures("route_reading")
def test_shared_u_equals_expanded_copy() -> None:
    gen = torch.Generator().manual_seed(3)
    inputs = random_scan_inputs(2, 4 * 48, 196, 16, 4, route=random_route(4, 196, 12, gen), shared_u=True,
                                generator=gen)
    assert_shared_u_matches_expanded(Backend.TRITON, inputs, device="cuda")


def test_backward_is_bitwise_deterministic() -> None:
    inputs = random_scan_inputs(4, 256, 400, 16, 2).to_device("cuda").requires_grad_()
    grads = []
    for _ in range(2):
        with kernels.use_backend(Backend.TRITON):
            y = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                                       inputs.delta_bias, delta_softplus=True)
        grads.append(torch.autograd.grad(y.square().sum(), [t for t in inputs.tensors() if t is not None]))
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("shared_u", [False, True], ids=["u_per_route", "shared_u"])
@pytest.mark.usefixtures("route_reading")  # compiled graphs read routes in the kernels; eager may gather them first
def test_compiled_call_matches_eager(shared_u: bool) -> None:
    gen = torch.Generator().manual_seed(1)
    route = random_route(2, 100, 3, gen)
    inputs = random_scan_inputs(2, 32, 100, 16, 2, route=route, shared_u=shared_u, generator=gen).to_device("cuda")

    def scan(u: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return kernels.selective_scan(u, delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias,
                                      delta_softplus=True, route=inputs.route)

    with kernels.use_backend(Backend.TRITON):
        eager = scan(inputs.u, inputs.delta)
        compiled = torch.compile(scan, fullgraph=True)(inputs.u, inputs.delta)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)


def test_long_sequence_stays_finite_and_matches_cpu_backend() -> None:
    gen = torch.Generator().manual_seed(2)
    inputs = random_scan_inputs(1, 32, 16384, 16, 1, generator=gen)
    args = (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias)
    with kernels.use_backend(Backend.TRITON):
        gpu = kernels.selective_scan(*(None if t is None else t.cuda() for t in args), delta_softplus=True)
    with kernels.use_backend(Backend.REFERENCE):
        ref = kernels.selective_scan(*(None if t is None else t.double() for t in args), delta_softplus=True)
    assert torch.isfinite(gpu).all()
    err = (gpu.cpu().double() - ref).norm() / ref.norm()
    assert err < 1e-5, f"relative L2 error {err:.2e} against the float64 reference at L = 16384"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", GRAD_NAMES)
def test_nonfinite_input_matches_reference(name: str, value: str) -> None:
    # save_every() + 5 steps: two saved spans and steps past the end in the last chunk
    inputs = with_value(random_scan_inputs(2, 64, save_every() + 5, 16, 2), name, float(value))
    assert_nonfinite_matches_reference(Backend.TRITON, inputs, device="cuda",
                                       may_add_nonfinite=TRITON_MAY_ADD_NONFINITE)

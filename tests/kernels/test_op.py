"""`vssm::selective_scan` as a custom op: opcheck, torch.compile(fullgraph), FlopCounterMode and fvcore counts."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vssm import kernels
from vssm.kernels.backends import Backend
from vssm.kernels.op import fvcore_handles, scan_flops
from vssm.kernels.testing import cpu_backends, random_scan_inputs

CPU_BACKENDS = cpu_backends()


def op_args(inputs, backend: Backend, route=None, out_float32=False):
    return (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias, route,
            inputs.delta_softplus, out_float32, backend.value)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("variant", ["all_flags", "no_optionals", "route", "route_shared_u", "bf16_out_float32"])
def test_opcheck(backend: Backend, variant: str) -> None:
    dtype = torch.bfloat16 if variant == "bf16_out_float32" else torch.float32
    flags = {} if variant != "no_optionals" else dict(has_D=False, has_z=False, has_delta_bias=False)
    route = torch.tensor([[3, 2, -1, 1, 0], [0, 1, 2, 3, -1]]) if variant.startswith("route") else None
    inputs = random_scan_inputs(2, 4, 4, 3, 2, dtype=dtype, route=route, shared_u=variant == "route_shared_u",
                                **flags).requires_grad_()
    torch.library.opcheck(torch.ops.vssm.selective_scan.default,
                          op_args(inputs, backend, route, out_float32=variant == "bf16_out_float32"))


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_fake_matches_real_shapes_strides_dtypes(backend: Backend) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    inputs = random_scan_inputs(2, 8, 300, 16, 2, dtype=torch.bfloat16)
    real = torch.ops.vssm.selective_scan(*op_args(inputs, backend))
    with FakeTensorMode() as mode:
        fake_inputs = [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in op_args(inputs, backend)]
        fake = torch.ops.vssm.selective_scan(*fake_inputs)
    for r, f in zip(real, fake, strict=True):
        assert (r.shape, r.stride(), r.dtype) == (f.shape, f.stride(), f.dtype)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize(("shared_u", "fold"), [(False, 1), (True, 1), (True, 2)],
                         ids=["u_per_route", "shared_u", "shared_u_fold_2"])
def test_compile_fullgraph_matches_eager(backend: Backend, shared_u: bool, fold: int) -> None:
    torch._dynamo.reset()
    route = torch.tensor([[0, 1, 2, 3, 4, 5, -1], [5, 4, -1, 3, 2, 1, 0]])
    inputs = random_scan_inputs(2, 8, 6, 4, 2, route=route, shared_u=shared_u).requires_grad_()

    def block(u, delta, A, B, C, D, z, delta_bias):
        y = kernels.selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True, route=route, fold=fold)
        return (y * y).sum()

    tensors = (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias)
    with kernels.use_backend(backend):
        eager = block(*tensors)
        eager_grads = torch.autograd.grad(eager, tensors)
        compiled = torch.compile(block, fullgraph=True, backend="aot_eager")(*tensors)
        compiled_grads = torch.autograd.grad(compiled, tensors)
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)
    assert compiled_grads[0].shape == inputs.u.shape
    for a, b in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_compile_inductor_forward() -> None:
    torch._dynamo.reset()
    inputs = random_scan_inputs(2, 8, 16, 4, 1)

    def block(u, delta, A, B, C, D):
        return torch.nn.functional.gelu(kernels.selective_scan(u, delta, A, B, C, D, delta_softplus=True))

    args = (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D)
    torch.testing.assert_close(torch.compile(block, fullgraph=True)(*args), block(*args))


@pytest.mark.parametrize("has_D", [True, False])
def test_flop_counter_counts_the_formula(has_D: bool) -> None:
    batch, kd, length, state = 2, 12, 10, 4
    inputs = random_scan_inputs(batch, kd, length, state, 3, has_D=has_D).requires_grad_()
    with FlopCounterMode(display=False) as counter:
        y = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                                   inputs.delta_bias, delta_softplus=True)
    expected = 9 * batch * length * kd * state + (batch * kd * length if has_D else 0)
    assert scan_flops(batch, kd, length, length, state, has_D) == expected
    counts = counter.get_flop_counts()["Global"]
    assert counts[torch.ops.vssm.selective_scan] == expected
    with FlopCounterMode(display=False) as counter:
        y.sum().backward()
    assert counter.get_flop_counts()["Global"][torch.ops.vssm.selective_scan_backward] == 2 * expected


def test_flop_counter_uses_route_length() -> None:
    inputs = random_scan_inputs(1, 4, 5, 2, 1)
    route = torch.tensor([[0, 1, -1, 2, 3, 4, -1, -1]])
    with FlopCounterMode(display=False) as counter:
        kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, route=route)
    assert counter.get_total_flops() == 9 * 1 * 8 * 4 * 2 + 1 * 4 * 5


def test_fvcore_handle_counts_the_same() -> None:
    from fvcore.nn import FlopCountAnalysis

    batch, kd, length, state = 2, 8, 9, 4

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.A = torch.nn.Parameter(-torch.rand(kd, state) - 0.5)
            self.D = torch.nn.Parameter(torch.randn(kd))

        def forward(self, u: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
            return kernels.selective_scan(u, u.sigmoid(), self.A, B, B, self.D, z=u)

    u, B = torch.randn(batch, kd, length), torch.randn(batch, state, length)
    analysis = FlopCountAnalysis(Block(), (u, B)).set_op_handle(**fvcore_handles())
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert analysis.by_operator()["selective_scan"] == 9 * batch * length * kd * state + batch * kd * length

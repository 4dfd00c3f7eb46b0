"""kernels.eager: plain eager calls skip the dispatcher and get exactly what the custom op gives; compile, tracing,
dispatch modes, functorch transforms and tensor subclasses still get the custom op."""

import pytest
import torch
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

from vssm import kernels
from vssm.kernels.backends import Backend
from vssm.kernels.eager import direct_call_allowed
from vssm.kernels.testing import assert_eager_matches_custom_op, cpu_backends, random_route, random_scan_inputs

CPU_BACKENDS = cpu_backends()
OP_NAMES = {"vssm::selective_scan", "vssm::selective_scan_backward"}


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
@pytest.mark.parametrize("variant", ["all_flags", "no_optionals", "route_padded", "route_shared_u", "bf16"])
def test_eager_function_matches_the_custom_op_exactly(backend: Backend, variant: str) -> None:
    gen = torch.Generator().manual_seed(len(variant))
    flags = dict(has_D=False, has_z=False, has_delta_bias=False) if variant == "no_optionals" else {}
    route = random_route(2, 9, 3, gen) if variant.startswith("route") else None
    inputs = random_scan_inputs(2, 8, 9, 4, 2, route=route, shared_u=variant == "route_shared_u", generator=gen,
                                dtype=torch.bfloat16 if variant == "bf16" else torch.float32, **flags)
    assert_eager_matches_custom_op(backend, inputs)


def _profiled_names(call) -> set[str]:
    with profile() as prof:
        call()
    return {event.name for event in prof.events()}


def test_plain_eager_calls_skip_the_custom_op() -> None:
    inputs = random_scan_inputs(1, 4, 6, 2).requires_grad_()

    def forward_backward() -> None:
        kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                               inputs.delta_bias, delta_softplus=True).sum().backward()

    assert not OP_NAMES & _profiled_names(forward_backward)
    with kernels.use_custom_op():
        assert OP_NAMES <= _profiled_names(forward_backward)


class _Subclass(torch.Tensor):
    pass


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated")
def test_whatever_watches_the_dispatcher_gets_the_custom_op() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    x = torch.randn(3)
    assert direct_call_allowed(x, None, torch.nn.Parameter(torch.randn(2)))
    assert not direct_call_allowed(x, x.as_subclass(_Subclass))
    with FlopCounterMode(display=False):
        assert not direct_call_allowed(x)
    with FakeTensorMode():
        assert not direct_call_allowed(x)
    seen = []

    def record(t: torch.Tensor) -> torch.Tensor:
        seen.append(direct_call_allowed(t))
        return t.sum()

    torch.func.grad(record)(x)
    torch.jit.trace(record, (x,), check_trace=False)
    torch.compile(record, backend="eager", fullgraph=True)(torch.randn(4))
    assert seen == [False, False, False]


def test_custom_op_switch_holds_inside_its_block_only() -> None:
    x = torch.randn(3)
    assert direct_call_allowed(x)
    with kernels.use_custom_op():
        assert not direct_call_allowed(x)
        with kernels.use_custom_op():
            assert not direct_call_allowed(x)
        assert not direct_call_allowed(x)
    assert direct_call_allowed(x)


@pytest.mark.parametrize("backend", CPU_BACKENDS, ids=lambda b: b.value)
def test_switches_around_a_compiled_call_keep_it_one_graph(backend: Backend) -> None:
    """The switches are read in eager Python only, like `use_backend` (read once while tracing): around
    torch.compile(fullgraph=True) they give the eager result and no graph break."""
    torch._dynamo.reset()
    gen = torch.Generator().manual_seed(2)
    route = random_route(2, 7, 2, gen)
    inputs = random_scan_inputs(2, 8, 7, 4, 2, route=route, generator=gen)

    def block(u: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return kernels.selective_scan(u, delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias,
                                      delta_softplus=True, route=route)

    with kernels.use_backend(backend), kernels.use_custom_op(), kernels.use_route_reading("gathered"):
        eager = block(inputs.u, inputs.delta)
        compiled = torch.compile(block, fullgraph=True, backend="aot_eager")(inputs.u, inputs.delta)
    with kernels.use_backend(backend):
        in_kernel = block(inputs.u, inputs.delta)
    torch.testing.assert_close(compiled, in_kernel, rtol=0, atol=0)
    torch.testing.assert_close(eager, in_kernel)

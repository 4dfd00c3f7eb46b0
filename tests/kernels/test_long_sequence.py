"""Long-sequence stability: realistic decays over L = 16384 stay finite and match the reference in fp32."""

import pytest
import torch

from vssm import kernels
from vssm.kernels.backends import Backend, supports
from vssm.kernels.tolerances import assert_close_3way

FAST_CPU = [b for b in (Backend.CPU,) if supports(b, torch.device("cpu"), torch.float32) is None]


def realistic(length: int, channels: int = 4, state: int = 16, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(length)
    delta = torch.randn(1, channels, length, generator=gen) - 4.0  # softplus of N(-4, 1), as trained Mamba layers
    A = -torch.exp(torch.randn(channels, state, generator=gen))
    u, B, C = (torch.randn(*s, generator=gen) for s in ((1, channels, length), (1, state, length), (1, state, length)))
    return u.to(dtype), delta.to(dtype), A, B.to(dtype), C.to(dtype)


@pytest.mark.parametrize("backend", FAST_CPU, ids=lambda b: b.value)
def test_length_16384_fp32_matches_reference(backend: Backend) -> None:
    u, delta, A, B, C = realistic(16384)
    with kernels.use_backend(backend):
        y, last = kernels.selective_scan(u, delta, A, B, C, delta_softplus=True, return_last_state=True)
    with kernels.use_backend(Backend.REFERENCE):
        y_ref, last_ref = kernels.selective_scan(u, delta, A, B, C, delta_softplus=True, return_last_state=True)
        y64, last64 = kernels.selective_scan(u.double(), delta.double(), A.double(), B.double(), C.double(),
                                             delta_softplus=True, return_last_state=True)
    assert torch.isfinite(y).all() and torch.isfinite(last).all()
    assert_close_3way(y, y_ref, y64, name="y")
    assert_close_3way(last, last_ref, last64, name="last_state")


@pytest.mark.parametrize("backend", [Backend.REFERENCE, *FAST_CPU], ids=lambda b: b.value)
def test_fp16_large_inputs_keep_fp32_state_finite(backend: Backend) -> None:
    """u near fp16's max: the fp32 state and a float32 output stay finite (only an fp16 output could overflow)."""
    u, delta, A, B, C = realistic(2048, dtype=torch.float16)
    u = (u.float() * 3e4).clamp(-6e4, 6e4).half()
    with kernels.use_backend(backend):
        y, last = kernels.selective_scan(u, delta, A, B, C, delta_softplus=True, return_last_state=True,
                                         out_float32=True)
    assert last.dtype == torch.float32 and torch.isfinite(last).all()
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("backend", FAST_CPU, ids=lambda b: b.value)
def test_length_16384_backward_is_finite(backend: Backend) -> None:
    u, delta, A, B, C = realistic(16384, channels=2)
    leaves = [t.clone().requires_grad_() for t in (u, delta, A, B, C)]
    with kernels.use_backend(backend):
        kernels.selective_scan(*leaves, delta_softplus=True).sum().backward()
    for t in leaves:
        assert torch.isfinite(t.grad).all()

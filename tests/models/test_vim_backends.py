"""Every selective-scan backend gives Vim the logits (and gradients) of the float64 reference, on a tiny Vim."""

from __future__ import annotations

import pytest
import timm
import torch

import kernels
import vssm  # noqa: F401  (registers the models)
from kernels.backends import Backend, supports
from kernels.tolerances import assert_all_close_3way

FAST = [
    b.value for b in Backend if b is not Backend.REFERENCE and supports(b, torch.device("cpu"), torch.float32) is None
]


def _run(model: torch.nn.Module, x: torch.Tensor, backend: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with kernels.use_backend(backend):
        logits = model(x)
    logits.square().mean().backward()
    return logits.detach(), [p.grad for p in model.parameters()]


@pytest.mark.skipif(not FAST, reason="no fast selective-scan backend runs on this machine's CPU")
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("scan", ["bidirectional", "cross"])
def test_fast_backend_matches_the_float64_reference(backend: str, scan: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_vim", depth=2, scan=scan, drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 64, 64)
    fast, fast_grads = _run(model, x, backend)
    ref, ref_grads = _run(model, x, "reference")
    ref64, ref64_grads = _run(model.double(), x.double(), "reference")
    names = ["logits"] + [f"grad {n}" for n, _ in model.named_parameters()]
    assert_all_close_3way([fast, *fast_grads], [ref, *ref_grads], [ref64, *ref64_grads], names, dtype=torch.float32)

"""What the models' backend tests share: the fast selective-scan backends this machine's CPU runs, and one forward +
backward of a model on a chosen backend (compared against the float64 `reference` backend by the tests)."""

from __future__ import annotations

import torch

from vssm import kernels
from vssm.kernels.backends import Backend, supports

FAST = [
    b.value for b in Backend if b is not Backend.REFERENCE and supports(b, torch.device("cpu"), torch.float32) is None
]


def logits_and_grads(model: torch.nn.Module, x: torch.Tensor, backend: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """model(x) on `backend` and the parameters' gradients of mean(logits²)."""
    model.zero_grad(set_to_none=True)
    with kernels.use_backend(backend):
        logits = model(x)
    logits.square().mean().backward()
    return logits.detach(), [p.grad for p in model.parameters()]

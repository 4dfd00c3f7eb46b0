"""Every selective-scan backend gives Vim the logits (and gradients) of the float64 reference, on a tiny Vim."""

from __future__ import annotations

import pytest
import timm
import torch
from backend_runs import FAST, logits_and_grads

import vssm  # noqa: F401  (registers the models)
from vssm.kernels.tolerances import assert_all_close_3way


@pytest.mark.skipif(not FAST, reason="no fast selective-scan backend runs on this machine's CPU")
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("scan", ["bidirectional", "cross"])
def test_fast_backend_matches_the_float64_reference(backend: str, scan: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_vim", depth=2, scan=scan, drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 64, 64)
    fast, fast_grads = logits_and_grads(model, x, backend)
    ref, ref_grads = logits_and_grads(model, x, "reference")
    ref64, ref64_grads = logits_and_grads(model.double(), x.double(), "reference")
    names = ["logits"] + [f"grad {n}" for n, _ in model.named_parameters()]
    assert_all_close_3way([fast, *fast_grads], [ref, *ref_grads], [ref64, *ref64_grads], names, dtype=torch.float32)

"""Faithfulness: our PlainMamba against the original code's outputs (tests/fixtures/GOLDEN.md, rel L2 <= 1e-5 in
float32 on the automatic backend, <= 1e-9 in float64 on the reference backend).

Fixtures: `plainmamba_test` (GOLDEN.md) and `plainmamba_l1_seeded` (its README.md: PlainMamba-L1 at full size with
seed-derived weights, 2×3×224×224; logits).
"""

from __future__ import annotations

import pytest
import timm
import torch
from golden import assert_matches, load_golden
from seeded_golden import SeededGolden, forward_float64, load_seeded

from vssm import kernels
from vssm.models.plainmamba import checkpoint_filter_fn


def _model() -> tuple[torch.nn.Module, object]:
    golden = load_golden("plainmamba_test")
    model = timm.create_model("test_plainmamba", depth=2).eval()  # the fixture's configuration (GOLDEN.md)
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    return model, golden


def test_matches_the_original_in_float32() -> None:
    model, golden = _model()
    assert sum(p.numel() for p in model.parameters()) == golden.meta["n_params"]
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, "plainmamba_test logits")


def test_matches_the_original_in_float64() -> None:
    model, golden = _model()
    model.double()
    with kernels.use_backend("reference"), torch.no_grad():
        logits = model(golden.input.double())
    assert logits.dtype == torch.float64
    assert_matches(logits, golden.output_fp64, "plainmamba_test logits (float64)")


# ------------------------------------------------------------------------------------------- PlainMamba-L1 size


@pytest.fixture(scope="module")
def l1() -> SeededGolden:
    return load_seeded("plainmamba_l1_seeded", "plainmamba_l1", checkpoint_filter_fn, "state_dict")


def test_l1_size_has_the_original_parameter_count(l1: SeededGolden) -> None:
    assert sum(p.numel() for p in l1.model.parameters()) == l1.meta["n_params"] == 7_551_656


def test_l1_size_matches_the_original_in_float32(l1: SeededGolden) -> None:
    with torch.no_grad():
        logits = l1.model(l1.input("224"))
    assert_matches(logits, l1.output("224"), "PlainMamba-L1 logits at 224")


@pytest.mark.slow  # 22-100 s here (2 shared cores): 24 layers × 4 routes on the float64 reference backend
def test_l1_size_matches_the_original_in_float64(l1: SeededGolden) -> None:
    logits = forward_float64(l1.model, l1.input("224"))
    assert_matches(logits, l1.output("224", float64=True), "PlainMamba-L1 logits at 224 (float64)")

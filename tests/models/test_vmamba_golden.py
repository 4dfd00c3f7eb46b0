"""Faithfulness: our VMamba against the original code's outputs (tests/fixtures/GOLDEN.md, rel L2 <= 1e-5 / 1e-9).

Both fixtures (v2 "s1l8" and v0), logits and the four pre-downsample stage maps, in float32 (automatic backend)
and float64 (reference backend), in both layouts and through both scan paths.
"""

from __future__ import annotations

import pytest
import timm
import torch
from golden import assert_matches, load_golden

from vssm import kernels
from vssm.layers.layout import Layout
from vssm.models.vmamba import checkpoint_filter_fn

# fixture -> (our name, kwargs translating the original constructor arguments of GOLDEN.md)
FIXTURES = {
    "vmamba_test_s1l8": ("test_vmamba", {}),
    "vmamba_test_v0": ("vmamba_tiny_v0", {"depths": (1, 1, 2, 1), "dims": 16}),
}


def _model(fixture: str, layout: Layout, route_addressing: bool = True) -> tuple[torch.nn.Module, object]:
    golden = load_golden(fixture)
    name, kwargs = FIXTURES[fixture]
    model = timm.create_model(name, layout=layout, route_addressing=route_addressing, **kwargs).eval()
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    return model, golden


@pytest.mark.parametrize("layout", list(Layout), ids=lambda layout: layout.value)
@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_matches_the_original_in_float32(fixture: str, layout: Layout) -> None:
    model, golden = _model(fixture, layout)
    assert sum(p.numel() for p in model.parameters()) == golden.meta["n_params"]
    with torch.no_grad():
        logits = model(golden.input)
        stages = model.forward_intermediates(golden.input, intermediates_only=True)
    assert_matches(logits, golden.output, f"{fixture} logits")
    assert len(stages) == len(golden.features["stages"]) == 4
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages"])):
        assert_matches(ours, ref, f"{fixture} stage {i}")


@pytest.mark.parametrize("route_addressing", [True, False], ids=["route", "materialised"])
@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_matches_the_original_in_float64(fixture: str, route_addressing: bool) -> None:
    model, golden = _model(fixture, Layout.CHANNELS_FIRST, route_addressing)
    model.double()
    x = golden.input.double()
    with kernels.use_backend("reference"), torch.no_grad():
        logits = model(x)
        stages = model.forward_intermediates(x, intermediates_only=True)
    assert logits.dtype == torch.float64
    assert_matches(logits, golden.output_fp64, f"{fixture} logits (float64)")
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages_fp64"])):
        assert_matches(ours, ref, f"{fixture} stage {i} (float64)")


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_features_only_returns_the_original_stage_maps(fixture: str) -> None:
    golden = load_golden(fixture)
    name, kwargs = FIXTURES[fixture]
    backbone = timm.create_model(name, features_only=True, **kwargs).eval()
    classifier, _ = _model(fixture, Layout.CHANNELS_FIRST)
    # The features wrapper drops the classifier; load the body the classifier model was given.
    body = {k: v for k, v in classifier.state_dict().items() if not k.startswith("classifier.")}
    backbone.model.load_state_dict(body, strict=True)
    assert backbone.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        stages = backbone(golden.input)
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages"])):
        assert_matches(ours, ref, f"{fixture} features_only stage {i}")

"""Faithfulness: LocalVim / LocalVMamba against the original code's outputs (tests/fixtures/GOLDEN.md).

Fixtures: `local_vim_test` (RoPE, 10 × 10 patches: w7 pads to 14 × 14), `local_vim_test_midcls` (middle class token,
7 × 7: w2 pads to 8 × 8) and `local_vssm_test` (64 px: every block's w7 pads; logits and the four stage maps).
Acceptance: relative L2 <= 1e-5 in float32 (automatic backend) or <= 1e-9 in float64 (reference backend).
"""

from __future__ import annotations

import pytest
import timm
import torch
from golden import assert_matches, load_golden

import vssm  # noqa: F401  (registers the models)
from vssm import kernels
from vssm.layers.layout import Layout
from vssm.models.localmamba import checkpoint_filter_fn

# fixture -> (our name, kwargs translating the original constructor arguments of GOLDEN.md)
FIXTURES = {
    "local_vim_test": ("test_local_vim", {"img_size": 160, "embed_dim": 64, "depth": 2}),
    "local_vim_test_midcls": ("local_vim_tiny_midcls", {"img_size": 112, "embed_dim": 64, "depth": 2}),
    "local_vssm_test": ("test_local_vssm", {}),
}


def _model(fixture: str, **kwargs: object) -> tuple[torch.nn.Module, object]:
    golden = load_golden(fixture)
    name, defaults = FIXTURES[fixture]
    model = timm.create_model(name, directions=golden.kwargs["directions"], **defaults, **kwargs).eval()
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    return model, golden


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_matches_the_original_in_float32(fixture: str) -> None:
    model, golden = _model(fixture)
    assert sum(p.numel() for p in model.parameters()) == golden.meta["n_params"]
    assert len(model.state_dict()) == golden.meta["n_state_tensors"]
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, f"{fixture} logits")


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_matches_the_original_in_float64(fixture: str) -> None:
    model, golden = _model(fixture)
    model.double()
    with kernels.use_backend("reference"), torch.no_grad():
        logits = model(golden.input.double())
    assert logits.dtype == torch.float64
    assert_matches(logits, golden.output_fp64, f"{fixture} logits (float64)")


@pytest.mark.parametrize("layout", list(Layout), ids=lambda layout: layout.value)
@pytest.mark.parametrize("route_addressing", [True, False], ids=["route", "materialised"])
def test_local_vssm_stage_maps_in_both_layouts_and_scan_paths(layout: Layout, route_addressing: bool) -> None:
    model, golden = _model("local_vssm_test", layout=layout, route_addressing=route_addressing)
    with torch.no_grad():
        logits, stages = model.forward_intermediates(golden.input)
        logits = model.forward_head(logits)
    assert_matches(logits, golden.output, "local_vssm_test logits")
    assert len(stages) == len(golden.features["stages"]) == 4
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages"])):
        assert_matches(ours, ref, f"local_vssm_test stage {i}")


def test_local_vssm_stage_maps_in_float64() -> None:
    model, golden = _model("local_vssm_test")
    model.double()
    with kernels.use_backend("reference"), torch.no_grad():
        stages = model.forward_intermediates(golden.input.double(), intermediates_only=True)
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages_fp64"])):
        assert_matches(ours, ref, f"local_vssm_test stage {i} (float64)")


@pytest.mark.parametrize("fixture", ["local_vim_test", "local_vim_test_midcls"])
def test_loading_on_the_cpu_keeps_every_a_log_distinct(fixture: str) -> None:
    """LocalMamba#16: the original's A_log_k alias one tensor, so a CPU load leaves all four equal to A_log_3."""
    model, golden = _model(fixture)
    for i in range(len(model.layers)):
        loaded = model.layers[i].mixer.route_views("A_log")
        assert len({p.data_ptr() for p in loaded}) == 4, f"layer {i}: A_log_k share storage"
        for k, p in enumerate(loaded):
            torch.testing.assert_close(p, golden.state_dict[f"layers.{i}.mixer.A_log_{k}"], rtol=0, atol=0)
        assert not torch.equal(loaded[0], loaded[3])


def test_the_aliasing_bug_would_move_the_output() -> None:
    """The fixture can tell the bug: all A_log_k := A_log_3 changes the logits far beyond the tolerance."""
    model, golden = _model("local_vim_test")
    with torch.no_grad():
        for block in model.layers:
            a_log = block.mixer.route_views("A_log")
            for k in range(3):
                a_log[k].copy_(a_log[3])
        buggy = model(golden.input)
    with pytest.raises(AssertionError, match="relative L2"):
        assert_matches(buggy, golden.output, "aliased A_log")

"""Faithfulness: our MSVMamba against the original code's outputs (tests/fixtures/GOLDEN.md, rel L2 <= 1e-5 / 1e-9).

The fixture `msvmamba_test` (YuHengsss/MSVMamba @ c394019, nano's config at dims 16, depths 1-1-2-1): logits and the
four pre-downsample stage maps, in float32 (automatic backend) and float64 (reference backend), and through
`features_only`.

The fixture `msvmamba_nano_seeded` (its README.md): MSVMamba-Nano at full size with seed-derived weights, at 224 and
at 160×192 (the downsampled branch's 7×7 → 4×4 and 5×6 → 3×3 grids interpolated back); logits.
"""

from __future__ import annotations

import pytest
import timm
import torch
from golden import assert_features_only_matches, assert_matches, load_golden
from seeded_golden import SeededGolden, forward_float64, load_seeded

from vssm import kernels
from vssm.models.msvmamba import checkpoint_filter_fn

FIXTURE = "msvmamba_test"


def _model() -> tuple[torch.nn.Module, object]:
    golden = load_golden(FIXTURE)
    model = timm.create_model("test_msvmamba").eval()
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    return model, golden


def test_matches_the_original_in_float32() -> None:
    model, golden = _model()
    assert sum(p.numel() for p in model.parameters()) == golden.meta["n_params"]
    with torch.no_grad():
        logits = model(golden.input)
        stages = model.forward_intermediates(golden.input, intermediates_only=True)
    assert_matches(logits, golden.output, "logits")
    assert len(stages) == len(golden.features["stages"]) == 4
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages"])):
        assert_matches(ours, ref, f"stage {i}")


def test_matches_the_original_in_float64() -> None:
    model, golden = _model()
    model.double()
    x = golden.input.double()
    with kernels.use_backend("reference"), torch.no_grad():
        logits = model(x)
        stages = model.forward_intermediates(x, intermediates_only=True)
    assert logits.dtype == torch.float64
    assert_matches(logits, golden.output_fp64, "logits (float64)")
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages_fp64"])):
        assert_matches(ours, ref, f"stage {i} (float64)")


def test_features_only_returns_the_original_stage_maps() -> None:
    golden = load_golden(FIXTURE)
    classifier, _ = _model()
    assert_features_only_matches("test_msvmamba", classifier, golden, lambda key: not key.startswith("classifier."))


# ------------------------------------------------------------------------------------------- MSVMamba-Nano size

SIZES = pytest.mark.parametrize("size", ["224", "160x192"])


@pytest.fixture(scope="module")
def nano() -> SeededGolden:
    return load_seeded("msvmamba_nano_seeded", "msvmamba_nano", checkpoint_filter_fn, "model")


def test_nano_has_the_original_state_dict(nano: SeededGolden) -> None:
    assert sum(p.numel() for p in nano.model.parameters()) == nano.meta["n_params"] == 6_864_136
    ours = {key: list(value.shape) for key, value in nano.model.state_dict().items()}
    assert ours == dict(nano.meta["state_dict_keys"])


@SIZES
def test_nano_matches_the_original_in_float32(nano: SeededGolden, size: str) -> None:
    with torch.no_grad():
        logits = nano.model(nano.input(size))
    assert_matches(logits, nano.output(size), f"MSVMamba-Nano logits at {size}")


@SIZES
def test_nano_matches_the_original_in_float64(nano: SeededGolden, size: str) -> None:
    logits = forward_float64(nano.model, nano.input(size))
    assert_matches(logits, nano.output(size, float64=True), f"MSVMamba-Nano logits at {size} (float64)")

"""Faithfulness: our MambaVision against the original code's outputs (rel L2 <= 1e-5 in float32, <= 1e-9 in float64).

* `mambavision_test` (tests/fixtures/GOLDEN.md): the tiny hybrid configuration, both hybrid levels padded, layer
  scale on; logits and the four pre-downsample stage maps.
* `mambavision_tiny_seeded` (its README.md): MambaVision-T at full size with seed-derived weights, at 224 (one window
  per hybrid level) and at 200×232 (padded, two windows per hybrid level); logits.
"""

from __future__ import annotations

import json

import pytest
import timm
import torch
from golden import FIXTURES, assert_matches, load_golden
from seeded_recipe import checksum, seeded_input, seeded_state_dict

import vssm  # noqa: F401  (registers the models)
from vssm import kernels
from vssm.models.mambavision import checkpoint_filter_fn

TINY = "mambavision_test"
SEEDED = FIXTURES / "mambavision_tiny_seeded"


def _tiny_model() -> tuple[torch.nn.Module, object]:
    golden = load_golden(TINY)
    model = timm.create_model("test_mambavision").eval()
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    return model, golden


def test_tiny_configuration_is_the_fixtures() -> None:
    golden = load_golden(TINY)
    model = timm.create_model("test_mambavision", device="meta")
    kwargs = golden.kwargs
    assert (model.dims[0], model.patch_embed.conv_down[0].out_channels) == (kwargs["dim"], kwargs["in_dim"])
    assert model.depths == tuple(kwargs["depths"]) and model.window_size == tuple(kwargs["window_size"])
    assert sum(p.numel() for p in model.parameters()) == golden.meta["n_params"]
    assert len(model.state_dict()) == golden.meta["n_state_tensors"]


def test_tiny_matches_the_original_in_float32() -> None:
    model, golden = _tiny_model()
    with torch.no_grad():
        logits = model(golden.input)
        stages = model.forward_intermediates(golden.input, intermediates_only=True)
    assert_matches(logits, golden.output, "logits")
    assert len(stages) == 4
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages"], strict=True)):
        assert_matches(ours, ref, f"stage {i}")


def test_tiny_matches_the_original_in_float64() -> None:
    model, golden = _tiny_model()
    model.double()
    x = golden.input.double()
    with kernels.use_backend("reference"), torch.no_grad():
        logits = model(x)
        stages = model.forward_intermediates(x, intermediates_only=True)
    assert logits.dtype == torch.float64
    assert_matches(logits, golden.output_fp64, "logits (float64)")
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages_fp64"], strict=True)):
        assert_matches(ours, ref, f"stage {i} (float64)")


def test_tiny_features_only_returns_the_original_stage_maps() -> None:
    golden = load_golden(TINY)
    backbone = timm.create_model("test_mambavision", features_only=True).eval()
    classifier, _ = _tiny_model()
    body = {k: v for k, v in classifier.state_dict().items() if not k.startswith(("norm.", "head."))}
    backbone.model.load_state_dict(body, strict=True)
    assert backbone.feature_info.reduction() == [4, 8, 16, 32]
    assert backbone.feature_info.channels() == [16, 32, 64, 128]
    with torch.no_grad():
        stages = backbone(golden.input)
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages"], strict=True)):
        assert_matches(ours, ref, f"features_only stage {i}")


# ------------------------------------------------------------------------------------------- MambaVision-T size


@pytest.fixture(scope="module")
def seeded() -> tuple[torch.nn.Module, dict]:
    meta = json.loads((SEEDED / "meta.json").read_text())
    state_dict = seeded_state_dict(meta["weights"]["seed"], meta["state_dict_keys"])
    expected = meta["weights"]["checksum_abs_sum_fp64"]
    assert checksum(state_dict) == pytest.approx(expected, rel=1e-9), "the weight recipe no longer reproduces"
    model = timm.create_model("mambavision_tiny").eval()
    model.load_state_dict(checkpoint_filter_fn({"state_dict": state_dict}, model), strict=True)
    return model, meta


def _load(file: str) -> dict[str, torch.Tensor]:
    return torch.load(SEEDED / file, map_location="cpu", weights_only=True)


def test_tiny_size_matches_the_original_parameter_count(seeded: tuple[torch.nn.Module, dict]) -> None:
    model, meta = seeded
    assert sum(p.numel() for p in model.parameters()) == meta["n_params"] == 31_794_248
    ours = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert ours == dict(meta["state_dict_keys"])


@pytest.mark.parametrize("size", ["224", "200x232"])
def test_tiny_size_matches_the_original_in_float32(seeded: tuple[torch.nn.Module, dict], size: str) -> None:
    model, meta = seeded
    x = seeded_input(meta["weights"]["seed"], meta["inputs"][size]["shape"])
    with torch.no_grad():
        logits = model(x)
    assert_matches(logits, _load("output.pt")[size], f"MambaVision-T logits at {size}")


@pytest.mark.parametrize("size", ["224", "200x232"])
def test_tiny_size_matches_the_original_in_float64(seeded: tuple[torch.nn.Module, dict], size: str) -> None:
    model, meta = seeded
    x = seeded_input(meta["weights"]["seed"], meta["inputs"][size]["shape"]).double()
    try:
        model.double()
        with kernels.use_backend("reference"), torch.no_grad():
            logits = model(x)
    finally:
        model.float()
    assert_matches(logits, _load("output_fp64.pt")[size], f"MambaVision-T logits at {size} (float64)")

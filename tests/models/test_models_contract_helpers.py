"""The timm-contract pieces the families share (`vssm.models._contract`): a reset classifier lives where the model
does, the staged networks' parameter groups (stem, each stage's blocks, its downsample; the final norm with the last
block), and the stage intermediates against a plain loop over the stages."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models._manipulate import group_with_matcher

import vssm
from vssm.models._contract import forward_stage_intermediates, stage_group_matcher

TEST_VARIANTS = vssm.list_models("test_*")


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_a_reset_classifier_has_the_models_dtype(name: str) -> None:
    model = timm.create_model(name, dtype=torch.bfloat16)
    model.reset_classifier(5)
    head = model.get_classifier()
    assert head.weight.dtype == torch.bfloat16 and head.weight.device == next(model.parameters()).device


@pytest.mark.parametrize(("name", "stages", "final_norm"), [
    ("test_vmamba", "layers", "classifier.norm"),
    ("test_local_vssm", "layers", "classifier.norm"),
    ("test_mambavision", "levels", "norm"),
])
def test_stage_groups_are_stem_blocks_downsample_then_final_norm(name: str, stages: str, final_norm: str) -> None:
    model = timm.create_model(name)
    named = list(model.named_parameters())
    fine = group_with_matcher(named, stage_group_matcher(stages, final_norm, coarse=False), reverse=True)
    coarse = group_with_matcher(named, stage_group_matcher(stages, final_norm, coarse=True), reverse=True)
    assert fine[next(n for n, _ in named if n.startswith("patch_embed."))] == 0
    blocks = [v for k, v in fine.items() if k.startswith(f"{stages}.0.blocks.")]
    downsample = [v for k, v in fine.items() if k.startswith(f"{stages}.0.downsample.")]
    assert max(blocks) < min(downsample) < min(v for k, v in fine.items() if k.startswith(f"{stages}.1."))
    # timm's (99999,) ordinal: the final norm joins the group of the last block
    assert fine[f"{final_norm}.weight"] == max(v for k, v in fine.items() if k.startswith(f"{stages}."))
    assert {coarse[n] for n, _ in named if n.startswith(f"{stages}.1.")} == {2}  # stem 0, stage i -> i + 1


def test_stage_intermediates_are_the_maps_before_each_downsample() -> None:
    model = timm.create_model("test_mambavision").eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        stem = model.patch_embed(x)
        expected, y = [], stem
        for level in model.levels:
            y = level.forward_blocks(y)
            expected.append(y)
            y = level.downsample(y)
        last, maps = forward_stage_intermediates(model.levels, stem, [1, 3], model.norm, output_fmt="NHWC")
        early, first = forward_stage_intermediates(model.levels, stem, [1], stop_early=True)
    torch.testing.assert_close(last, y, rtol=0, atol=0)
    torch.testing.assert_close(maps[0], expected[1].permute(0, 2, 3, 1), rtol=0, atol=0)
    torch.testing.assert_close(maps[1], model.norm(expected[3]).permute(0, 2, 3, 1), rtol=0, atol=0)
    torch.testing.assert_close(first[0], expected[1], rtol=0, atol=0)
    torch.testing.assert_close(early, model.levels[1].downsample(expected[1]), rtol=0, atol=0)

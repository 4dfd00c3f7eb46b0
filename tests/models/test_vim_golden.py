"""Faithfulness of Vim against the ORIGINAL code (hustvl/Vim @ dd0358a) on the `vim_test` golden fixture.

How the fixture was produced (tests/fixtures/GOLDEN.md, meta.json): the original `VisionMamba` from
`vim/models_mamba.py` was built on CPU with `patch_size=16, embed_dim=64, depth=2, rms_norm=True,
residual_in_fp32=True, fused_add_norm=True, final_pool_type='mean', if_abs_pos_embed=True, if_rope=False,
bimamba_type='v2', if_cls_token=True, if_divide_out=True, use_middle_cls_token=True` (vim_tiny's switches at width 64,
depth 2, 224 px). Its CUDA-only pieces were replaced by pure-PyTorch equivalents of the same semantics
(`selective_scan_cuda.fwd` -> mamba_ssm's sequential `selective_scan_ref`, `causal_conv1d` -> left-padded depthwise
`F.conv1d`, the Triton `rms_norm_fn` -> the same fused add + RMSNorm in PyTorch); Vim's own fused bimamba-v2 glue
(`mamba_inner_fn_no_out_proj` on x and on the flipped xz, summed, / 2) ran unchanged. Weights are the original init
under `torch.manual_seed(0)`, every float tensor perturbed (A_log += N(0, 1), D += 0.5 N(0, 1), others 0.1 std) so
trivial values cannot hide a bug. The checkpoint is `{'model': state_dict}` with the official keys; the input is a
seeded 2×3×224×224 `randn`; `output.pt` is the float32 eval forward, `output_fp64.pt` the same code in float64.
The original code itself is not in this repository.
"""

from __future__ import annotations

import pytest
import timm
import torch
from golden import assert_matches, load_golden

from vssm import kernels
from vssm.models.vim import checkpoint_filter_fn


@pytest.fixture(scope="module")
def golden():
    return load_golden("vim_test")


def _model(golden) -> torch.nn.Module:
    kwargs = golden.meta["timm_kwargs"]  # img_size 224, patch 16, embed_dim 64, depth 2, 1000 classes
    model = timm.create_model("test_vim", **kwargs).eval()
    model.load_state_dict(checkpoint_filter_fn(golden.checkpoint, model), strict=True)
    return model


def test_fixture_configuration_is_vims(golden) -> None:
    kwargs = golden.kwargs
    assert kwargs["bimamba_type"] == "v2" and kwargs["use_middle_cls_token"] and kwargs["if_divide_out"]
    assert not kwargs["if_rope"] and kwargs["rms_norm"] and kwargs["residual_in_fp32"]
    model = _model(golden)
    assert sum(p.numel() for p in model.parameters()) == golden.meta["n_params"]


def test_float32_logits_match_the_original(golden) -> None:
    model = _model(golden)
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, "vim_test logits (float32)")


def test_float64_logits_match_the_original(golden) -> None:
    model = _model(golden).double()
    with torch.no_grad(), kernels.use_backend("reference"):
        assert_matches(model(golden.input.double()), golden.output_fp64, "vim_test logits (float64)")

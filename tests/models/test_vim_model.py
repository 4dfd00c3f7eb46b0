"""Vim's model behaviour: the spec's formulas (float64), the middle class token, sizes, bad input, timm extras."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import timm
import torch
import vim_spec_reference as spec

import vssm  # noqa: F401  (registers the models)
from vssm import kernels, scans
from vssm.models.vim import checkpoint_filter_fn


def _official(stride: int, img: int = 64, dim: int = 64, depth: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    grid = (img - 16) // stride + 1
    return spec.random_official_state_dict(spec.official_shapes(dim, depth, grid * grid + 1), seed=seed)


@pytest.mark.parametrize("stride", [16, 8], ids=["stride16_even_M", "stride8_odd_M"])
def test_float64_model_follows_the_spec_formulas(stride: int) -> None:
    """Against an independent implementation of spec §2 (flips, Python recurrence). At stride 8 the 7 × 7 grid has
    an odd number of patches, where the class token's step in the flipped route (M - c) differs from c."""
    state = {k: v.double() for k, v in _official(stride).items()}
    model = timm.create_model("test_vim", depth=2, stride=stride).double().eval()
    model.load_state_dict(checkpoint_filter_fn(state, model), strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad(), kernels.use_backend("reference"):
        ours = model(x)
    ref = spec.forward(state, x, stride=stride)
    assert float((ours - ref).norm() / ref.norm()) < 1e-12


def test_class_token_sits_in_the_middle_before_the_position_embedding() -> None:
    model = timm.create_model("test_vim").eval()  # 4 × 4 grid: 16 patches, class token at 8 of 17
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens, grid = model.embed(x)
        patches = model.patch_embed(x).reshape(2, 16, -1)
    assert grid == (4, 4) and model.class_index(17) == 8
    torch.testing.assert_close(tokens[:, 8], (model.cls_token + model.pos_embed[:, 8]).expand(2, 1, -1)[:, 0])
    torch.testing.assert_close(tokens[:, :8], patches[:, :8] + model.pos_embed[:, :8])
    torch.testing.assert_close(tokens[:, 9:], patches[:, 8:] + model.pos_embed[:, 9:])


def test_head_reads_the_middle_token() -> None:
    model = timm.create_model("test_vim").eval()
    features = torch.randn(2, 17, 64)
    torch.testing.assert_close(model.forward_head(features, pre_logits=True), features[:, 8])
    model.reset_classifier(5, global_pool="avg")
    pooled = model.forward_head(features, pre_logits=True)
    torch.testing.assert_close(pooled, torch.cat([features[:, :8], features[:, 9:]], 1).mean(1))


def test_dynamic_img_size_resamples_around_the_class_slot() -> None:
    torch.manual_seed(0)
    fixed = timm.create_model("test_vim").eval()
    dynamic = timm.create_model("test_vim", dynamic_img_size=True).eval()
    dynamic.load_state_dict(fixed.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dynamic(x), fixed(x), rtol=0, atol=0)
        out = dynamic(torch.randn(1, 3, 96, 112))  # 6 × 7 grid, class token at 21 of 43
        pos = dynamic._pos_embed(dynamic.pos_embed, (6, 7))
    assert out.shape == (1, 1000) and pos.shape == (1, 43, 64)
    torch.testing.assert_close(pos[:, 21], fixed.pos_embed[:, 8], rtol=0, atol=0)
    grid = torch.cat([fixed.pos_embed[:, :8], fixed.pos_embed[:, 9:]], 1)
    expected = timm.layers.resample_abs_pos_embed(grid, [6, 7], [4, 4], num_prefix_tokens=0)
    torch.testing.assert_close(torch.cat([pos[:, :21], pos[:, 22:]], 1), expected)


def test_bad_input_raises_value_errors_with_expected_and_given() -> None:
    model = timm.create_model("test_vim").eval()
    with pytest.raises(ValueError, match=r"expected 3 input channels, got 1"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"expected input size 64×64 .*got 80×80"):
        model(torch.randn(1, 3, 80, 80))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.randn(3, 64, 64))
    dynamic = timm.create_model("test_vim", dynamic_img_size=True)
    with pytest.raises(ValueError, match=r"height 70 does not fit the patch grid: expected 16 \+ k·16"):
        dynamic(torch.randn(1, 3, 70, 64))
    with pytest.raises(ValueError, match="global_pool"):
        timm.create_model("test_vim", global_pool="max")
    with pytest.raises(ValueError, match="unknown scan order"):
        timm.create_model("test_vim", scan="diagonal")


@dataclass(frozen=True, repr=False)
class _HalfGrid(scans.ScanOrder):
    """Visits only the first half of the tokens: no plain model can use it."""

    @property
    def num_routes(self) -> int:
        return 1

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        return [np.arange(height * width // 2, dtype=np.int64)]


def test_scan_order_that_cannot_serve_a_plain_model_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cannot serve a plain model: .* 8 are not"):
        timm.create_model("test_vim", scan=_HalfGrid(), class_token=False, global_pool="avg")


def test_drop_path_schedule_is_shifted_by_one() -> None:
    model = timm.create_model("test_vim", drop_path_rate=0.3)
    rates = [getattr(block.drop_path, "drop_prob", 0.0) for block in model.layers]
    np.testing.assert_allclose(rates, [0.0, 0.0, 0.1, 0.2])
    assert model.drop_path.drop_prob == pytest.approx(0.3)


def test_residual_stream_stays_float32_in_bfloat16() -> None:
    model = timm.create_model("test_vim", dtype=torch.bfloat16).eval()
    with torch.no_grad():
        tokens, grid = model.embed(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))
        last, taps = model.forward_blocks(tokens, grid, indices=(0, 1), num_blocks=2)
        out = model(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))
    assert [state.hidden for state in taps][-1] is last.hidden and len(taps) == 2
    for state in taps:
        assert state.hidden.dtype == torch.bfloat16 and state.residual.dtype == torch.float32
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_forward_intermediates_nlc_and_class_token() -> None:
    model = timm.create_model("test_vim").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = model.forward_intermediates(x, indices=[0, 3], output_fmt="NLC", intermediates_only=True)
        pairs = model.forward_intermediates(x, indices=[3], return_prefix_tokens=True, intermediates_only=True)
        nchw = model.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)
        final = model.forward_features(x)
    assert [m.shape for m in maps] == [(2, 16, 64), (2, 16, 64)]
    spatial, cls = pairs[0]
    assert spatial.shape == (2, 64, 4, 4) and cls.shape == (2, 1, 64)
    # The last block's normalised stream is the final feature map.
    torch.testing.assert_close(nchw[0].flatten(2).transpose(1, 2), torch.cat([final[:, :8], final[:, 9:]], 1))


def test_no_class_token_variant_pools_by_mean() -> None:
    model = timm.create_model("test_vim", class_token=False, global_pool="avg").eval()
    assert model.pos_embed.shape == (1, 16, 64) and model.cls_token is None
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


@pytest.mark.parametrize(
    ("name", "count"),
    [("vim_tiny", 7_148_008), ("vim_tiny_stride8", 7_250_344), ("vim_small", 25_796_584),
     ("vim_small_stride8", 26_001_256), ("vim_base", 97_598_440)],
)
def test_parameter_counts_equal_the_originals(name: str, count: int) -> None:
    model = timm.create_model(name, device="meta")
    assert sum(p.numel() for p in model.parameters()) == count


def test_test_variant_at_full_depth_trains_and_checkpoints() -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_vim", depth=24, drop_path_rate=0.1, num_classes=5).train()
    x = torch.randn(2, 3, 64, 64)
    model(x).logsumexp(-1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        plain = model(x)
        model.set_grad_checkpointing(True)
        torch.testing.assert_close(model(x), plain, rtol=0, atol=0)

"""PlainMamba's detection backbone (`PlainMambaAdapter`, the original's ViT-Adapter): the golden fixture made with the
original code (tests/fixtures/plainmamba_adapter_test/meta.json) loads as the original's detector checkpoint and gives
its four levels; `out_indices`, freezing, ImageNet checkpoints and bad settings. Every configs/plainmamba detector
builds and trains an iteration in tests/mm/test_mm_configs.py."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmengine.registry import MODELS

import vssm.mm  # noqa: F401  (registers the backbones)
from vssm import kernels

pytestmark = pytest.mark.mm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "plainmamba_adapter_test"
RTOL = {torch.float32: 1e-5, torch.float64: 1e-9}  # the golden fixtures' acceptance rule (tests/fixtures/GOLDEN.md)
# The fixture's configuration (meta.json -> ours): the L1 switches at D 16, depth 2, one layer per interaction block.
TINY = dict(model="test_plainmamba", depth=2, embed_dim=16, conv_inplane=8, deform_num_heads=2,
            interaction_indexes=[[0, 0], [1, 1]], drop_path_rate=0.1, norm_cfg=dict(type="BN"))


def _adapter(**kwargs) -> torch.nn.Module:
    return MODELS.build(dict(type="PlainMambaAdapter", **{**TINY, **kwargs}))


def _golden(**kwargs) -> torch.nn.Module:
    init = dict(type="Pretrained", checkpoint=str(GOLDEN / "state_dict.pt"), prefix="backbone.")
    backbone = _adapter(init_cfg=init, **kwargs)
    backbone.init_weights()
    return backbone.eval()


def _load(name: str) -> object:
    return torch.load(GOLDEN / name, map_location="cpu", weights_only=True)


def _rel_l2(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).norm() / reference.double().norm())


def test_the_original_detector_checkpoint_loads_every_key() -> None:
    backbone = _golden()
    checkpoint = {k.removeprefix("backbone."): v for k, v in _load("state_dict.pt")["state_dict"].items()}
    assert set(backbone.state_dict()) == set(checkpoint)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_the_levels_are_the_original_codes(dtype: torch.dtype) -> None:
    backbone = _golden().to(dtype)
    expected = _load("output.pt" if dtype == torch.float32 else "output_fp64.pt")
    with torch.no_grad(), contextlib.ExitStack() as stack:
        if dtype == torch.float64:  # float64 on the reference backend, float32 on the automatic one (GOLDEN.md)
            stack.enter_context(kernels.use_backend("reference"))
        levels = backbone(_load("input.pt").to(dtype))
    assert [tuple(level.shape) for level in levels] == [tuple(e.shape) for e in expected]
    for level, reference in zip(levels, expected):
        assert level.dtype == dtype
        assert _rel_l2(level, reference) <= RTOL[dtype]


def test_out_indices_pick_levels_and_leave_out_the_stride_4_modules() -> None:
    full = _golden()
    retina = _golden(out_indices=(1, 2, 3))  # the full detector checkpoint loads: its level-0 modules are skipped
    assert retina.out_strides == [8, 16, 32] and retina.out_channels == [16] * 3
    assert not any(k.startswith(("up.", "spm.fc1.", "ad_norm1.")) for k in retina.state_dict())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = full(x)[1:]
        levels = retina(x)
    for level, reference in zip(levels, expected):
        torch.testing.assert_close(level, reference)


def test_an_imagenet_checkpoint_loads_the_network_and_leaves_the_adapter_fresh() -> None:
    classifier = FIXTURES / "plainmamba_test" / "state_dict.pt"  # the mmcls classifier at D 32, depth 2
    fresh = _adapter(embed_dim=32, deform_num_heads=4)
    backbone = _adapter(embed_dim=32, deform_num_heads=4,
                        init_cfg=dict(type="Pretrained", checkpoint=str(classifier), prefix="backbone."))
    backbone.init_weights()
    weights = torch.load(classifier, map_location="cpu", weights_only=True)
    weights = weights.get("state_dict", weights)
    torch.testing.assert_close(backbone.layers[1].mamba.A_log, weights["backbone.layers.1.mamba.A_log"])
    assert backbone.level_embed.shape == fresh.level_embed.shape == (3, 32)
    assert torch.equal(backbone.interactions[0].injector.gamma, torch.zeros(32))  # the original's init_values=0


def test_frozen_stages_freeze_the_network_stem_and_layers_not_the_adapter() -> None:
    backbone = _adapter(frozen_stages=1)
    frozen = {name for name, param in backbone.named_parameters() if not param.requires_grad}
    assert frozen and all(name.startswith(("patch_embed.", "pos_embed", "layers.0.")) for name in frozen)
    assert any(name.startswith("layers.0.") for name in frozen)
    backbone.train()
    assert not backbone.patch_embed.training and backbone.spm.training


def test_gradients_reach_every_parameter_of_the_levels_returned() -> None:
    backbone = _adapter(out_indices=(1, 2, 3))
    backbone.train()
    sum(level.square().mean() for level in backbone(torch.randn(2, 3, 64, 64))).backward()
    assert [name for name, param in backbone.named_parameters() if param.grad is None] == []


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(interaction_indexes=[[0, 0]]), "covering all 2 layers"),
    (dict(interaction_indexes=[[1, 1], [0, 0]]), "consecutive from 0"),
    (dict(interaction_indexes=[[0, 2]]), "consecutive from 0"),
    (dict(interaction_indexes=[[0, 1, 2]]), "first, last"),
    (dict(deform_num_heads=3), "divisor of test_plainmamba's width 16"),
    (dict(out_indices=(4,)), "out_indices"),
    (dict(out_norm=True), "ad_norm"),
])
def test_bad_settings_fail_at_build(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _adapter(**kwargs)


def test_sides_not_multiples_of_32_are_refused() -> None:
    with pytest.raises(ValueError, match=r"multiples of 32.*got \(64, 80\)"):
        _adapter()(torch.randn(1, 3, 64, 80))

"""PlainMamba for dense prediction (`PlainMambaBackbone`, the original's `PlainMambaSeg`): the golden fixture's
official checkpoint loads, and the maps are the layer outputs through `norm_layer{i}` (LayerNorm, eps 1e-6) or, at
the last layer, through the final norm; a segmentor's checkpoint (`backbone.norm_layer{i}` beside the heads) loads
its out norms. Every config in configs/plainmamba builds and trains an iteration in tests/mm/test_mm_configs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmengine.registry import MODELS

import vssm.mm  # noqa: F401  (registers the backbones)
from vssm.models.plainmamba import checkpoint_filter_fn

pytestmark = pytest.mark.mm

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "plainmamba_test"


def _backbone(**kwargs) -> torch.nn.Module:
    return MODELS.build(dict(type="PlainMambaBackbone", model="test_plainmamba", depth=2, **kwargs))


def test_the_maps_are_the_layer_outputs_through_their_norms() -> None:
    backbone = _backbone(out_indices=(0, 1), init_cfg=dict(type="Pretrained", checkpoint=str(FIXTURE / "state_dict.pt"),
                                                 prefix="backbone."))
    backbone.init_weights()
    backbone.eval()
    classifier = timm.create_model("test_plainmamba", depth=2).eval()
    checkpoint = torch.load(FIXTURE / "state_dict.pt", weights_only=True)
    classifier.load_state_dict(checkpoint_filter_fn(checkpoint, classifier))
    x = torch.load(FIXTURE / "input.pt", weights_only=True)
    with torch.no_grad():
        first, last = classifier.forward_intermediates(x, indices=[0, 1], output_fmt="NLC", intermediates_only=True)
        maps = backbone(x)
    norm0 = backbone.norm_layer0
    expected0 = F.layer_norm(first, (32,), norm0.weight, norm0.bias, eps=1e-6).transpose(1, 2).reshape(2, 32, 4, 4)
    expected1 = classifier.norm(last).transpose(1, 2).reshape(2, 32, 4, 4)
    torch.testing.assert_close(maps[0], expected0)
    torch.testing.assert_close(maps[1], expected1)
    assert not any(k.startswith("norm_layer1.") for k in backbone.state_dict())  # the final norm serves layer 1


def test_a_segmentor_checkpoint_loads_its_out_norms(tmp_path: Path) -> None:
    source = _backbone(out_indices=(0, 1))
    for param in source.parameters():
        param.data.normal_()
    weights = {f"backbone.{k}": v for k, v in source.state_dict().items()}
    weights = {("backbone.ln1." + k[len("backbone.norm."):] if k.startswith("backbone.norm.") else k): v
               for k, v in weights.items()}
    weights["decode_head.conv_seg.weight"] = torch.randn(150, 512, 1, 1)
    file = tmp_path / "l1_upernet.pth"
    torch.save({"meta": {"iter": 160000}, "state_dict": weights}, file)
    loaded = _backbone(out_indices=(0, 1), init_cfg=dict(type="Pretrained", checkpoint=str(file), prefix="backbone."))
    loaded.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_the_final_norm_is_pruned_without_an_output_at_the_last_layer() -> None:
    backbone = _backbone(out_indices=(0,), init_cfg=dict(type="Pretrained", checkpoint=str(FIXTURE / "state_dict.pt"),
                                                 prefix="backbone."))
    backbone.init_weights()
    assert not any(k.startswith("norm.") for k in backbone.state_dict())
    assert backbone.norm_layer0.eps == 1e-6

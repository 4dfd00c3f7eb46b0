"""ViTDet's SimpleFPN neck and its LN2d norm (vssm/mm/simple_fpn.py, layer_norm_2d.py): output shapes and strides,
mmdet's parameter names, the norm against its formula, and clear errors for what the neck cannot take."""

from __future__ import annotations

import pytest
import torch
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks.norm import infer_abbr
from mmengine.registry import MODELS
from torch import nn

from vssm.mm import LN2d, SimpleFPN

pytestmark = pytest.mark.mm

NORM = dict(type="LN2d", requires_grad=True)


def _neck(channels: int = 32, out_channels: int = 16, num_outs: int = 5) -> SimpleFPN:
    return MODELS.build(dict(type="SimpleFPN", backbone_channel=channels,
                             in_channels=[channels // 4, channels // 2, channels, channels],
                             out_channels=out_channels, num_outs=num_outs, norm_cfg=NORM))


@pytest.mark.parametrize(("height", "width", "num_outs"), [(8, 8, 5), (6, 10, 5), (7, 5, 6), (4, 4, 4)])
def test_levels_have_the_vitdet_strides(height: int, width: int, num_outs: int) -> None:
    """A (B, C, H/16, W/16) map -> strides 4, 8, 16, 32, then each extra level halves (rounding up)."""
    neck = _neck(num_outs=num_outs)
    outs = neck(torch.randn(2, 32, height, width))
    sizes = [(height * 4, width * 4), (height * 2, width * 2), (height, width), (height // 2, width // 2)]
    while len(sizes) < num_outs:
        sizes.append((-(-sizes[-1][0] // 2), -(-sizes[-1][1] // 2)))
    assert [tuple(o.shape) for o in outs] == [(2, 16, h, w) for h, w in sizes]
    assert all(torch.isfinite(o).all() for o in outs)


def test_takes_a_backbones_tuple_of_one_map() -> None:
    neck = _neck().eval()
    x = torch.randn(1, 32, 4, 6)
    for a, b in zip(neck(x), neck((x,))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_extra_levels_subsample_the_last() -> None:
    outs = _neck(num_outs=6).eval()(torch.randn(1, 32, 8, 8))
    torch.testing.assert_close(outs[4], outs[3][:, :, ::2, ::2], rtol=0, atol=0)
    torch.testing.assert_close(outs[5], outs[4][:, :, ::2, ::2], rtol=0, atol=0)


def test_parameter_names_are_mmdets_vitdet() -> None:
    """mmdet's projects/ViTDet SimpleFPN: fpn1 = ConvT, LN2d, GELU, ConvT; fpn2 = ConvT; ConvModules with their norm
    under the name mmcv gives ViTDet's LN2d (a plain nn.Module named LN2d)."""
    vitdet_ln2d = type("LN2d", (nn.Module,), {})
    norm = infer_abbr(vitdet_ln2d)
    assert infer_abbr(LN2d) == norm == "norm_layer"
    c, out = 32, 16
    shapes = {
        "fpn1.0.weight": (c, c // 2, 2, 2), "fpn1.0.bias": (c // 2,),
        "fpn1.1.weight": (c // 2,), "fpn1.1.bias": (c // 2,),
        "fpn1.3.weight": (c // 2, c // 4, 2, 2), "fpn1.3.bias": (c // 4,),
        "fpn2.0.weight": (c, c // 2, 2, 2), "fpn2.0.bias": (c // 2,),
    }  # fmt: skip
    for i, level in enumerate([c // 4, c // 2, c, c]):
        shapes[f"lateral_convs.{i}.conv.weight"] = (out, level, 1, 1)  # no conv bias before a norm
        shapes[f"fpn_convs.{i}.conv.weight"] = (out, out, 3, 3)
        for conv in ("lateral_convs", "fpn_convs"):
            shapes[f"{conv}.{i}.{norm}.weight"] = shapes[f"{conv}.{i}.{norm}.bias"] = (out,)
    state = _neck(c, out).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == shapes


def test_ln2d_is_a_channel_layer_norm() -> None:
    """Built by mmcv (as in the neck and heads) it gets mmcv's eps 1e-5, as ViTDet's class does there."""
    assert LN2d(6).eps == 1e-6
    norm = build_norm_layer(NORM, 6)[1].double()
    assert isinstance(norm, LN2d) and norm.eps == 1e-5
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    mean = x.mean(1, keepdim=True)
    var = x.var(1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight[:, None, None] + norm.bias[:, None, None]
    torch.testing.assert_close(norm(x), expected)


def test_conv_module_names_its_ln2d_norm_layer() -> None:
    conv = ConvModule(4, 8, 3, padding=1, norm_cfg=NORM)
    assert conv.norm_name == "norm_layer" and isinstance(conv.norm_layer, LN2d) and conv.conv.bias is None


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(backbone_channel=30, in_channels=[7, 15, 30, 30]), "backbone_channel"),
    (dict(backbone_channel=32, in_channels=[8, 16, 32]), "in_channels"),
    (dict(backbone_channel=32, in_channels=[8, 16, 32, 32], num_outs=3), "num_outs"),
    (dict(backbone_channel=32, in_channels=[8, 16, 32, 32], norm_cfg=None), "norm_cfg"),
])  # fmt: skip
def test_bad_config_is_a_value_error(kwargs: dict, match: str) -> None:
    cfg = dict(out_channels=16, num_outs=5, norm_cfg=NORM) | kwargs
    with pytest.raises(ValueError, match=match):
        SimpleFPN(**cfg)


def test_bad_input_is_a_clear_error() -> None:
    neck = _neck()
    with pytest.raises(ValueError, match="one backbone map"):
        neck((torch.randn(1, 32, 4, 4), torch.randn(1, 32, 4, 4)))
    with pytest.raises(ValueError, match=r"\(B, 32, H, W\)"):
        neck(torch.randn(1, 16, 4, 4))
    with pytest.raises(TypeError, match="tensor"):
        neck({"x": torch.randn(1, 32, 4, 4)})

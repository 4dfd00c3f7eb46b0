"""Inputs every family takes alike: an empty batch gives empty outputs of the right shapes on every entry point
(forward, forward_features, forward_intermediates, features_only), and an image tensor of the wrong dtype is one
TypeError naming the dtype expected and the one given, the same message for every family."""

from __future__ import annotations

import re

import pytest
import timm
import torch
from torch import nn

import vssm
from vssm.models.umamba import UMamba, UMambaPlan

TEST_VARIANTS = vssm.list_models("test_*")


def _input(model: nn.Module, batch: int) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"])


def _shapes(outputs: torch.Tensor | list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in ([outputs] if isinstance(outputs, torch.Tensor) else outputs)]


def _no_batch(shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    return [(0, *shape[1:]) for shape in shapes]


@pytest.mark.parametrize("name", TEST_VARIANTS)
@torch.inference_mode()
def test_an_empty_batch_gives_empty_outputs(name: str) -> None:
    model = timm.create_model(name, num_classes=5).eval()
    features = timm.create_model(name, features_only=True).eval()
    empty, two = _input(model, 0), _input(model, 2)
    for run in (model, model.forward_features, features,
                lambda x: model.forward_intermediates(x, intermediates_only=True)):
        assert _shapes(run(empty)) == _no_batch(_shapes(run(two)))
    assert model(empty).shape == (0, 5)


@torch.inference_mode()
def test_an_empty_batch_through_the_u_mamba_segmentation_network() -> None:
    plan = UMambaPlan(features_per_stage=(4, 8, 16), kernel_sizes=((3, 3),) * 3, strides=((1, 1), (2, 2), (2, 2)),
                      n_conv_per_stage=(1, 1, 1), n_conv_per_stage_decoder=(1, 1), patch_size=(16, 16))
    for placement in ("bot", "enc"):
        model = UMamba(plan, num_classes=3, in_chans=1, placement=placement).eval()
        assert model(torch.randn(0, 1, 16, 16)).shape == (0, 3, 16, 16)


@pytest.mark.parametrize("name", TEST_VARIANTS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_float_input_of_another_dtype_names_both(name: str, dtype: torch.dtype) -> None:
    model = timm.create_model(name).eval()
    message = f"expected an image tensor of the model's dtype torch.float32, got {dtype}"
    with pytest.raises(TypeError, match="^" + re.escape(message)):
        model(_input(model, 1).to(dtype))


@pytest.mark.parametrize("name", TEST_VARIANTS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8])
def test_an_integer_input_asks_for_a_float_one(name: str, dtype: torch.dtype) -> None:
    model = timm.create_model(name).eval()
    message = f"expected a floating-point image tensor (torch.float32, the model's dtype), got {dtype}"
    with pytest.raises(TypeError, match="^" + re.escape(message)):
        model.forward_features((_input(model, 1) * 100).to(dtype))


@pytest.mark.parametrize("name", TEST_VARIANTS)
@torch.inference_mode()
def test_the_dtypes_that_run(name: str) -> None:
    """float64 into a float64 model; under autocast, float32 and float16 input into a float32 model (autocast
    casts them), but not float64 (autocast leaves it, the convolution would fail)."""
    model = timm.create_model(name).eval()
    x = _input(model, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model(x)).all() and torch.isfinite(model(x.half())).all()
        with pytest.raises(TypeError, match=re.escape("model's dtype torch.float32, got torch.float64")):
            model(x.double())
    assert model.double()(x.double()).dtype == torch.float64


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_an_input_on_another_device_names_the_models_device_as_expected(name: str) -> None:
    model = timm.create_model(name, device="meta").eval()
    with pytest.raises(ValueError, match=r"expected an image tensor on the model's device meta, got one on cpu"):
        model(_input(model, 1))

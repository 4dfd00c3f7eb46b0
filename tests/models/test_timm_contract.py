"""The timm model contract, checked for every model vssm registers (timm 1.0.31's own model tests, adapted).

Every name gets the cheap checks (construction on the meta device, factory kwargs, config, parameter groups).
The forward/backward/feature checks run on the `test_*` variants and on the models small enough to run at their
default input size on a CPU (``RUN_LIMIT`` parameters).
"""

from __future__ import annotations

import math

import pytest
import timm
import torch
from timm.layers import get_channel_dim, get_spatial_dim

import vssm
from vssm.layers.token_routes import clear_token_routes_cache

ALL = vssm.list_models()
RUN_LIMIT = 32e6  # parameters; vim_small / vmamba_tiny / mambavision_tiny run at full size, bases only on meta


def _num_params_on_meta(name: str) -> int:
    model = timm.create_model(name, device="meta")
    return sum(p.numel() for p in model.parameters())


RUNNABLE = [name for name in ALL if name.startswith("test_") or _num_params_on_meta(name) <= RUN_LIMIT]
TEST_VARIANTS = [name for name in ALL if name.startswith("test_")]


def _input_size(model: torch.nn.Module, target: int | None = None) -> tuple[int, int, int]:
    """timm's rule: the default size, shrunk to ``target`` unless the model has a fixed or minimum size."""
    cfg = model.pretrained_cfg
    size = tuple(cfg["input_size"])
    if cfg.get("fixed_input_size") or target is None or max(size) <= target:
        return size
    if cfg.get("min_input_size"):
        return tuple(cfg["min_input_size"])
    return (size[0], *(min(s, target) for s in size[1:]))


def _output_width(model: torch.nn.Module) -> int:
    """timm's convention: a model built with num_classes=0 (a feature backbone) returns its pooled features."""
    return model.num_classes or model.num_features


def _classifier_names(cfg: dict) -> tuple[str, ...]:
    classifier = cfg["classifier"]
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


@pytest.mark.parametrize("name", ALL)
def test_builds_on_meta_device_with_factory_kwargs(name: str) -> None:
    model = timm.create_model(name, device="meta")
    assert all(p.device.type == "meta" for p in model.parameters()), "a parameter left the meta device"
    assert model.in_chans == 3
    bf16 = timm.create_model(name, device="meta", dtype=torch.bfloat16)
    floating = [p for p in bf16.parameters() if p.is_floating_point()]
    assert floating and all(p.dtype == torch.bfloat16 for p in floating), "dtype= was not honoured"


@pytest.mark.parametrize("name", ALL)
def test_unknown_constructor_kwarg_is_a_type_error(name: str) -> None:
    with pytest.raises(TypeError):
        timm.create_model(name, device="meta", definitely_not_an_argument=1)


@pytest.mark.parametrize("name", ALL)
def test_pretrained_cfg_names_real_weights_and_layers(name: str) -> None:
    model = timm.create_model(name, device="meta")
    cfg = model.pretrained_cfg
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct", "first_conv", "classifier", "license"):
        assert cfg.get(key) is not None, f"{name}: pretrained_cfg has no {key!r}"
    # timm's tag `untrained` marks architectures without released weights (U-Mamba is trained per dataset).
    if not name.startswith("test_") and cfg.get("tag") != "untrained":
        assert cfg.get("hf_hub_id") or cfg.get("url"), f"{name}: pretrained_cfg names no weight location"
    keys = model.state_dict().keys()
    first_conv = (cfg["first_conv"],) if isinstance(cfg["first_conv"], str) else cfg["first_conv"]
    for module in first_conv:
        assert f"{module}.weight" in keys, f"{name}: first_conv {module!r} is not a layer"
    if cfg.get("num_classes"):
        for module in _classifier_names(cfg):
            assert f"{module}.weight" in keys, f"{name}: classifier {module!r} is not a layer"


@pytest.mark.parametrize("name", ALL)
def test_parameter_groups_and_no_weight_decay_name_real_parameters(name: str) -> None:
    model = timm.create_model(name, device="meta")
    params = dict(model.named_parameters())
    for entry in model.no_weight_decay():
        assert entry in params or any(p.startswith(f"{entry}.") for p in params), f"no_weight_decay names {entry!r}"
    groups = timm.models.group_parameters(model, model.group_matcher(coarse=False))
    assert len(groups) > 1, f"{name}: group_matcher puts everything into one group"
    grouped = {p for group in groups.values() for p in group}
    assert grouped == set(params), f"{name}: group_matcher misses {sorted(set(params) - grouped)[:5]}"


@pytest.mark.parametrize("name", RUNNABLE)
def test_forward_and_grad_checkpointing_agree(name: str) -> None:
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(model))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, _output_width(model))
        assert torch.isfinite(out).all()
        model.set_grad_checkpointing(True)
        torch.testing.assert_close(model(x), out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_backward_reaches_every_parameter(name: str) -> None:
    model = timm.create_model(name, num_classes=42).train()
    x = torch.randn(2, *_input_size(model, target=128))
    out = model(x)
    assert out.shape == (2, 42)
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_trains_after_inference_mode(name: str) -> None:
    """Evaluation under torch.inference_mode between training steps (as timm's and mmengine's loops do) must leave
    nothing behind that autograd refuses later, such as route tables cached as inference tensors."""
    model = timm.create_model(name)
    x = torch.randn(2, *_input_size(model, target=128))
    clear_token_routes_cache()  # so that the inference-mode pass builds the tables it uses
    with torch.inference_mode():
        model.eval()(x)
    model.train()(x).mean().backward()


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_bf16_autocast_trains_close_to_float32(name: str) -> None:
    """Mixed precision, as timm's train script runs it: forward and backward under bf16 autocast (the scan's inputs
    come out of float32 convolutions and bf16 projections and must meet in one dtype).

    How far bf16 may move the logits depends on the network: measured by how far the float32 network moves when only
    its input is rounded to bf16 (U-Mamba Enc's Mamba layers have no residual and feed InstanceNorms, which rescale
    their small outputs together with their rounding: 8e-2 there, <= 3e-3 for the other test variants).
    """
    model = timm.create_model(name, drop_path_rate=0.0).eval()
    x = torch.randn(2, *_input_size(model, target=128))
    with torch.no_grad():
        reference = model(x)
        sensitivity = (model(x.bfloat16().float()) - reference).norm() / reference.norm()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().square().mean().backward()
    error = (out.float() - reference).norm() / reference.norm()
    bound = 2e-2 + 4 * sensitivity
    assert error < bound, f"bf16 autocast logits differ from float32 by {error:.2e} (bound {bound:.2e})"
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_backward_with_grad_checkpointing_matches(name: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, drop_path_rate=0.0).train()
    x = torch.randn(2, *_input_size(model, target=128))
    model(x).square().mean().backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.set_grad_checkpointing(True)
    model(x).square().mean().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], rtol=1e-4, atol=1e-6, msg=f"gradient of {n} differs")


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_forward_features_head_and_reset_classifier(name: str) -> None:
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(model))
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        assert pre_logits.shape == (1, model.head_hidden_size)
        torch.testing.assert_close(model.forward_head(features), model(x))
        model.reset_classifier(0)
        assert model.num_classes == 0 and model.get_classifier() is not None
        pooled = model(x)
        torch.testing.assert_close(pooled, pre_logits)
        model.reset_classifier(7, global_pool=None)
        assert model(x).shape == (1, 7)
        assert model.get_classifier().out_features == 7


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_features_only_matches_feature_info(name: str) -> None:
    model = timm.create_model(name, features_only=True).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    size = _input_size(model, target=128)
    with torch.no_grad():
        outputs = model(torch.randn(1, *size))
    assert len(outputs) == len(channels) >= 3
    fmt = getattr(model, "output_fmt", "NCHW")
    for c, r, o in zip(channels, reductions, outputs):
        assert o.shape[get_channel_dim(fmt)] == c
        for axis, extent in zip(get_spatial_dim(fmt), size[1:]):
            assert o.shape[axis] <= math.ceil(extent / r) + 1
        assert torch.isfinite(o).all()


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_forward_intermediates_and_pruning(name: str) -> None:
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(model))
    with torch.no_grad():
        features = model.forward_features(x)
        final, intermediates = model.forward_intermediates(x, output_fmt="NCHW")
        torch.testing.assert_close(final, features)
        assert intermediates and all(t.ndim == 4 and t.shape[0] == 1 for t in intermediates)
        only_last = model.forward_intermediates(x, indices=1, intermediates_only=True)
        assert len(only_last) == 1
        torch.testing.assert_close(only_last[0], intermediates[-1])
        kept = model.prune_intermediate_layers(indices=1, prune_head=True)
        assert kept == [len(intermediates) - 1]
        pruned = model.forward_intermediates(x, indices=1, intermediates_only=True)
        torch.testing.assert_close(pruned[0], intermediates[-1])


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_in_chans_and_wrong_channel_count(name: str) -> None:
    model = timm.create_model(name, in_chans=1).eval()
    assert model.in_chans == 1
    size = _input_size(model)
    with torch.no_grad():
        assert model(torch.randn(1, 1, *size[1:])).shape == (1, _output_width(model))
        with pytest.raises(ValueError, match="channel"):
            model(torch.randn(1, 3, *size[1:]))

"""vssm's own checks of the timm model contract, beyond timm's model test suite (which runs over our registry in
test_timm_suite.py): factory dtype, config completeness, parameter groups that cover every parameter, training after
inference mode, mixed precision, gradient checkpointing's gradients, numerically consistent heads, `in_chans`,
NaN propagation, `out_indices`, FX feature extraction through torchvision's plain tracer, the meta device.
"""

from __future__ import annotations

import pytest
import timm
import torch
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

import vssm
from vssm import kernels, scans

ALL = vssm.list_models()
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




@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_trains_after_inference_mode(name: str) -> None:
    """Evaluation under torch.inference_mode between training steps (as timm's and mmengine's loops do) must leave
    nothing behind that autograd refuses later, such as route tables cached as inference tensors."""
    model = timm.create_model(name)
    x = torch.randn(2, *_input_size(model, target=128))
    scans.clear_route_cache()  # so that the inference-mode pass builds the tables it uses
    with torch.inference_mode():
        model.eval()(x)
    model.train()(x).mean().backward()


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_bf16_autocast_trains_close_to_float32(name: str) -> None:
    """Mixed precision, as timm's train script runs it: forward and backward under bf16 autocast (the scan's inputs
    come out of float32 convolutions and bf16 projections and must meet in one dtype).

    How far bf16 may move the logits depends on the network: measured by how far the float32 network moves when only
    its input is rounded to bf16 (`sensitivity`). Autocast also rounds the input of every convolution and projection,
    which moved the logits 2.4-7.4x the sensitivity (every test variant, seeds 0-2); the 2e-2 floor covers that where
    the sensitivity is small (<= 3.4e-3). Only U-Mamba Enc's is large, 7e-2 to 8e-2: its float32 network amplifies a
    perturbation, each Mamba layer multiplying the relative error of its input by 1.7-2.3 (no residual: the Mamba
    output, 2-10 % of the input's norm, replaces the map). There bf16 moves the logits 2.4-3.1x the sensitivity
    (about 0.2), and the original U-Mamba run under the same autocast on the golden weights moves as far
    (model_cards/umamba.md).
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
def test_in_chans_and_wrong_channel_count(name: str) -> None:
    model = timm.create_model(name, in_chans=1).eval()
    assert model.in_chans == 1
    size = _input_size(model)
    with torch.no_grad():
        assert model(torch.randn(1, 1, *size[1:])).shape == (1, _output_width(model))
        with pytest.raises(ValueError, match="channel"):
            model(torch.randn(1, 3, *size[1:]))


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_a_nan_in_stays_a_nan_out(name: str) -> None:
    # Nothing on the way (the scan backends, masked or padded routes, norms) may turn a NaN into a number.
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(model))
    x[0, 0, x.shape[2] // 2, x.shape[3] // 3] = float("nan")
    with torch.no_grad():
        assert torch.isnan(model(x)).any()


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_features_only_takes_out_indices(name: str) -> None:
    """The call every detection user makes: `out_indices=` with `features_only=True` (a TypeError before)."""
    full = timm.create_model(name, features_only=True).eval()
    model = timm.create_model(name, features_only=True, out_indices=(1, 2)).eval()
    assert model.feature_info.channels() == full.feature_info.channels()[1:3]
    x = torch.randn(1, *_input_size(model))
    with torch.no_grad():
        maps = model(x)
    assert [m.shape[1] for m in maps] == model.feature_info.channels()


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_torchvision_feature_extractor_traces_with_its_plain_tracer(name: str) -> None:
    """torchvision's `create_feature_extractor` without timm's tracer settings: the graph computes what the model does,
    owns every parameter (trains them), and still checks its input."""
    model = timm.create_model(name).eval()
    x = torch.randn(2, *_input_size(model))
    _, eval_nodes = get_graph_node_names(model)
    traced = create_feature_extractor(model, return_nodes={eval_nodes[-1]: "out"})
    assert {n for n, _ in traced.named_parameters()} == {n for n, _ in model.named_parameters()}
    with torch.no_grad():
        torch.testing.assert_close(traced(x)["out"], model(x))
        with pytest.raises(ValueError, match="channel"):
            traced(torch.randn(1, model.in_chans + 1, *x.shape[2:]))


@pytest.mark.parametrize("backend", list(kernels.Backend))
@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_runs_on_the_meta_device_whatever_backend(name: str, backend: kernels.Backend) -> None:
    model = timm.create_model(name, device="meta").eval()
    x = torch.randn(2, *_input_size(model), device="meta")
    with kernels.use_backend(backend):
        out = model(x)
        maps = model.forward_intermediates(x, intermediates_only=True)
    assert out.device.type == "meta" and out.shape == (2, _output_width(model))
    assert maps and all(m.device.type == "meta" and m.shape[0] == 2 for m in maps)


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_reset_classifier_keeps_the_models_mode(name: str) -> None:
    model = timm.create_model(name, device="meta")
    for training in (False, True):
        model.train(training)
        model.reset_classifier(3)
        assert all(m.training == training for m in model.modules()), f"train({training}) lost by reset_classifier"

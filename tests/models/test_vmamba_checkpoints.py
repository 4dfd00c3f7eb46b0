"""Official VMamba checkpoints load strictly; a checkpoint of another variant fails naming both variants.

The official key layouts are written here from the original's key table (the spec, section 4), independently of
our model's own state dict: the released v2 and v0 layouts, the legacy v0 names, 4-D weights of the 1×1 layers and
the one-file `vmamba.py` grouped projections, inside training-checkpoint dicts with a yacs config.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import timm
import torch
from golden import assert_matches, load_golden
from vmamba_official import ALIASES, RELEASED, TENSOR_COUNTS, Shapes, official_shapes
from yacs.config import CfgNode

from vssm.checkpoints import read_checkpoint
from vssm.models.vmamba import checkpoint_filter_fn, describe_checkpoint

# ----------------------------------------------------------------------------- the released layouts, as transforms

StateDict = dict[str, torch.Tensor]


def released(sd: StateDict) -> StateDict:
    return dict(sd)


def legacy_v0_names(sd: StateDict) -> StateDict:
    """The names of the early v0 training code, which the original's `_load_from_state_dict` renames."""
    out = {}
    for key, value in sd.items():
        key = key.replace("patch_embed.0.", "patch_embed.proj.").replace("patch_embed.2.", "patch_embed.norm.")
        key = key.replace(".op.", ".self_attention.")
        if key.startswith("layers.") and ".blocks." in key and ".norm." in key and "out_norm" not in key:
            key = key.replace(".norm.", ".ln_1.")
        key = key.replace("classifier.norm.", "norm.").replace("classifier.head.", "head.")
        out[key] = value
    return out


def conv_weights_1x1(sd: StateDict) -> StateDict:
    """1×1 layers saved as convolutions: (out, in) -> (out, in, 1, 1)."""
    linear = ("in_proj.weight", "out_proj.weight", "fc1.weight", "fc2.weight", "reduction.weight")
    return {k: v[..., None, None] if k.endswith(linear) else v for k, v in sd.items()}


def one_file_grouped(sd: StateDict) -> StateDict:
    """The one-file `vmamba.py`: grouped `x_proj` / `dt_projs` Linear modules instead of stacked parameters."""
    out = {}
    for key, value in sd.items():
        if key.endswith("op.x_proj_weight"):
            out[key.replace("x_proj_weight", "x_proj.weight")] = value.reshape(-1, value.shape[-1])
        elif key.endswith("op.dt_projs_weight"):
            out[key.replace("dt_projs_weight", "dt_projs.weight")] = value.reshape(-1, value.shape[-1])
        else:
            out[key] = value
    return out


LAYOUTS: dict[str, Callable[[StateDict], StateDict]] = {
    "released": released,
    "legacy_v0_names": legacy_v0_names,
    "conv_weights_1x1": conv_weights_1x1,
    "one_file_grouped": one_file_grouped,
}


def training_checkpoint(model: StateDict, ema: StateDict | None = None) -> dict:
    """What the original's `save_checkpoint` writes: weights, EMA weights, optimizer state and a yacs config."""
    config = CfgNode()
    config.MODEL = CfgNode()
    config.MODEL.TYPE = "vssm"
    config.AMP_ENABLE = True
    checkpoint = {"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}, "lr_scheduler": {},
                  "max_accuracy": 82.6, "scaler": {"scale": 65536.0}, "epoch": 264, "config": config}
    if ema is not None:
        checkpoint["model_ema"] = ema
    return checkpoint


# ------------------------------------------------------------------------------------------------------- tests


def _meta_checkpoint(shapes: Shapes) -> StateDict:
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


def _layouts(v0: bool) -> list[str]:
    """The layouts a checkpoint of this kind was released in (the legacy names exist only for v0)."""
    return sorted(LAYOUTS) if v0 else sorted(set(LAYOUTS) - {"legacy_v0_names"})


@pytest.mark.parametrize(
    ("name", "layout"),
    [(name, layout) for name in [*RELEASED, *ALIASES] for layout in _layouts(RELEASED[ALIASES.get(name, name)][-1])],
)
def test_every_released_layout_loads_strictly_into_its_variant(name: str, layout: str) -> None:
    spec = RELEASED[ALIASES.get(name, name)]
    shapes = official_shapes(*spec)
    assert len(shapes) == TENSOR_COUNTS[ALIASES.get(name, name)]
    model = timm.create_model(name, device="meta")
    state_dict = checkpoint_filter_fn({"model": LAYOUTS[layout](_meta_checkpoint(shapes))}, model)
    model.load_state_dict(state_dict, strict=True, assign=True)


@pytest.mark.parametrize(
    ("fixture", "layout"),
    [(f, layout) for f in ("vmamba_test_s1l8", "vmamba_test_v0") for layout in _layouts(f.endswith("v0"))],
)
def test_converted_layouts_give_the_original_outputs(fixture: str, layout: str) -> None:
    """The conversions move the right elements: the golden fixture written in each layout gives its output."""
    golden = load_golden(fixture)
    v0 = fixture.endswith("v0")
    name = "vmamba_tiny_v0" if v0 else "test_vmamba"
    model = timm.create_model(name, depths=(1, 1, 2, 1), dims=16).eval()
    checkpoint = training_checkpoint(LAYOUTS[layout](golden.state_dict))
    model.load_state_dict(checkpoint_filter_fn(checkpoint, model), strict=True)
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, f"{fixture} via {layout}")


def test_pretrained_file_loads_a_training_checkpoint_weights_only(tmp_path) -> None:
    """An official training checkpoint (yacs config inside) through `pretrained=True`: read weights-only by our
    loader (`custom_load`, what the registry URLs use), taking 'model', not the EMA copy."""
    golden = load_golden("vmamba_test_s1l8")
    ema = {k: v + 0.1 * torch.randn_like(v) for k, v in golden.state_dict.items()}
    path = tmp_path / "vssm1_tiny_ckpt_epoch_1.pth"
    torch.save(training_checkpoint(golden.state_dict, ema), path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=True)
    assert isinstance(read_checkpoint(path)["config"], dict)
    overlay = dict(file=str(path), custom_load=True)  # timm resets custom_load for a user-given file unless set

    model = timm.create_model("test_vmamba", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, "pretrained training checkpoint")
    # other heads and input channels: the body loads, the head is new, the first conv is adapted
    model = timm.create_model("test_vmamba", pretrained=True, num_classes=5, in_chans=1, pretrained_cfg_overlay=overlay)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 5)
    expected = golden.state_dict["layers.2.blocks.1.op.A_logs"]
    torch.testing.assert_close(model.state_dict()["layers.2.blocks.1.op.A_logs"], expected)
    features = timm.create_model("test_vmamba", pretrained=True, features_only=True, pretrained_cfg_overlay=overlay)
    with torch.no_grad():
        stages = features(golden.input)
    for ours, ref in zip(stages, golden.features["stages"]):
        assert_matches(ours, ref, "features_only from a pretrained file")


def test_pretrained_file_with_timms_own_loader(tmp_path) -> None:
    """A weights-only file ({'model': ...}, legacy names) through timm's default loader and our filter."""
    golden = load_golden("vmamba_test_v0")
    path = tmp_path / "vssmtiny_weights.pth"
    torch.save({"model": legacy_v0_names(golden.state_dict)}, path)
    model = timm.create_model("vmamba_tiny_v0", depths=(1, 1, 2, 1), dims=16, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, "pretrained weights file")


# (checkpoint's variant, model's variant): the original repo's most reported mix-ups (VMamba#20, #56, #205, #238)
MIXUPS = [
    ("vmamba_tiny_s1l8", "vmamba_tiny_s2l5"),
    ("vmamba_tiny_s2l5", "vmamba_tiny_s1l8"),
    ("vmamba_tiny_v0", "vmamba_tiny_s1l8"),
    ("vmamba_small_s2l15", "vmamba_small_s1l20"),
    ("vmamba_base_s2l15", "vmamba_small_s2l15"),
]


@pytest.mark.parametrize(("source", "target"), MIXUPS)
def test_checkpoint_of_another_variant_is_a_clear_error(source: str, target: str) -> None:
    model = timm.create_model(target, device="meta")
    checkpoint = {"model": _meta_checkpoint(official_shapes(*RELEASED[source]))}
    with pytest.raises(ValueError, match=f"does not fit {target}") as error:
        checkpoint_filter_fn(checkpoint, model)
    message = str(error.value)
    assert f"= {source}" in message, message  # names the variant the checkpoint is from
    assert "(checkpoint vs model)" in message or "missing" in message, message  # the first differing keys


def test_describe_checkpoint_reads_the_architecture() -> None:
    arch = describe_checkpoint(_meta_checkpoint(official_shapes(*RELEASED["vmamba_small_s1l20"])))
    assert arch["depths"] == (2, 2, 20, 2) and arch["dims"] == (96, 192, 384, 768)
    assert arch["d_state"] == 1 and arch["expand"] == 1.0 and arch["mlp_ratio"] == 4.0 and arch["num_routes"] == 4
    arch = describe_checkpoint(_meta_checkpoint(official_shapes(*RELEASED["vmamba_base_v0"])))
    assert arch["form"].name == "V0" and arch["d_state"] == 16 and arch["expand"] == 2.0 and arch["mlp_ratio"] == 0


def test_every_registered_vmamba_has_a_release() -> None:
    names = set(timm.list_models(module="vmamba")) - {"test_vmamba"}  # not other families' *vmamba* (msvmamba)
    assert names == set(RELEASED) | set(ALIASES)
    for name in names:
        cfg = timm.create_model(name, device="meta").pretrained_cfg
        assert cfg["url"].startswith("https://github.com/MzeroMiko/VMamba/releases/download/%23v")
        assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == 0.875

"""vssm.mm's backbones: registration, outputs, checkpoints (official classification and dense-wrapper layouts, checked
against the original code's stage maps), freezing, drop path, the layer-decay constructor and build-time errors."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from mm_tiny_data import one_cpu_thread  # noqa: F401  (autouse fixture)
from mmengine.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.runner import load_checkpoint
from timm.layers import DropPath, resample_abs_pos_embed
from torch import nn

from vssm.checkpoints import read_checkpoint, save_train_checkpoint
from vssm.mm import MambaVisionBackbone, UMambaBackbone, VimBackbone, VMambaBackbone, VSSMBackbone

pytestmark = pytest.mark.mm

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RTOL_FP32 = 1e-5  # the golden fixtures' acceptance rule (tests/fixtures/GOLDEN.md)

# (registered type, test variant, extra kwargs, input (C, H, W), channels, strides)
FAMILIES = [
    ("VMambaBackbone", "test_vmamba", {}, (3, 64, 64), [16, 32, 64, 128], [4, 8, 16, 32]),
    ("MSVMambaBackbone", "test_msvmamba", {}, (3, 64, 96), [16, 32, 64, 128], [4, 8, 16, 32]),
    ("GroupMambaBackbone", "test_groupmamba", {}, (3, 64, 96), [16, 32, 48, 64], [4, 8, 16, 32]),
    ("VimBackbone", "test_vim", {"pyramid_norm_cfg": dict(type="BN")}, (3, 64, 96), [64] * 4, [4, 8, 16, 32]),
    ("MambaVisionBackbone", "test_mambavision", {}, (3, 64, 64), [16, 32, 64, 128], [4, 8, 16, 32]),
    ("UMambaBackbone", "test_umamba_bot_2d", {}, (1, 64, 64), [8, 16, 32, 64], [1, 2, 4, 8]),
    ("PlainMambaBackbone", "test_plainmamba", {}, (3, 64, 96), [32] * 4, [16] * 4),
    ("PlainMambaAdapter", "test_plainmamba", {"deform_num_heads": 4, "norm_cfg": dict(type="BN")}, (3, 64, 96),
     [32] * 4, [4, 8, 16, 32]),
]


def _build(kind: str, model: str, **kwargs) -> VSSMBackbone:
    return MODELS.build(dict(type=kind, model=model, **kwargs))


def _rel_l2(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).norm() / reference.double().norm())


def _fixture(name: str) -> tuple[dict, torch.Tensor, dict | None]:
    """(the original-format checkpoint, the input, the original's stage maps or None)."""
    folder = FIXTURES / name
    load = lambda file: torch.load(folder / file, map_location="cpu", weights_only=True)  # noqa: E731
    features = load("features.pt") if (folder / "features.pt").is_file() else None
    return load("state_dict.pt"), load("input.pt"), features


# ---------------------------------------------------------------------------------------------------- registration


def test_import_registers_without_mmdet_or_mmseg() -> None:
    code = (
        "import sys, vssm\n"
        "assert not any(m.startswith(('mmengine', 'mmdet', 'mmseg', 'vssm.mm')) for m in sys.modules)\n"
        "import vssm.mm\n"
        "assert not any(m.startswith(('mmdet', 'mmseg')) for m in sys.modules), 'vssm.mm imported mmdet/mmseg'\n"
        "from mmengine.registry import MODELS\n"
        "print(' '.join(n for n in MODELS.module_dict if n.endswith('Backbone')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert set(out.split()) >= {"MambaVisionBackbone", "UMambaBackbone", "VMambaBackbone", "VimBackbone"}


def test_mmdet_and_mmseg_registries_find_them_through_their_parent() -> None:
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET_CONSTRUCTORS
    from mmseg.registry import MODELS as MMSEG_MODELS

    for registry in (MMDET_MODELS, MMSEG_MODELS):
        for cls in (VimBackbone, VMambaBackbone, MambaVisionBackbone, UMambaBackbone):
            assert registry.get(cls.__name__) is cls
    assert MMDET_CONSTRUCTORS.get("VSSMLayerDecayOptimizerConstructor") is OPTIM_WRAPPER_CONSTRUCTORS.get(
        "VSSMLayerDecayOptimizerConstructor")


@pytest.mark.parametrize(("kind", "model", "kwargs", "shape", "channels", "strides"), FAMILIES)
def test_outputs_and_flat_keys(kind: str, model: str, kwargs: dict, shape: tuple, channels: list,
                               strides: list) -> None:
    backbone = _build(kind, model, **kwargs)
    x = torch.randn(2, *shape)
    outs = backbone(x)
    assert isinstance(outs, tuple) and backbone.out_channels == channels and backbone.out_strides == strides
    for out, chs, stride in zip(outs, channels, strides):
        assert out.shape == (2, chs, shape[1] // stride, shape[2] // stride)
    sum(o.square().mean() for o in outs).backward()
    assert [n for n, p in backbone.named_parameters() if p.grad is None] == []
    keys = list(backbone.state_dict())
    assert not any(k.startswith(("_net", "model.", "net.")) for k in keys)  # the original wrappers' flat layout
    assert any(k.startswith("outnorm0.") for k in keys) == (kind in ("VMambaBackbone", "MSVMambaBackbone",
                                                                 "GroupMambaBackbone", "MambaVisionBackbone"))
    assert any(k.startswith("fpn1.") for k in keys) == (kind == "VimBackbone")


def test_vim_features_are_the_mixer_outputs_of_the_blocks() -> None:
    backbone = _build("VimBackbone", "test_vim", pyramid_norm_cfg=dict(type="BN")).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        mixer = backbone.network_features(x, (1, 2))
        # timm's forward_intermediates gives the residual stream r_i + h_i = r_{i+1}: consecutive differences are h_i
        stream = backbone._net.forward_intermediates(x, indices=[0, 1, 2], intermediates_only=True)
    for ours, i in zip(mixer, (1, 2)):
        assert _rel_l2(ours, stream[i] - stream[i - 1]) < 1e-5


# ---------------------------------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(("kind", "fixture", "variant", "ckpt_key"), [
    ("VMambaBackbone", "vmamba_test_s1l8", "test_vmamba", "model"),
    ("MSVMambaBackbone", "msvmamba_test", "test_msvmamba", "model"),
    ("MambaVisionBackbone", "mambavision_test", "test_mambavision", "state_dict"),
])
def test_original_detector_checkpoint_loads_and_matches_the_original_dense_wrapper(
    kind: str, fixture: str, variant: str, ckpt_key: str, tmp_path: Path
) -> None:
    """The originals' MM_VSSM / MM_mamba_vision layout (`backbone.layers...`, `backbone.outnorm{i}.*`, no classifier)
    loads with nothing missing or unexpected; the outputs are the original's stage maps through those out norms."""
    checkpoint, x, features = _fixture(fixture)
    network = {k: v for k, v in checkpoint[ckpt_key].items() if not k.startswith(("classifier.", "norm.", "head."))}
    gen = torch.Generator().manual_seed(0)
    outnorms = {f"outnorm{i}.{p}": torch.randn(stage.shape[1], generator=gen) for i, stage in
                enumerate(features["stages"]) for p in ("weight", "bias")}
    detector = {f"backbone.{k}": v for k, v in {**network, **outnorms}.items()}
    detector["neck.lateral_convs.0.conv.weight"] = torch.randn(4, 4)
    path = tmp_path / "detector.pth"
    torch.save({"state_dict": detector, "meta": {}}, path)

    backbone = _build(kind, variant, init_cfg=dict(type="Pretrained", checkpoint=str(path), prefix="backbone."))
    backbone.init_weights()
    backbone.eval()
    with torch.no_grad():
        outs = backbone(x)
    for i, (ours, stage) in enumerate(zip(outs, features["stages"])):
        expected = F.layer_norm(stage.permute(0, 2, 3, 1), stage.shape[1:2], outnorms[f"outnorm{i}.weight"],
                                outnorms[f"outnorm{i}.bias"], 1e-5).permute(0, 3, 1, 2)
        assert _rel_l2(ours, expected) <= RTOL_FP32, f"stage {i}"

    # The whole detector checkpoint into a module holding the backbone, as mmengine's `load_from` does it.
    holder = nn.Module()
    holder.backbone = _build(kind, variant)
    result = holder.load_state_dict({k: v for k, v in detector.items() if k.startswith("backbone.")}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    load_checkpoint(holder, str(path), strict=False)
    torch.testing.assert_close(holder.backbone.outnorm2.weight, outnorms["outnorm2.weight"], rtol=0, atol=0)


def test_detector_checkpoint_without_prefix_fails_with_a_hint(tmp_path: Path) -> None:
    checkpoint, _, _ = _fixture("vmamba_test_s1l8")
    path = tmp_path / "detector.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in checkpoint["model"].items()}}, path)
    backbone = _build("VMambaBackbone", "test_vmamba", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    with pytest.raises(ValueError, match=r"prefix='backbone\.'"):
        backbone.init_weights()


def test_official_classification_checkpoint_loads_outnorms_fresh(tmp_path: Path) -> None:
    checkpoint, _, _ = _fixture("vmamba_test_s1l8")
    path = tmp_path / "cls.pth"
    torch.save(checkpoint, path)  # {'model': ...} with the classifier, as the releases
    backbone = _build("VMambaBackbone", "test_vmamba", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    backbone.init_weights()
    expected = checkpoint["model"]["layers.2.blocks.1.op.A_logs"]
    torch.testing.assert_close(backbone.layers[2].blocks[1].op.A_logs, expected, rtol=0, atol=0)
    assert torch.equal(backbone.outnorm3.weight, torch.ones(128))  # not in the checkpoint: LayerNorm's init


def test_vssm_training_checkpoint_loads(tmp_path: Path) -> None:
    network = timm.create_model("test_mambavision")
    path = save_train_checkpoint(tmp_path / "last.pth", arch="test_mambavision", state_dict=network.state_dict(),
                                 state_dict_ema=network.state_dict(), epoch=3)  # tools/train_cls.py's format
    backbone = _build("MambaVisionBackbone", "test_mambavision", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    backbone.init_weights()
    torch.testing.assert_close(backbone.levels[3].blocks[1].mlp.fc2.weight, network.levels[3].blocks[1].mlp.fc2.weight)


def test_url_checkpoint_starts_offline_from_torch_hubs_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's offline start: a config's checkpoint URL is read from `$TORCH_HOME/hub/checkpoints/<the URL's file
    name>` when the file is there, without a download."""
    network = timm.create_model("test_vmamba")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save({"model": network.state_dict()}, cache / "vssm_test_ckpt_epoch_1.pth")

    def no_network(url: str, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"downloaded {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    url = "https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/vssm_test_ckpt_epoch_1.pth"
    backbone = _build("VMambaBackbone", "test_vmamba", init_cfg=dict(type="Pretrained", checkpoint=url))
    backbone.init_weights()
    torch.testing.assert_close(backbone.layers[3].blocks[0].op.A_logs, network.layers[3].blocks[0].op.A_logs)


def test_wrong_variant_checkpoint_names_both(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pth"
    torch.save({"model": timm.create_model("vmamba_tiny_s2l5").state_dict()}, path)
    backbone = _build("VMambaBackbone", "test_vmamba", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    with pytest.raises(ValueError, match=r"test_vmamba.*vmamba_tiny_s2l5.*unexpected"):
        backbone.init_weights()


def test_vim_middle_class_token_checkpoint_without_class_token_and_resampled(tmp_path: Path) -> None:
    checkpoint, _, _ = _fixture("vim_test")  # the original's 224 px layout: 196 grid entries + the middle cls slot
    path = tmp_path / "vim.pth"
    torch.save(checkpoint, path)
    backbone = _build("VimBackbone", "test_vim", depth=2, img_size=128, out_indices=(1,),
                      pyramid_norm_cfg=dict(type="BN"), init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    backbone.init_weights()
    pos = checkpoint["model"]["pos_embed"]
    grid = torch.cat([pos[:, :98], pos[:, 99:]], dim=1)  # slot 98 = the class token's, not slot 0
    torch.testing.assert_close(backbone.pos_embed, resample_abs_pos_embed(grid, [8, 8], [14, 14], num_prefix_tokens=0))
    assert "cls_token" not in dict(backbone.named_parameters())
    outs = backbone(torch.randn(1, 3, 96, 160))  # any padded size: the position embedding follows the grid
    assert [tuple(o.shape[-2:]) for o in outs] == [(24, 40), (12, 20), (6, 10), (3, 5)]


def test_umamba_nnunet_checkpoint_is_the_whole_network(tmp_path: Path) -> None:
    """The original's nnU-Net checkpoint (duplicated keys included) loads without its segmentation convs; the
    full-resolution decoder map through the original's last segmentation conv is the original's output."""
    checkpoint, x, _ = _fixture("umamba_bot_2d_test")
    path = tmp_path / "checkpoint_final.pth"
    torch.save(checkpoint, path)
    assert read_checkpoint(path).keys() == checkpoint.keys()
    backbone = _build("UMambaBackbone", "test_umamba_bot_2d", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    backbone.init_weights()
    backbone.eval()
    weights = checkpoint["network_weights"]
    with torch.no_grad():
        logits = F.conv2d(backbone(x)[0], weights["decoder.seg_layers.3.weight"], weights["decoder.seg_layers.3.bias"])
    expected = torch.load(FIXTURES / "umamba_bot_2d_test" / "output.pt", weights_only=True)
    assert _rel_l2(logits, expected) <= 2e-5  # GOLDEN.md: U-Mamba's float32 rounding on this plan is ~1e-5


# ---------------------------------------------------------------------------------------------------- training


def _train_step(module: nn.Module, x: torch.Tensor) -> None:
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1)
    sum(o.square().mean() for o in module(x)).backward()
    optimizer.step()


def test_frozen_stages_freeze_parameters_out_norms_and_batchnorm_statistics() -> None:
    backbone = _build("MambaVisionBackbone", "test_mambavision", frozen_stages=1)
    backbone.train()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    _train_step(backbone, torch.randn(2, 3, 64, 64))
    after = backbone.state_dict()
    frozen = ("patch_embed.", "levels.0.", "outnorm0.")
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        if key.startswith(frozen):
            assert not changed, f"{key} changed although frozen"
        elif key.endswith(("running_mean", "weight")) and key.startswith(("levels.1.", "levels.3.blocks.1.mlp")):
            assert changed, f"{key} did not train"
    assert not backbone.patch_embed.training and not backbone.levels[0].training and backbone.levels[1].training
    assert all(not p.requires_grad for n, p in backbone.named_parameters() if n.startswith(frozen))


def test_norm_eval_keeps_batchnorm_statistics_but_trains_their_weights() -> None:
    backbone = _build("MambaVisionBackbone", "test_mambavision", norm_eval=True)
    backbone.train()
    bn = backbone.levels[1].blocks[0].norm1
    stats, weight = bn.running_mean.clone(), bn.weight.clone()
    _train_step(backbone, torch.randn(2, 3, 64, 64))
    assert not bn.training and torch.equal(bn.running_mean, stats) and not torch.equal(bn.weight, weight)


def test_drop_path_rate_is_honoured() -> None:
    for kind, model in (("MambaVisionBackbone", "test_mambavision"), ("VMambaBackbone", "test_vmamba")):
        backbone = _build(kind, model, drop_path_rate=0.37)
        rates = [m.drop_prob for m in backbone.modules() if isinstance(m, DropPath)]
        assert rates and max(rates) == pytest.approx(0.37)


def test_with_cp_gives_the_same_outputs() -> None:
    torch.manual_seed(0)
    plain = _build("VMambaBackbone", "test_vmamba").eval()
    checkpointed = _build("VMambaBackbone", "test_vmamba", with_cp=True).eval()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(plain(x), checkpointed(x)):
        torch.testing.assert_close(a, b)


def test_the_network_runs_on_the_members_registered_in_the_backbone() -> None:
    """`to_empty` after a meta-device build (Vim's root `pos_embed`) and a swapped network child replace them in the
    backbone's registry only; the network runs on those, as a backbone loaded with the same weights does."""
    kwargs = dict(pyramid_norm_cfg=dict(type="BN"))
    with torch.device("meta"):
        backbone = _build("VimBackbone", "test_vim", **kwargs)
    backbone.to_empty(device="cpu").load_state_dict(_build("VimBackbone", "test_vim", **kwargs).state_dict())
    swapped = copy.deepcopy(backbone.patch_embed)
    with torch.no_grad():
        for param in swapped.parameters():
            param.copy_(torch.randn_like(param))
    backbone.patch_embed = swapped
    expected = _build("VimBackbone", "test_vim", **kwargs)
    expected.load_state_dict(backbone.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for ours, theirs in zip(backbone.eval()(x), expected.eval()(x)):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------- layer decay


def _decay_groups(rate: float, **paramwise) -> tuple[nn.Module, list[dict]]:
    model = nn.Module()
    model.backbone = _build("VimBackbone", "test_vim", pyramid_norm_cfg=dict(type="BN"))
    model.head = nn.Linear(4, 2)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type="VSSMLayerDecayOptimizerConstructor",
        optim_wrapper_cfg=dict(optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=rate, **paramwise)))
    return model, constructor(model).optimizer.param_groups


def test_layer_decay_follows_the_blocks() -> None:
    model, groups = _decay_groups(0.5, num_layers=4)
    lr = {name: g["lr"] for g in groups for name in g["param_names"]}
    decay = {name: g["weight_decay"] for g in groups for name in g["param_names"]}
    assert len(lr) == sum(1 for _ in model.parameters())
    # test_vim: stem = layer 0, block i = layer i + 1, L = 4; the adapter and the head are layer 5: lr · 0.5^(5 - l)
    assert lr["backbone.pos_embed"] == lr["backbone.patch_embed.proj.weight"] == 0.5**5
    for i in range(4):
        assert lr[f"backbone.layers.{i}.mixer.in_proj.weight"] == 0.5 ** (4 - i)
    assert lr["backbone.fpn1.0.weight"] == lr["head.weight"] == 1.0
    assert decay["backbone.layers.0.mixer.in_proj.weight"] == decay["head.weight"] == 0.05
    for name in ("backbone.pos_embed", "backbone.layers.0.mixer.A_log", "backbone.layers.0.norm.weight", "head.bias"):
        assert decay[name] == 0.0


@pytest.mark.parametrize(("paramwise", "error", "match"), [
    (dict(num_layers=24), ValueError, "4 layers after its stem, the config says 24"),
    (dict(decay_type="layer_wise"), ValueError, "decay_type"),
])
def test_layer_decay_bad_settings(paramwise: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _decay_groups(0.9, **paramwise)


def test_layer_decay_needs_a_vssm_backbone() -> None:
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type="VSSMLayerDecayOptimizerConstructor",
        optim_wrapper_cfg=dict(optimizer=dict(type="AdamW", lr=1.0, weight_decay=0.05)),
        paramwise_cfg=dict(layer_decay_rate=0.9)))
    model = nn.Module()
    model.backbone = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="vssm backbone"):
        constructor(model)


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(model="vmamba_tinyy"), r"unknown model 'vmamba_tinyy' \(did you mean vmamba_tiny.*expected one of"),
    (dict(model="mambavision_tiny"), r"VMambaBackbone: unknown model 'mambavision_tiny'"),
    (dict(model="test_vmamba", out_indices=(0, 4)), r"has 4 feature maps; expected .* 0\.\.3, got \(0, 4\)"),
    (dict(model="test_vmamba", out_indices=(2, 1)), r"increasing"),
    (dict(model="test_vmamba", frozen_stages=5), r"frozen_stages: expected -1 .* 4"),
    (dict(model="test_vmamba", pyramid_norm_cfg=dict(type="BN")), r"no multi-scale adapter"),
])
def test_bad_backbone_settings_fail_at_build(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type="VMambaBackbone", **kwargs))


def test_plain_backbone_needs_four_blocks_or_one() -> None:
    with pytest.raises(ValueError, match="multi-scale adapter takes 4 blocks"):
        _build("VimBackbone", "test_vim", out_indices=(0, 1, 2))
    with pytest.raises(ValueError, match=r"has 4 blocks; .* 0\.\.3, got \(1, 2, 3, 4\)"):
        _build("VimBackbone", "test_vim", out_indices=(1, 2, 3, 4))
    with pytest.raises(ValueError, match="has 2 blocks, too few for the default four; pass out_indices"):
        _build("VimBackbone", "test_vim", depth=2)


@pytest.mark.parametrize(("override", "error", "match"), [
    (dict(model="vmamba_tiniest"), ValueError, r"unknown model 'vmamba_tiniest'.*expected one of \['test_vmamba'"),
    (dict(out_indices=(1, 2, 3, 4)), ValueError, r"vmamba_tiny'\) has 4 feature maps; expected .* 0\.\.3"),
    (dict(init_cfg=dict(type="Pretrained", checkpoint="no/such/vssm1_tiny.pth")), FileNotFoundError,
     r"'no/such/vssm1_tiny\.pth' does not exist"),
])
def test_bad_config_fails_when_the_detector_is_built(override: dict, error: type, match: str) -> None:
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(Path(__file__).resolve().parents[2] / "configs/vmamba/mask-rcnn_vmamba-t_fpn_1x_coco.py")
    cfg.model.backbone.update(override)
    with pytest.raises(error, match=match), torch.device("meta"):
        MMDET_MODELS.build(cfg.model)


"""GroupMamba: released-format checkpoints load (weights-only, strictly), other variants' are refused naming both;
the grouped scan follows `scan=` (one channel group per route) with both scan paths equal; the distilled head."""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path

import pytest
import timm
import torch
from golden import assert_matches, load_golden

from vssm import kernels, scans
from vssm.layers import groupmamba_mixer
from vssm.models import _registry
from vssm.models.groupmamba import checkpoint_filter_fn, describe_checkpoint

FIXTURE = "groupmamba_test"


def _released_file(tmp_path: Path) -> Path:
    """The fixture's original-format weights saved as the authors released theirs: a bare state dict (the EMA
    model's, which their eval.py loads), keys of the original."""
    path = tmp_path / "groupmamba_test_release.pth"
    torch.save(load_golden(FIXTURE).state_dict, path)
    return path


def test_a_released_format_file_loads_through_timm_and_gives_the_originals_logits(tmp_path: Path) -> None:
    golden = load_golden(FIXTURE)
    assert any(".attn.mamba_g4." in key for key in golden.state_dict)  # the original's keys, not ours
    overlay = dict(file=str(_released_file(tmp_path)))
    model = timm.create_model("test_groupmamba", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, "logits after pretrained=True")


RELEASES = {
    "groupmamba_tiny": ("Abdelrahman-shaker/GroupMamba-Tiny", "groupmamba_tiny_ema.pth"),
    "groupmamba_small": ("Abdelrahman-shaker/GroupMamba-Small", "groupmamba_small_ema.pth"),
    "groupmamba_base": ("Abdelrahman-shaker/GroupMamba-Base", "groupmamba_base_ema.pth"),
}


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_pretrained_cfg_names_the_hub_repository_and_its_file(name: str) -> None:
    repo, file = RELEASES[name]
    cfg = timm.create_model(name, device="meta").pretrained_cfg
    assert (cfg["hf_hub_id"], cfg["hf_hub_filename"]) == (repo, file)
    assert cfg["url"] == f"https://huggingface.co/{repo}/resolve/main/{file}"


def test_pretrained_downloads_the_named_file_from_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The download is faked: what is checked is that the released file is asked for by name (timm's default names are
    # not in the authors' repositories) and that what comes back is read, converted and loaded.
    golden = load_golden(FIXTURE)
    requested = []

    def download(model_id: str, filename: str, cache_dir: object = None) -> str:
        requested.append((model_id, filename))
        return str(_released_file(tmp_path))

    monkeypatch.setattr(_registry, "download_from_hf", download)
    monkeypatch.setattr(timm.models._builder, "has_hf_hub", lambda necessary=False: True)
    repo, file = RELEASES["groupmamba_tiny"]
    overlay = dict(timm.create_model("groupmamba_tiny", device="meta").pretrained_cfg, url="")
    model = timm.create_model("test_groupmamba", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    assert requested == [(repo, file)]
    with torch.no_grad():
        assert_matches(model(golden.input), golden.output, "logits after a hub download")


def test_pretrained_loading_adapts_in_chans_and_num_classes(tmp_path: Path) -> None:
    overlay = dict(file=str(_released_file(tmp_path)))
    model = timm.create_model("test_groupmamba", pretrained=True, pretrained_cfg_overlay=overlay, in_chans=1,
                              num_classes=7)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)


def test_a_file_holding_code_is_not_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "groupmamba_code.pth"
    torch.save({"model": load_golden(FIXTURE).state_dict, "hook": pickle.loads}, path)
    overlay = dict(file=str(path))
    with pytest.raises(Exception, match=re.escape(str(path))):
        timm.create_model("test_groupmamba", pretrained=True, pretrained_cfg_overlay=overlay)


def test_another_variants_checkpoint_is_refused_naming_both() -> None:
    other = timm.create_model("test_groupmamba", depths=(1, 1, 1, 1), mlp_ratios=(2, 2, 4, 2))
    model = timm.create_model("test_groupmamba")
    with pytest.raises(ValueError) as info:
        checkpoint_filter_fn(other.state_dict(), model)
    message = str(info.value)
    assert "test_groupmamba (depths (1, 1, 2, 1)" in message
    assert "the checkpoint is depths (1, 1, 1, 1)" in message and "mlp_ratios (2, 2, 4, 2)" in message


def test_a_released_variants_checkpoint_is_named_as_that_variant() -> None:
    tiny = timm.create_model("groupmamba_tiny", device="meta").state_dict()
    with pytest.raises(ValueError, match=r"= groupmamba_tiny"):
        checkpoint_filter_fn(tiny, timm.create_model("test_groupmamba"))


def test_the_conversion_reads_the_original_architecture() -> None:
    golden = load_golden(FIXTURE)
    model = timm.create_model("test_groupmamba")
    arch = describe_checkpoint(checkpoint_filter_fn(golden.checkpoint, model))
    assert arch == dict(depths=(1, 1, 2, 1), embed_dims=(16, 32, 48, 64), mlp_ratios=(2.0, 2.0, 2.0, 2.0),
                        stem_hidden_dim=8, groups=4, distillation=True)
    assert checkpoint_filter_fn(model.state_dict(), model).keys() == model.state_dict().keys()  # ours pass as they are


# A padded windowed order (the 2 x 3 last grid pads to 2 x 4), orders of 1, 2 and 8 routes, and one the op's
# `route=` cannot express (atrous: routes that partition the grid).
ORDERS = [
    "hilbert", "zigzag", "bidirectional", "atrous",
    scans.Windowed(directions=("h", "w2", "v", "w2_flip"), pad_oversized_windows=True),
]


@pytest.mark.parametrize("scan", ORDERS, ids=str)
def test_scan_sets_the_groups_and_both_scan_paths_agree(scan: str | scans.ScanOrder) -> None:
    order = scans.get(scan)
    torch.manual_seed(0)
    routed = timm.create_model("test_groupmamba", scan=scan).double().eval()
    gathered = timm.create_model("test_groupmamba", scan=scan, route_addressing=False).double().eval()
    gathered.load_state_dict(routed.state_dict())
    assert routed.stages[0].blocks[0].attn.vsss.in_proj_weight.shape[0] == order.num_routes
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    with kernels.use_backend("reference"), torch.no_grad():
        ours, reference = routed(x), gathered(x)
    assert torch.allclose(ours, reference, rtol=1e-10, atol=1e-12)


def test_base_layouts_equal_route_addressing_forward_and_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    # cross on a 16 x 24 grid (H != W): the column-major groups transposed into their base and back
    torch.manual_seed(random.randrange(2**31))
    model = timm.create_model("test_groupmamba").double().train()
    x = torch.randn(2, 3, 64, 96, dtype=torch.float64)
    grad = torch.randn(2, model.num_classes, dtype=torch.float64)
    results = []
    for in_bases in (True, False):
        monkeypatch.setattr(groupmamba_mixer, "in_base_layouts", lambda device, dtype, in_bases=in_bases: in_bases)
        model.zero_grad()
        inputs = x.clone().requires_grad_(True)
        torch.manual_seed(0)  # the same drop-path draws
        with kernels.use_backend("reference"):
            out = model(inputs)
            (out * grad).sum().backward()
        results.append([out, inputs.grad, *(p.grad.clone() for p in model.parameters())])
    names = ["logits", "x", *(n for n, _ in model.named_parameters())]
    for a, b, name in zip(*results, names, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"base layouts vs route addressing: {name}")


def test_another_order_changes_the_output() -> None:
    golden = load_golden(FIXTURE)
    cross = timm.create_model("test_groupmamba").eval()
    cross.load_state_dict(checkpoint_filter_fn(golden.checkpoint, cross))
    # Cross's routes in another order: the same parameters, each group scanning another direction.
    swapped = scans.Windowed(directions=("v", "h", "v_flip", "h_flip"))
    other = timm.create_model("test_groupmamba", scan=swapped).eval()
    other.load_state_dict(cross.state_dict())
    with torch.no_grad():
        assert (other(golden.input) - cross(golden.input)).norm() > 1e-3 * golden.output.norm()


def test_embed_dims_that_the_groups_cannot_split_are_refused() -> None:
    with pytest.raises(ValueError, match=r"embed_dims\[1\]: expected a multiple of 3 .* got 32"):
        timm.create_model("test_groupmamba", scan=scans.Windowed(directions=("h", "v", "h_flip")),
                          embed_dims=(18, 32, 48, 66))


def test_an_order_that_cannot_route_the_class_blocks_single_token_is_refused_at_build_time() -> None:
    with pytest.raises(ValueError, match=r"^scan: the class block scans the mean token as a 1×1 grid"):
        timm.create_model("test_groupmamba", scan=scans.Windowed(directions=("h", "w2", "v", "w2_flip")))


def test_an_unknown_scan_order_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown scan order 'no_such_order'"):
        timm.create_model("test_groupmamba", scan="no_such_order")


def test_embed_dims_below_the_affinity_reduction_are_refused() -> None:
    with pytest.raises(ValueError, match=r"embed_dims\[0\]: .* expected at least reduction = 16, got 8"):
        timm.create_model("test_groupmamba", embed_dims=(8, 32, 48, 64))


def test_the_distilled_head_averages_at_inference_and_splits_for_distillation_training() -> None:
    model = timm.create_model("test_groupmamba")
    x = torch.randn(2, 3, 64, 64)
    features = model.forward_features(x)
    pooled = model.forward_head(features, pre_logits=True)
    expected = (model.head(pooled) + model.dist_head(pooled)) / 2
    assert torch.allclose(model.forward_head(features), expected)
    model.set_distilled_training(True)
    logits, distilled = model.forward_head(features)
    assert torch.allclose(logits, model.head(pooled)) and torch.allclose(distilled, model.dist_head(pooled))
    assert timm.create_model("test_groupmamba", distillation=False).dist_head is None


@pytest.mark.parametrize(("name", "millions"), [("groupmamba_tiny", 23), ("groupmamba_small", 34),
                                                ("groupmamba_base", 57)])
def test_parameters_without_the_distillation_head_round_to_the_authors_millions(name: str, millions: int) -> None:
    model = timm.create_model(name, device="meta")
    count = sum(p.numel() for key, p in model.named_parameters() if not key.startswith("dist_head."))
    assert round(count / 1e6) == millions

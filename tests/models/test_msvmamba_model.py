"""MSVMamba: released files load (official format, weights-only), other variants' files are refused naming both,
`scan=` swaps the routes, bad input is refused, parameter counts of the released variants."""

from __future__ import annotations

import re

import pytest
import timm
import torch
from golden import rel_l2

from vssm import scans
from vssm.layers.selective_ssm import selective_ssm
from vssm.models.msvmamba import MSVMamba, checkpoint_filter_fn
from vssm.scans.multiscale import MultiScale


def _official_file(tmp_path, model: torch.nn.Module) -> tuple[str, dict[str, torch.Tensor]]:
    """A training checkpoint as the original's main.py saves it: {'model', 'optimizer', 'epoch', ...}, with the
    dense backbone's extra `outnorm` keys that the filter drops."""
    state = {k: v + torch.randn_like(v) * 0.01 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    path = tmp_path / "ckpt_epoch_299.pth"
    torch.save({"model": state, "optimizer": {}, "epoch": 299, "max_accuracy": 77.3}, path)
    return str(path), state


def test_an_official_training_checkpoint_loads_strictly_weights_only(tmp_path) -> None:
    source = timm.create_model("test_msvmamba")
    path, state = _official_file(tmp_path, source)
    model = timm.create_model("test_msvmamba", pretrained=True,
                              pretrained_cfg_overlay=dict(file=path, custom_load=True))
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_pretrained_loading_adapts_in_chans_and_num_classes(tmp_path) -> None:
    """timm adapts the first conv and drops the classifier after `checkpoint_filter_fn`, which lets both through."""
    source = timm.create_model("test_msvmamba")
    path, state = _official_file(tmp_path, source)
    model = timm.create_model("test_msvmamba", pretrained=True, in_chans=1, num_classes=7,
                              pretrained_cfg_overlay=dict(file=path, custom_load=True))
    torch.testing.assert_close(model.patch_embed[0].weight, state["patch_embed.0.weight"].sum(dim=1, keepdim=True))
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 7)


@pytest.mark.parametrize("name", ["msvmamba_nano", "msvmamba_micro", "msvmamba_tiny"])
def test_pretrained_without_a_file_names_the_drive_folder_instead_of_downloading_its_web_page(name: str) -> None:
    folder = timm.create_model(name, device="meta").pretrained_cfg["url"]
    assert folder.startswith("https://drive.google.com/drive/folders/")
    with pytest.raises(ValueError, match=re.escape(f"{name}: pretrained=True needs a local file here") + ".*"
                       + re.escape(f"({folder})") + ".*" + re.escape("pretrained_cfg_overlay=dict(file=PATH")):
        timm.create_model(name, pretrained=True, device="meta")


def test_a_file_of_another_variant_is_refused_naming_both() -> None:
    other = timm.create_model("test_msvmamba", depths=(1, 1, 1, 1)).state_dict()
    model = timm.create_model("test_msvmamba")
    with pytest.raises(ValueError, match=r"fit test_msvmamba \(depths \(1, 1, 2, 1\).*the checkpoint is depths "
                                         r"\(1, 1, 1, 1\)"):
        checkpoint_filter_fn({"model": other}, model)


def test_a_dense_backbones_outnorms_are_dropped() -> None:
    model = timm.create_model("test_msvmamba")
    state = dict(model.state_dict(), **{"outnorm0.weight": torch.ones(16), "outnorm0.bias": torch.zeros(16)})
    model.load_state_dict(checkpoint_filter_fn(state, model), strict=True)


@pytest.mark.parametrize(("name", "params"), [("msvmamba_nano", 6_864_000), ("msvmamba_micro", 11_877_000)])
def test_released_parameter_counts(name: str, params: int) -> None:
    """The config files' comments: nano 6.86M, micro 11.88M (YuHengsss/MSVMamba @ c394019)."""
    model = timm.create_model(name, device="meta")
    assert round(sum(p.numel() for p in model.parameters()), -4) == round(params, -4)


def test_scan_swaps_the_full_resolution_routes_and_their_parameter_sets() -> None:
    x = torch.randn(1, 3, 64, 64)
    model = timm.create_model("test_msvmamba", scan="cross").eval()
    assert model.layers[0].blocks[0].op.x_proj_weight.shape[0] == 1 + 4
    with torch.no_grad():
        assert model(x).shape == (1, 1000)
    custom = MultiScale(full=scans.Raster(), coarse=scans.get("cross"))
    model = timm.create_model("test_msvmamba", scan=custom).eval()
    assert model.layers[0].blocks[0].op.x_proj_weight.shape[0] == 2
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
    # With the same weights, another single-route full order or another coarse order reads the map differently. The
    # D skip is zeroed so that the branches are their scans alone: at the initial D = 1 the skip term dominates and
    # the order moves a mixer's output by as little as 7e-6 (measured over 40 draws); without it by 0.36-0.47.
    ours = timm.create_model("test_msvmamba").eval()
    maps = torch.randn(2, 32, 16, 16)  # (B, E, H, W) of the first stage's mixer, and its stride-2 copy
    for scan in (scans.Zigzag(paths=(1,)), MultiScale(coarse=scans.Cross())):
        other = timm.create_model("test_msvmamba", scan=scan).eval()
        other.load_state_dict(ours.state_dict())
        ops = [model.layers[0].blocks[0].op for model in (ours, other)]
        with torch.no_grad():
            for op in ops:
                op.Ds.zero_()
            expected, moved = (op.ssm(maps, maps[..., ::2, ::2]) for op in ops)
        assert rel_l2(moved, expected) > 0.1, scan


def test_a_schedule_gives_each_block_its_full_resolution_order() -> None:
    """As VMamba's `scan=`: block i (counted over all stages) takes the schedule's order i; its parameter sets follow
    (1 + routes) and the coarse routes stay MSVMamba's."""
    schedule = scans.PerLayer(orders=("raster", "cross", "bidirectional", "raster", "cross"))
    model = timm.create_model("test_msvmamba", scan=schedule).eval()
    ops = [block.op for stage in model.layers for block in stage.blocks]
    assert [op.scan.full for op in ops] == [schedule.for_layer(i) for i in range(5)]
    assert [op.x_proj_weight.shape[0] for op in ops] == [2, 5, 3, 2, 5]
    assert all(op.scan.coarse == scans.get("tri_cross") for op in ops)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 64, 64))).all()


def test_the_coarse_routes_run_as_one_chained_sequence() -> None:
    """The three coarse routes scanned separately (no state carried from one to the next) give another output: the
    test model is sensitive to the chain that the golden fixture pins."""
    op = timm.create_model("test_msvmamba").layers[0].blocks[0].op.eval()
    x = torch.randn(2, 32, 8, 8)
    order, weights = op.scan.coarse, op._weights(slice(0, 1))
    with torch.no_grad():
        chained = op._coarse(x, 16, 16)
        routes = [selective_ssm(route.unsqueeze(1), weights, torch.float32)[:, 0] for route in order.scan(x).unbind(1)]
        separate = order.merge(torch.stack([op._norm(y) for y in routes], dim=1), 8, 8)
    assert not torch.allclose(chained, op.scan.upsample(separate, 16, 16), atol=1e-4)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(scan="no_such_order"), ValueError, "unknown scan order 'no_such_order'"),
    (dict(scan=3), TypeError,
     "scan: expected a scans.multiscale.MultiScale, a scan order, its name or a scans.Schedule, got 3"),
])
def test_bad_scans_are_refused(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        MSVMamba(depths=(1, 1), dims=8, **kwargs)


@pytest.mark.parametrize(("shape", "message"), [
    ((1, 1, 64, 64), "expected 3 input channels, got 1"),
    ((1, 3, 16, 64), "the total stride"),
])
def test_bad_input_is_refused(shape: tuple[int, ...], message: str) -> None:
    model = timm.create_model("test_msvmamba")
    with pytest.raises(ValueError, match=message):
        model(torch.randn(shape))

"""LocalMamba models: exact sizes, direction tables, mixers against the spec reference (non-square grids, both `v`
reverses, class token, window pads), RoPE, backends against float64, any scan order, bad input."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from backend_runs import FAST, logits_and_grads
from localmamba_reference import local_vim_mixer, local_vssm_mixer, rope_tables

import vssm
from vssm import kernels, scans
from vssm.kernels.tolerances import assert_all_close_3way, assert_close_3way
from vssm.models import _localmamba_directions as tables
from vssm.models.localmamba import LocalVim, LocalVMamba
from vssm.scans import VReverse

# name -> (parameters, state-dict tensors incl. RoPE buffers) of the originals (localmamba.md §1, §5).
SIZES = {
    "local_vim_tiny": (7_994_152, 748),
    "local_vim_tiny_midcls": (7_994_536, 747),
    "local_vim_small": (27_783_784, 748),
    "local_vssm_tiny": (25_527_160, 302),
    "local_vssm_small": (49_748_536, 644),
}
TABLES = {
    "local_vim_tiny": tables.LOCAL_VIM_TINY,
    "local_vim_tiny_midcls": tables.LOCAL_VIM_TINY,
    "local_vim_small": tables.LOCAL_VIM_SMALL,
    "local_vssm_tiny": tables.LOCAL_VSSM_TINY,
    "local_vssm_small": tables.LOCAL_VSSM_SMALL,
}
def test_every_name_is_registered() -> None:
    assert set(vssm.list_models("*local_v*")) == {*SIZES, "test_local_vim", "test_local_vssm"}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_parameter_counts_equal_the_originals(name: str) -> None:
    model = timm.create_model(name, device="meta")
    params, tensors = SIZES[name]
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == tensors


@pytest.mark.parametrize("name", sorted(SIZES))
def test_layers_scan_their_table_directions_in_slot_order(name: str) -> None:
    model = timm.create_model(name, device="meta")
    orders = model.layer_orders if isinstance(model, LocalVim) else model.block_orders
    table = TABLES[name]
    assert len(orders) == len(table) == (20 if isinstance(model, LocalVim) else sum(model.depths))
    for order, directions in zip(orders, table):
        assert isinstance(order, scans.Windowed) and order.v_reverse is VReverse.OFFICIAL
        assert tuple(str(d) for d in order.directions) == directions
        # The searched lists are top-4 of the 8 choices, written in the canonical order.
        assert len(set(directions)) == 4 and list(directions) == sorted(directions, key=tables.CHOICES.index)


def test_local_vim_small_uses_the_searched_list_and_the_uniform_list_is_available() -> None:
    assert tables.LOCAL_VIM_SMALL == tables.LOCAL_VIM_TINY
    uniform = timm.create_model("local_vim_small", directions=tables.LOCAL_VIM_UNIFORM, device="meta")
    assert {tuple(map(str, o.directions)) for o in uniform.layer_orders} == {("h", "h_flip", "w2", "w2_flip")}
    assert sum(p.numel() for p in uniform.parameters()) == SIZES["local_vim_small"][0]


def test_a_log_routes_do_not_alias() -> None:
    model = timm.create_model("test_local_vim")
    for block in model.layers:
        pointers = {a_log.data_ptr() for a_log in block.mixer.route_views("A_log")}
        assert len(pointers) == 4


def test_local_vim_initialisation_is_the_originals() -> None:
    torch.manual_seed(0)
    model = timm.create_model("local_vim_tiny")
    mixer = model.layers[3].mixer
    assert all(torch.count_nonzero(bias) == 0 for bias in mixer.route_views("dt_proj.bias"))
    assert abs(float(mixer.route_views("x_proj.weight")[0].detach().std()) - 0.02) < 0.002
    bound = 1 / math.sqrt(mixer.d_inner) / math.sqrt(20)  # kaiming-uniform(a=√5) bound, then / √depth
    assert float(mixer.out_proj.weight.detach().abs().max()) <= bound
    a_log = torch.log(torch.arange(1.0, 17.0)).expand(mixer.d_inner, 16)
    torch.testing.assert_close(mixer.route_views("A_log")[2], a_log)


# -------------------------------------------------------------------------------------- mixers vs the reference

LOCAL_VIM_DIRECTIONS = [["h_flip", "v", "w2", "v_flip"], ["v", "w3_flip", "h", "w2_flip"]]


@pytest.mark.parametrize("v_reverse", list(VReverse), ids=lambda v: v.value)
@pytest.mark.parametrize("class_token", [False, True], ids=["rope", "midcls"])
def test_local_vim_mixer_matches_the_spec_reference_on_a_non_square_grid(
    class_token: bool, v_reverse: VReverse
) -> None:
    """3 × 5 patches: `v` reverses differ between the original and the true inverse, w2 pads to 4 × 6, w3 to 3 × 6,
    and with a class token p = 15 // 2 = 7 is an odd middle."""
    torch.manual_seed(0)
    model = LocalVim(
        img_size=(48, 80), embed_dim=32, depth=2, directions=LOCAL_VIM_DIRECTIONS, v_reverse=v_reverse,
        class_token=class_token,
    ).double()
    routes = model._routes((3, 5), torch.device("cpu"))
    x = torch.randn(2, 15 + int(class_token), 32, dtype=torch.float64)
    with kernels.use_backend("reference"), torch.no_grad():
        for i, block in enumerate(model.layers):
            ours = block.mixer(x, routes[i])
            reference = local_vim_mixer(block.mixer, x, (3, 5), LOCAL_VIM_DIRECTIONS[i], class_token,
                                        official_v=v_reverse is VReverse.OFFICIAL)  # fmt: skip
            torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


LOCAL_VSSM_DIRECTIONS = ["v_flip", "w7", "h", "w2_flip"]


@pytest.mark.parametrize("route_addressing", [True, False], ids=["route", "materialised"])
@pytest.mark.parametrize("v_reverse", list(VReverse), ids=lambda v: v.value)
def test_local_vssm_mixer_matches_the_spec_reference_on_a_non_square_grid(
    v_reverse: VReverse, route_addressing: bool
) -> None:
    """6 × 10 grid: w7 pads to 7 × 14 (98 steps), w2 is exact, the routes are padded to 98 and scanned together."""
    torch.manual_seed(0)
    model = LocalVMamba(
        depths=(1, 1, 1, 1), dims=16, directions=[LOCAL_VSSM_DIRECTIONS] * 4, v_reverse=v_reverse,
        route_addressing=route_addressing,
    ).double()
    op = model.layers[1].blocks[0].op
    x = torch.randn(2, 6, 10, 32, dtype=torch.float64)
    with kernels.use_backend("reference"), torch.no_grad():
        ours = op(x)
        reference = local_vssm_mixer(op, x, LOCAL_VSSM_DIRECTIONS, official_v=v_reverse is VReverse.OFFICIAL)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)


def test_the_v_reverse_switch_matters_only_off_the_square() -> None:
    torch.manual_seed(0)
    official = timm.create_model("test_local_vim", dynamic_img_size=True).eval()
    correct = timm.create_model("test_local_vim", dynamic_img_size=True, v_reverse=VReverse.CORRECT).eval()
    correct.load_state_dict(official.state_dict())
    square, wide = torch.randn(1, 3, 112, 112), torch.randn(1, 3, 80, 128)
    with torch.no_grad():
        torch.testing.assert_close(official(square), correct(square))
        assert not torch.allclose(official(wide), correct(wide), rtol=1e-4, atol=1e-5)


# -------------------------------------------------------------------------------------------------- RoPE


@pytest.mark.parametrize("img_size", [(160, 160), (112, 176)], ids=["10x10", "7x11"])
def test_rope_tables_follow_the_formula(img_size: tuple[int, int]) -> None:
    model = timm.create_model("test_local_vim", img_size=img_size, depth=1, directions=[["h", "v", "h_flip", "w2"]])
    grid = model.patch_embed.grid_size
    cos, sin = rope_tables(64, *grid)
    torch.testing.assert_close(model.rope.freqs_cos.double(), torch.from_numpy(cos), rtol=0, atol=1e-5)
    torch.testing.assert_close(model.rope.freqs_sin.double(), torch.from_numpy(sin), rtol=0, atol=1e-5)
    t = torch.randn(2, grid[0] * grid[1], 64, dtype=torch.float64)
    pairs = torch.stack([-t[..., 1::2], t[..., 0::2]], dim=-1).flatten(-2)  # (t0, t1) -> (-t1, t0)
    expected = t * torch.from_numpy(cos) + pairs * torch.from_numpy(sin)
    rotated = model.rope.double()(t, model.rope.tables(grid))
    torch.testing.assert_close(rotated, expected, rtol=0, atol=1e-5)


def test_dynamic_size_pads_like_the_original_and_resizes_positions_and_rope() -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_local_vim", dynamic_img_size=True).eval()
    x = torch.randn(1, 3, 100, 130)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(F.pad(x, (0, 14, 0, 12))))
        cos, _ = model.rope.tables((7, 9))
    expected = F.interpolate(model.rope.freqs_cos.reshape(1, 7, 7, 64).permute(0, 3, 1, 2), size=(7, 9),
                             mode="bicubic", align_corners=False)  # fmt: skip
    torch.testing.assert_close(cos, expected.flatten(2).transpose(1, 2)[0])


# -------------------------------------------------------------------------------------------------- backends


@pytest.mark.skipif(not FAST, reason="no fast selective-scan backend runs on this machine's CPU")
@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize(
    ("name", "kwargs", "size"),
    [
        ("test_local_vim", {"depth": 2, "directions": tables.TEST_LOCAL_VIM[:2]}, 112),
        ("test_local_vim", {"depth": 2, "directions": tables.TEST_LOCAL_VIM[:2], "class_token": True}, 112),
        ("test_local_vssm", {}, 32),  # stage grids 8, 4, 2, 1: every w7 pads to one 7 x 7 window
    ],
    ids=["local_vim", "local_vim_midcls", "local_vssm"],
)
def test_fast_backend_matches_the_float64_reference(backend: str, name: str, kwargs: dict, size: int) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=4, **kwargs).eval()
    x = torch.randn(1, 3, size, size)
    fast, fast_grads = logits_and_grads(model, x, backend)
    ref, ref_grads = logits_and_grads(model, x, "reference")
    ref64, ref64_grads = logits_and_grads(model.double(), x.double(), "reference")
    names = ["logits"] + [f"grad {n}" for n, _ in model.named_parameters()]
    assert_all_close_3way([fast, *fast_grads], [ref, *ref_grads], [ref64, *ref64_grads], names, dtype=torch.float32)


@pytest.mark.parametrize("route_addressing", [True, False], ids=["route", "materialised"])
def test_local_vssm_scan_paths_agree(route_addressing: bool) -> None:
    torch.manual_seed(0)
    reference = timm.create_model("test_local_vssm", route_addressing=False).double().eval()
    model = timm.create_model("test_local_vssm", route_addressing=route_addressing).eval()
    model.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fast = model(x)
        with kernels.use_backend("reference"):
            ref, ref64 = model(x), reference(x.double())
    assert_close_3way(fast, ref, ref64, name="logits")


# ----------------------------------------------------------------------------------------------- any scan order


@pytest.mark.parametrize(
    ("name", "scan", "size"), [("test_local_vim", "cross", 112), ("test_local_vssm", "hilbert", 64)]
)
def test_any_scan_order_builds_and_trains(name: str, scan: str, size: int) -> None:
    torch.manual_seed(0)
    model = timm.create_model(name, scan=scan, num_classes=5)
    routes = scans.get(scan).num_routes
    if isinstance(model, LocalVim):
        assert model.layers[0].mixer.num_routes == routes and model.layers[0].mixer.naming.value == "indexed"
    else:
        assert model.layers[0].blocks[0].op.x_proj_weight.shape[0] == routes
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = F.cross_entropy(model(torch.randn(2, 3, size, size)), torch.tensor([1, 3]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)


# ---------------------------------------------------------------------------------------------------- bad input


def test_unknown_direction_names_the_layer_and_the_choices() -> None:
    directions = [list(d) for d in tables.TEST_LOCAL_VIM]
    directions[2][1] = "diagonal"
    with pytest.raises(ValueError, match=r"layer 2: unknown direction 'diagonal'; valid choices: h, h_flip, v"):
        timm.create_model("test_local_vim", directions=directions)


@pytest.mark.parametrize("name", ["local_vim_tiny", "local_vssm_tiny"])
def test_a_direction_list_of_the_wrong_length_is_refused(name: str) -> None:
    unit, depth = ("layer", 20) if "vim" in name else ("block", 15)
    with pytest.raises(ValueError, match=rf"one direction list per {unit} \({depth} {unit}s\), got {depth - 1}"):
        timm.create_model(name, directions=TABLES[name][:-1], device="meta")
    with pytest.raises(ValueError, match=rf"directions of {unit} 0: expected a non-empty list"):
        timm.create_model(name, directions=[[], *TABLES[name][1:]], device="meta")


def test_a_window_larger_than_the_grid_pads_by_default_and_names_the_layer_in_strict_mode() -> None:
    # 96 px = 6 × 6 patches: local_vim_tiny's layer 0 has w7. The original zero-pads the grid to one window.
    model = timm.create_model("local_vim_tiny", img_size=96)
    assert model(torch.randn(1, 3, 96, 96)).shape == (1, 1000)
    with pytest.raises(ValueError, match=r"layer 0: direction 'w7' has a 7 x 7 window, larger than the 6 x 6 token "
                                         r"grid .*valid choices there: h, h_flip, v, v_flip, w2, w2_flip; or .*"
                                         r"pad_oversized_windows"):  # fmt: skip
        timm.create_model("local_vim_tiny", img_size=96, pad_oversized_windows=False)


@pytest.mark.parametrize("name", ["local_vssm_tiny", "local_vssm_small"])
def test_released_local_vmamba_pads_windows_larger_than_a_stage_grid(name: str) -> None:
    # 96 px: the last stage's grid is 3 × 3, smaller than the w7 windows the searched directions use there.
    model = timm.create_model(name, num_classes=0).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, model.num_features)


def test_a_window_larger_than_a_stage_grid_names_the_block() -> None:
    model = timm.create_model("test_local_vssm", pad_oversized_windows=False).eval()
    with pytest.raises(ValueError, match=r"block 2: direction 'w7' has a 7 x 7 window, larger than the 4 x 4 token "
                                         r"grid it scans \(input 64 x 64\)"):  # fmt: skip
        model(torch.randn(1, 3, 64, 64))
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)  # stage grids 56, 28, 14, 7


def test_scan_and_directions_together_are_refused() -> None:
    with pytest.raises(ValueError, match=r"either directions= .* or scan="):
        timm.create_model("test_local_vim", scan="cross", directions=tables.TEST_LOCAL_VIM)


def test_rope_needs_a_model_without_class_token() -> None:
    with pytest.raises(ValueError, match="rope=True rotates grid tokens only"):
        timm.create_model("test_local_vim", class_token=True, rope=True)

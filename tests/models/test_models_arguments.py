"""Every family's numeric constructor arguments are checked at build time (`vssm.models._contract.check_int`,
`check_ints`, `check_float`, `check_rates`): a value out of range is a ValueError naming the argument, the expected
range and the value given (never a model that is silently wrong or fails at its first training step), a value of
the wrong type a TypeError; the boundary values build."""

from __future__ import annotations

import math
import re

import pytest
import timm

import vssm
from vssm.models.umamba import UMamba, UMambaPlan

TEST_VARIANTS = vssm.list_models("test_*")

# Arguments every family takes: (kwargs, the message's start).
COMMON = [
    (dict(num_classes=-1), "num_classes: expected an int >= 0 (0: no classifier), got -1"),
    (dict(in_chans=0), "in_chans: expected an int >= 1, got 0"),
    (dict(drop_path_rate=-0.5), "drop_path_rate: expected a probability in [0, 1), got -0.5"),
    (dict(drop_path_rate=1.5), "drop_path_rate: expected a probability in [0, 1), got 1.5"),
    (dict(drop_rate=1.0), "drop_rate: expected a probability in [0, 1), got 1.0"),
    (dict(drop_rate=math.nan), "drop_rate: expected a probability in [0, 1), got nan"),
]
# Each family's own: variant -> [(kwargs, the message's start)].
OWN = {
    "test_vim": [
        (dict(depth=0), "depth: expected an int >= 1, got 0"),
        (dict(embed_dim=0), "embed_dim: expected an int >= 1, got 0"),
        (dict(pos_drop_rate=-0.1), "pos_drop_rate: expected a probability in [0, 1), got -0.1"),
        (dict(norm_eps=0.0), "norm_eps: expected a finite number > 0, got 0.0"),
        (dict(img_size=0), "img_size[0]: expected an int >= 1, got 0"),
        (dict(patch_size=(16, 0)), "patch_size[1]: expected an int >= 1, got 0"),
        (dict(stride=-8), "stride[0]: expected an int >= 1, got -8"),
    ],
    "test_local_vim": [
        (dict(depth=0), "depth: expected an int >= 1, got 0"),
        (dict(embed_dim=-64), "embed_dim: expected an int >= 1, got -64"),
    ],
    "test_vmamba": [
        (dict(depths=()), "depths: expected at least one entry (ints >= 1), got ()"),
        (dict(depths=(1, 0, 2, 1)), "depths[1]: expected an int >= 1, got 0"),
        (dict(dims=0), "dims: expected an int >= 1, got 0"),
        (dict(dims=(16, 32, 0, 128)), "dims[2]: expected an int >= 1, got 0"),
        (dict(d_state=0), "d_state: expected an int >= 1, got 0"),
        (dict(dt_rank=0), "dt_rank: expected an int >= 1, got 0"),
        (dict(expand=0.0), "expand: expected a finite number > 0, got 0.0"),
        (dict(expand=math.inf), "expand: expected a finite number > 0, got inf"),
        (dict(mlp_ratio=-1.0), "mlp_ratio: expected a finite number >= 0, got -1.0"),
    ],
    "test_local_vssm": [
        (dict(depths=(1, 0, 2, 1)), "depths[1]: expected an int >= 1, got 0"),
        (dict(depths=[]), "depths: expected at least one entry (ints >= 1), got []"),
        (dict(d_state=0), "d_state: expected an int >= 1, got 0"),
    ],
    "test_mambavision": [
        (dict(dim=0), "dim: expected an int >= 1, got 0"),
        (dict(in_dim=0), "in_dim: expected an int >= 1, got 0"),
        (dict(mlp_ratio=0), "mlp_ratio: expected a finite number > 0, got 0"),
        (dict(attn_drop_rate=1.5), "attn_drop_rate: expected a probability in [0, 1), got 1.5"),
    ],
    "test_umamba_bot_2d": [(dict(img_size=0), "img_size[0]: expected an int >= 1, got 0")],
    "test_umamba_enc_2d": [(dict(img_size=(64, -64)), "img_size[1]: expected an int >= 1, got -64")],
    "test_msvmamba": [
        (dict(depths=(1, 0, 2, 1)), "depths[1]: expected an int >= 1, got 0"),
        (dict(dims=0), "dims: expected an int >= 1, got 0"),
        (dict(d_state=0), "d_state: expected an int >= 1, got 0"),
        (dict(expand=0.0), "expand: expected a finite number > 0, got 0.0"),
    ],
    "test_groupmamba": [
        (dict(depths=(1, 0, 2, 1)), "depths[1]: expected an int >= 1, got 0"),
        (dict(embed_dims=(16, 32, 0, 64)), "embed_dims[2]: expected an int >= 1, got 0"),
        (dict(embed_dims=(16, 32, 50, 64)), "embed_dims[2]: expected a multiple of 4 (one channel group per route"),
        (dict(mlp_ratios=(2, 2, 0, 2)), "mlp_ratios[2]: expected a finite number > 0, got 0"),
        (dict(stem_hidden_dim=0), "stem_hidden_dim: expected an int >= 1, got 0"),
        (dict(d_state=0), "d_state: expected an int >= 1, got 0"),
        (dict(expand=0.0), "expand: expected a finite number > 0, got 0.0"),
        (dict(norm_eps=0.0), "norm_eps: expected a finite number > 0, got 0.0"),
    ],
    "test_plainmamba": [
        (dict(depth=0), "depth: expected an int >= 1, got 0"),
        (dict(embed_dim=0), "embed_dim: expected an int >= 1, got 0"),
        (dict(num_convs_patch_embed=-1), "num_convs_patch_embed: expected an int >= 0, got -1"),
        (dict(layers_with_dwconv=(5,)), "layers_with_dwconv: expected layer indices in 0..3, got [5]"),
        (dict(patch_size=15), "patch_size: PlainMamba's stem halves the input first, so an even size, got 15"),
        (dict(d_conv=4), "PlainMamba's 2-D convolution needs an odd kernel size (same padding), got 4"),
        (dict(pos_drop_rate=-0.1), "pos_drop_rate: expected a probability in [0, 1), got -0.1"),
        (dict(norm_eps=0.0), "norm_eps: expected a finite number > 0, got 0.0"),
        (dict(img_size=0), "img_size[0]: expected an int >= 1, got 0"),
    ],
}
CASES = [(name, kwargs, message) for name in TEST_VARIANTS for kwargs, message in COMMON + OWN[name]]


def test_every_test_variant_has_its_own_cases() -> None:
    assert sorted(OWN) == TEST_VARIANTS


@pytest.mark.parametrize(("name", "kwargs", "message"), CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw, _ in CASES])
def test_an_argument_out_of_range_is_a_value_error_at_build_time(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        timm.create_model(name, **kwargs)


@pytest.mark.parametrize("name", TEST_VARIANTS)
@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(num_classes=1.5), "num_classes: expected an int >= 0, got float 1.5"),
    (dict(in_chans=True), "in_chans: expected an int >= 1, got bool True"),
    (dict(drop_path_rate="0.1"), "drop_path_rate: expected a probability in [0, 1), got str '0.1'"),
])
def test_an_argument_of_the_wrong_type_is_a_type_error(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match="^" + re.escape(message)):
        timm.create_model(name, **kwargs)


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_the_boundary_values_build(name: str) -> None:
    model = timm.create_model(name, num_classes=0, in_chans=1, drop_rate=0.0, drop_path_rate=0.0, device="meta")
    assert model.num_classes == 0


def test_a_vmamba_without_mlp_builds() -> None:
    model = timm.create_model("test_vmamba", mlp_ratio=0.0, device="meta")
    assert all(block.mlp is None for stage in model.layers for block in stage.blocks)


def test_the_u_mamba_segmentation_network_needs_classes() -> None:
    plan = UMambaPlan(features_per_stage=(4, 8), kernel_sizes=((3, 3),) * 2, strides=((1, 1), (2, 2)),
                      n_conv_per_stage=(1, 1), n_conv_per_stage_decoder=(1,))
    with pytest.raises(ValueError, match=re.escape("num_classes: expected an int >= 1, got 0")):
        UMamba(plan, num_classes=0)
    assert UMamba(plan, num_classes=1, device="meta").num_classes == 1

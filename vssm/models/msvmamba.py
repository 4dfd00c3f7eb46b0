"""MSVMamba: VMamba with multi-scale 2-D scans, d_state 1 and a convolutional FFN.

Paper: "Multi-Scale VMamba: Hierarchy in Hierarchy Visual State Space Model", Shi, Dong and Xu, NeurIPS 2024
(https://arxiv.org/abs/2405.14174). Original code and weights: https://github.com/YuHengsss/MSVMamba,
`classification/models/vmamba.py` @ c394019 (`VSSM` with `sscore_type="multiscale_4scan_12"`, the configs
`classification/configs/ms_vssm/vssm_{nano,micro,tiny}_224_ms.yaml`).

The network is vanilla VMamba's (4×4 patch stem, patch merging, channel-last, LayerNorm eps 1e-5), with blocks of
`MultiScaleSS2D` (one raster route on the map, three routes chained on its stride-2 copy, squeeze-excite) and a
`ConvFFN` (vssm/layers/msvmamba_ss2d.py, msvmamba_block.py). `scan=` takes a `scans.multiscale.MultiScale`, a scan
order (name or instance) for the full-resolution routes, or a `scans.Schedule` of them per block; the parameter sets
follow (1 + its routes).
`forward_intermediates` / `features_only` return the pre-downsample stage maps at strides 4/8/16/32 without an
output norm (what the original's detection and segmentation backbone normalises with its `outnorm{i}`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs, register_model
from torch import nn

from vssm import scans
from vssm.layers.downsample2d import PatchMerging2d
from vssm.layers.layout import Layout
from vssm.layers.msvmamba_block import MSVSSBlock
from vssm.layers.msvmamba_ss2d import MultiScaleSS2D
from vssm.layers.stage import Stage
from vssm.layers.stem2d import PatchStem
from vssm.models._checkpoint import check_variant_fits, model_name, select_weights
from vssm.models._contract import (
    check_float,
    check_global_pool,
    check_int,
    check_ints,
    check_rates,
    init_linear_and_norms,
)
from vssm.models._records import GoldenFixture, PublishedCount, SpeedTarget
from vssm.models._registry import GOOGLE_DRIVE_FOLDER, build_model
from vssm.models.vmamba import VMamba, VMambaClassifier
from vssm.scans.multiscale import MultiScale

__all__ = ["MSVMamba", "checkpoint_filter_fn", "describe_checkpoint"]

TOTAL_STRIDE = 32
LAYOUT = Layout.CHANNELS_LAST  # the original's: nn.Linear / nn.LayerNorm on (B, H, W, C)


def _block_scans(scan: object, num_blocks: int) -> tuple[MultiScale, ...]:
    """Each block's multi-scale scan (blocks counted over all stages): an order, its name or a `scans.Schedule` gives
    the full-resolution routes (`scans.as_schedule`, as the other families read `scan=`); the coarse routes stay
    MSVMamba's."""
    if scan is None or isinstance(scan, MultiScale):
        return (MultiScale() if scan is None else scan,) * num_blocks
    if not isinstance(scan, str | scans.ScanOrder | scans.Schedule):
        raise TypeError(
            f"scan: expected a scans.multiscale.MultiScale, a scan order, its name or a scans.Schedule, got {scan!r}"
        )
    schedule = scans.as_schedule(scan)
    return tuple(MultiScale(full=schedule.for_layer(block)) for block in range(num_blocks))


class MSVMamba(VMamba):
    """MSVMamba backbone and classifier.

    The network is built here; the timm interface (`forward_features`, `forward_head`, `forward_intermediates`,
    `reset_classifier`, `group_matcher`, ...) is `VMamba`'s, whose stem -> `Stage`s -> `classifier` layout and
    attribute names this network has (channel-last, as vanilla VMamba). `VMamba.__init__` is not run: it builds
    SS2D blocks.

    Args:
        depths: blocks per stage.
        dims: channels of stage 0 (doubled per stage) or one value per stage.
        d_state: SSM state size N.
        expand: inner width E = expand · C ("ssm_ratio").
        dt_rank: rank of the delta projection; None = ceil(C / 16).
        scan: a `scans.multiscale.MultiScale` (default: MSVMamba's, `raster` on the map and `tri_cross` chained on
            its half-resolution copy), a scan order / its name for the full-resolution routes, or a
            `scans.Schedule` giving block i's (counted over all stages) full-resolution order.
        in_chans, num_classes, global_pool ("avg" or ""), drop_rate (before the head), drop_path_rate (linear over all
            blocks): timm's meaning.
        device, dtype: factory kwargs for every parameter.
    """

    def __init__(
        self,
        depths: Sequence[int] = (1, 2, 9, 2),
        dims: int | Sequence[int] = 96,
        d_state: int = 1,
        expand: float = 2.0,
        dt_rank: int | None = None,
        scan: str | scans.ScanOrder | scans.Schedule | MultiScale | None = None,
        in_chans: int = 3,
        num_classes: int = 1000,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        nn.Module.__init__(self)
        factory = {"device": device, "dtype": dtype}
        check_ints("depths", depths)
        if isinstance(dims, int):
            check_int("dims", dims)
        else:
            check_ints("dims", dims)
        for name, value in (("d_state", d_state), ("dt_rank", dt_rank), ("in_chans", in_chans)):
            if value is not None:
                check_int(name, value)
        check_int("num_classes", num_classes, minimum=0, meaning="0: no classifier")
        check_float("expand", expand)
        check_rates(drop_rate=drop_rate, drop_path_rate=drop_path_rate)
        check_global_pool(global_pool)
        depths = tuple(depths)
        dims = tuple(int(dims * 2**i) for i in range(len(depths))) if isinstance(dims, int) else tuple(dims)
        if len(dims) != len(depths):
            raise ValueError(f"dims: expected one value per stage ({len(depths)} stages), got {dims}")
        block_scans = _block_scans(scan, sum(depths))

        self.depths, self.dims = depths, dims
        self.layout = LAYOUT
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = dims[-1]
        self.output_fmt = "NHWC"

        self.patch_embed = PatchStem(in_chans, dims[0], LAYOUT, **factory)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # also under a meta context
        self.layers = nn.ModuleList()
        self.feature_info = []
        for i, dim in enumerate(dims):
            first = sum(depths[:i])
            blocks = [
                MSVSSBlock(dim, MultiScaleSS2D(dim, d_state, expand, dt_rank, scan=block_scans[block], **factory),
                           rates[block], **factory)
                for block in range(first, first + depths[i])
            ]
            last = i == len(depths) - 1
            down = nn.Identity() if last else PatchMerging2d(dim, dims[i + 1], LAYOUT, **factory)
            self.layers.append(Stage(blocks, down))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2**i, module=f"layers.{i}"))

        self.classifier = VMambaClassifier(self.num_features, num_classes, LAYOUT, drop_rate, **factory)
        # The original's `_init_weights`: every nn.Linear trunc-normal(0.02) with zero bias (the squeeze-excite's
        # included), LayerNorms 1/0; convs keep PyTorch's default; the SSM parameters keep Mamba's init.
        self.apply(init_linear_and_norms)

    def _convert_checkpoint(self, checkpoint: dict) -> dict[str, torch.Tensor]:
        return checkpoint_filter_fn(checkpoint, self)


# -------------------------------------------------------------------------------------------------- checkpoints


def describe_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """The architecture an MSVMamba state dict (the original's keys = ours) was saved from: depths, dims, d_state,
    expand, parameter sets."""
    blocks: dict[int, set[int]] = {}
    for key in state_dict:
        match = re.match(r"layers\.(\d+)\.blocks\.(\d+)\.", key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    stages = sorted(blocks)
    op = "layers.0.blocks.0.op."
    sets, inner, _ = state_dict[f"{op}dt_projs_weight"].shape
    dims = tuple(state_dict[f"layers.{s}.blocks.0.norm.weight"].shape[0] for s in stages)
    return dict(
        depths=tuple(len(blocks[s]) for s in stages),
        dims=dims,
        d_state=state_dict[f"{op}A_logs"].shape[1],
        expand=inner / dims[0],
        parameter_sets=sets,
    )


def _variant_architecture(kwargs: dict) -> dict:
    """`describe_checkpoint`'s answer for a registered variant's checkpoint, from its kwargs."""
    depths = tuple(kwargs["depths"])
    return dict(
        depths=depths,
        dims=tuple(kwargs["dims"] * 2**i for i in range(len(depths))),
        d_state=1,
        expand=2.0,
        parameter_sets=MultiScale().num_parameter_sets,
    )


def _summary(arch: dict) -> str:
    return (
        f"depths {arch['depths']}, dims {arch['dims']}, d_state {arch['d_state']}, expand {arch['expand']:g}, "
        f"parameter sets {arch['parameter_sets']}"
    )


def checkpoint_filter_fn(checkpoint: dict, model: MSVMamba) -> dict[str, torch.Tensor]:
    """An official MSVMamba checkpoint -> our state dict (strict-loadable).

    The original's keys are ours; this takes the model weights of a `{'model': ...}` training checkpoint (never the
    EMA copy), drops the dense backbone's `outnorm{i}`, and refuses a checkpoint of another variant with a
    ValueError naming both (the first conv and the classifier head may differ: timm adapts in_chans and num_classes
    after filtering).
    """
    state_dict, _ = select_weights(checkpoint, what=f"checkpoint for {model_name(model)}")
    out = {key: value for key, value in state_dict.items() if not key.startswith("outnorm")}
    variants = {name: _variant_architecture(kwargs) for name, kwargs in _VARIANTS.items()}
    ignore = ("classifier.head.", "patch_embed.0.weight")
    check_variant_fits(out, model, describe_checkpoint, _summary, variants, ignore)
    return out


# ---------------------------------------------------------------------------------------------------- builders


def _create_msvmamba(variant: str, pretrained: bool = False, **kwargs) -> MSVMamba:
    return build_model(MSVMamba, variant, pretrained, checkpoint_filter_fn, (0, 1, 2, 3), **kwargs)


def _cfg(url: str = "", **kwargs) -> dict:
    return {
        "url": url,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.0",
        "classifier": "classifier.head",
        "license": "unknown",  # the repository states no license (YuHengsss/MSVMamba @ c394019)
        "paper_ids": "arXiv:2405.14174",
        "origin_url": "https://github.com/YuHengsss/MSVMamba",
        # The releases are Google Drive folders (the README's "log&ckpt" links) holding training checkpoints
        # ({'model': ...}); timm cannot download a folder (`build_model` refuses to try): fetch the file and pass
        # `pretrained_cfg_overlay=dict(file=PATH, custom_load=True)`; `MSVMamba.load_pretrained` reads it
        # weights-only.
        "custom_load": True,
        "notes": "url is a Google Drive folder, not a file: download the checkpoint and pass "
        "pretrained_cfg_overlay=dict(file=PATH, custom_load=True)" if url else None,
        **kwargs,
    }


# Architecture of every registered name (drop_path_rate: the original training recipe's).
_VARIANTS: dict[str, dict] = {
    "msvmamba_nano": dict(depths=(1, 2, 5, 2), dims=48, drop_path_rate=0.2),
    "msvmamba_micro": dict(depths=(1, 2, 5, 2), dims=64, drop_path_rate=0.2),
    "msvmamba_tiny": dict(depths=(1, 2, 9, 2), dims=96, drop_path_rate=0.2),
    "test_msvmamba": dict(depths=(1, 1, 2, 1), dims=16),
}

default_cfgs = generate_default_cfgs(
    {
        "msvmamba_nano.in1k": _cfg(GOOGLE_DRIVE_FOLDER + "1J41w3ApitQhp2O3wHmJoOs4U032uqebK"),
        "msvmamba_micro.in1k": _cfg(GOOGLE_DRIVE_FOLDER + "1jfl2GmuKcUB8sPwRlyHK_wT0MjqgljYk"),
        "msvmamba_tiny.in1k": _cfg(GOOGLE_DRIVE_FOLDER + "1ddNWk89ohcxxMuVEaJ2Y5A6xeBKgA7lU"),
        # 96, not the fixture's 64: at 64 the first channel-last stage map (16 × 16 × 16) has the shape of its NCHW tap,
        # which timm's pruning test then cannot tell apart.
        "test_msvmamba.untrained": _cfg(input_size=(3, 96, 96), pool_size=(3, 3)),
    }
)

# What the tools read (vssm.models._records).
HEADLINE_VARIANT = "msvmamba_tiny"
_REPO_AT = "github.com/YuHengsss/MSVMamba at c394019"


def _source(variant: str) -> str:
    return (f"MSVMamba's README table ({_REPO_AT}); more digits: the comment closing "
            f"classification/configs/ms_vssm/vssm_{variant}_224_ms.yaml, its fvcore counter (VSSM.flops)")


PUBLISHED_COUNTS = {
    "msvmamba_nano": PublishedCount("0.9", _source("nano"), derived="0.88"),
    "msvmamba_micro": PublishedCount("1.5", _source("micro"), derived="1.532"),
    "msvmamba_tiny": PublishedCount("4.6", _source("tiny"), derived="4.613"),
}
GOLDEN_FIXTURES = {"msvmamba_test": GoldenFixture("test_msvmamba")}
SPEED_TARGETS = (SpeedTarget("msvmamba_tiny", "swin_tiny_patch4_window7_224", 0.5),)
TEST_SPEED_TARGETS = (SpeedTarget("test_msvmamba", "test_resnet", 0.5, batch=2, input_size=(3, 64, 64)),)


@register_model
def msvmamba_nano(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMamba-Nano (`vssm_nano_224_ms.yaml`): 6.86M parameters, 77.3 top-1."""
    return _create_msvmamba("msvmamba_nano", pretrained, **dict(_VARIANTS["msvmamba_nano"], **kwargs))


@register_model
def msvmamba_micro(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMamba-Micro (`vssm_micro_224_ms.yaml`): 11.88M parameters, 79.8 top-1."""
    return _create_msvmamba("msvmamba_micro", pretrained, **dict(_VARIANTS["msvmamba_micro"], **kwargs))


@register_model
def msvmamba_tiny(pretrained: bool = False, **kwargs) -> MSVMamba:
    """MSVMamba-Tiny (`vssm_tiny_224_ms.yaml`): 33.05M parameters (the config's comment: 33.08M), 82.8 top-1."""
    return _create_msvmamba("msvmamba_tiny", pretrained, **dict(_VARIANTS["msvmamba_tiny"], **kwargs))


@register_model
def test_msvmamba(pretrained: bool = False, **kwargs) -> MSVMamba:
    """A tiny MSVMamba (nano's switches, depths 1-1-2-1, dims 16) for fast tests; the golden fixture's shape."""
    return _create_msvmamba("test_msvmamba", pretrained, **dict(_VARIANTS["test_msvmamba"], **kwargs))

"""The originals' own FLOP counters, as rules over our counter, and how ours agrees with the counts they published
(each family's `PUBLISHED_COUNTS`, next to its models: `vssm.models._records`).

Each family's repository counted FLOPs its own way:

* VMamba (and LocalVMamba): fvcore with a selective-scan handle, 9·B·L·(4E)·N + B·(4E)·L: exactly our `macs`
  (MzeroMiko/VMamba `classification/models/vmamba.py`, `VSSM.flops`; hunto/LocalMamba
  `classification/lib/models/local_vmamba.py`, `VSSM.flops`).
* MSVMamba: VMamba's counter unchanged (YuHengsss/MSVMamba `classification/models/vmamba.py`, `VSSM.flops`);
  fvcore's bilinear upsampling (4 per output element) and average pooling (1 per element) count as in `macs`.
* GroupMamba: VMamba's fvcore selective-scan handle, carried in its `classification/models/csms6s.py`
  (`flops_selective_scan_fn`, Amshaker/GroupMamba @ c1800ed; the repository calls no counter itself): our `macs`.
* Vim: no count of its own; VMamba's `analyze/analyze_for_vim.py` counted it with fvcore, where the fused
  `mamba_inner_fn_no_out_proj` is one traced op whose handle gives 9·B·L·E·N + 2·B·L·E per direction (scan, D skip,
  z gate) and so hides the depthwise conv1d, x_proj and dt_proj inside it. Vim-S: 5.301500928 G (a comment there).
* MambaVision: ptflops (NVlabs/MambaVision `mambavision/throughput_measure.py`), which hooks modules: conv and linear
  layers count, the functional selective scan and SDPA do not (NVlabs/MambaVision#21, #97), nor the mixer's depthwise
  conv1d, which the original also calls functionally. Our
  conv/matmul multiply-adds, with norms, pooling, scan, attention and the mixer's conv left out.
* LocalVMamba: VMamba's fvcore rule, with each direction's channel attention (BiAttn) counted as the original
  computes it (a LayerNorm, 5 per element, and two linear layers; ours gets the same statistics from products with
  a ones vector). The original projects x_proj and dt_proj on the window routes *after* padding them to the longest
  (ours projects the tokens, then pads): where a stage's grid is not a multiple of a window (7 x 7 with `w2`) the
  original counts those padded projections and ours does not (LocalVMamba-T: 0.2 %).
* PlainMamba: mmcv's `get_model_complexity_info` (module hooks) plus an analytic SSM term, 9·L·E·N + L·E per
  direction for four directions (ChenhongyiYang/PlainMamba `tools/analysis_tools/get_flops.py --is-mamba`). The
  hooks count conv multiply-adds with one per output element for a bias, linear multiply-adds without bias, norms 2
  per element with affine parameters, ReLU 1 per element, and nothing functional; mmcls' `forward_dummy` stops at
  the neck, so the classifier is not counted. Run on the original code (L1 / L2 / L3): 3,021,322,752 /
  8,088,998,400 / 14,452,657,408, which the rule below reproduces exactly.
* LocalVim (LocalMamba's analytic `flops()` in `classification/lib/models/local_vim.py`: x_proj, dt_proj and the
  conv once per layer, 5·L·E·N per direction) and U-Mamba (none published) have no rule here.

Rules are keyed by family, or by 'family.ModelClass' where a family holds networks counted differently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vssm import zoo
from vssm.analysis.counting import Category, OpaqueMethod
from vssm.layers.bi_attn import BiAttn
from vssm.layers.mamba_mixer import MambaMixer
from vssm.layers.mambavision_mixer import MambaVisionMixer
from vssm.layers.ssm_core import SSMCore
from vssm.models._records import PublishedCount
from vssm.models.plainmamba import PlainMamba


@dataclass(frozen=True)
class PublishedCounter:
    """An original repository's FLOP counter as a rule over our `macs` count."""

    name: str
    description: str
    categories: frozenset[Category] | None = None  # None: every category `macs` counts
    opaque: tuple[OpaqueMethod, ...] = field(default=())


def _mamba_inner_fn(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> int:
    """mamba_inner_fn's fvcore handle in VMamba's analyze_for_vim: 9·B·L·E·N + 2·B·L·E per route (scan, D skip and
    z gate: the original's inner function always gates, wherever our mixer applies the gate)."""
    batch, routes, inner, steps = args[0].shape
    per_step = batch * routes * inner * steps
    return 9 * per_step * module.d_state + 2 * per_step


VMAMBA_FVCORE = PublishedCounter(
    name="VMamba's fvcore counter",
    description="fvcore MACs (conv/linear without bias, layer norm 5 per element, average pool 1 per element) plus "
    "the selective scan as 9·B·L·D·N + B·D·L; element-wise ops 0",
)
VIM_BY_VMAMBA = PublishedCounter(
    name="VMamba's analyze_for_vim (fvcore)",
    description="fvcore MACs where Mamba's fused inner function (depthwise conv1d, x_proj, dt_proj, scan) is one op "
    "counted 9·B·L·E·N + 2·B·L·E per direction; conv1d/x_proj/dt_proj therefore not counted; RMSNorm 0",
    opaque=(
        OpaqueMethod(MambaMixer, "causal_conv", Category.CONV, lambda module, args, kwargs, out: 0),
        OpaqueMethod(SSMCore, "ssm", Category.SCAN, _mamba_inner_fn),
    ),
)
def _bi_attn_as_original(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> int:
    """LocalMamba's BiAttn under fvcore: LayerNorm (5 per element) of every route's outputs, then the two linears
    on the token-pooled features (the pooling mean is not counted by fvcore)."""
    batch, routes, inner, steps = args[0].shape
    hidden = module.global_reduce.out_features
    return 5 * batch * routes * inner * steps + 2 * batch * routes * inner * hidden


LOCALVMAMBA_FVCORE = PublishedCounter(
    name="VMamba's fvcore counter (LocalVMamba)",
    description=VMAMBA_FVCORE.description + "; each direction's BiAttn as LayerNorm (5 per element) + its two linears",
    opaque=(OpaqueMethod(BiAttn, "gates", Category.NORM, _bi_attn_as_original),),
)
MAMBAVISION_PTFLOPS = PublishedCounter(
    name="ptflops (MambaVision)",
    description="MACs of conv and linear layers only (ptflops' module hooks); the functional selective scan, SDPA, "
    "the mixer's functional depthwise conv1d, norms and pooling are not counted",
    categories=frozenset({Category.CONV, Category.MATMUL}),
    opaque=(OpaqueMethod(MambaVisionMixer, "_conv", Category.CONV, lambda module, args, kwargs, out: 0),),
)


def _norm_by_mmcv(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> int:
    affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
    return args[0].numel() * (2 if affine else 1)


def _conv_by_mmcv(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> int:
    per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
    return out.numel() * (per_output + (module.bias is not None))


PLAINMAMBA_MMCV = PublishedCounter(
    name="mmcv's module hooks + get_flops.py's SSM term (PlainMamba)",
    description="conv multiply-adds plus 1 per output element for a bias, linear multiply-adds, norms 2 per element "
    "(affine), ReLU 1 per element, functional ops 0, the classifier not counted; plus the selective scan as "
    "9·B·L·E·N + B·E·L per direction",
    opaque=(
        OpaqueMethod(nn.LayerNorm, "forward", Category.NORM, _norm_by_mmcv),
        OpaqueMethod(nn.BatchNorm2d, "forward", Category.NORM, _norm_by_mmcv),
        OpaqueMethod(nn.Conv2d, "forward", Category.CONV, _conv_by_mmcv),
        OpaqueMethod(nn.ReLU, "forward", Category.ELEMENTWISE, lambda module, args, kwargs, out: out.numel()),
        OpaqueMethod(PlainMamba, "forward_head", Category.MATMUL, lambda module, args, kwargs, out: 0),
    ),
)

PUBLISHED_COUNTERS: dict[str, PublishedCounter] = {
    "vim": VIM_BY_VMAMBA,
    "vmamba": VMAMBA_FVCORE,
    "msvmamba": VMAMBA_FVCORE,
    "groupmamba": VMAMBA_FVCORE,
    "localmamba.LocalVMamba": LOCALVMAMBA_FVCORE,
    "mambavision": MAMBAVISION_PTFLOPS,
    "plainmamba": PLAINMAMBA_MMCV,
}


def published_count(name: str) -> PublishedCount | None:
    """The FLOP count the authors published for a registered model (its family's `PUBLISHED_COUNTS`), or None."""
    family = zoo.family_of(name)
    if family == "timm":
        return None
    return getattr(zoo.family_module(family), "PUBLISHED_COUNTS", {}).get(name)


def published_counts() -> dict[str, PublishedCount]:
    """Every family's published counts, {registered name: count}."""
    return {name: count for family in zoo.families()
            for name, count in getattr(zoo.family_module(family), "PUBLISHED_COUNTS", {}).items()}


def significant_digits(text: str) -> int:
    """Significant digits of a decimal number written as text ('5.10' -> 3, '0.0450' -> 3)."""
    return len(text.replace(".", "").lstrip("0-")) or 1


def round_to(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


def counter_for(family: str, architecture: str | None = None) -> PublishedCounter | None:
    """The original counter of a family's `architecture` (model class name), or None when its authors published none
    we mirror."""
    if architecture is not None and f"{family}.{architecture}" in PUBLISHED_COUNTERS:
        return PUBLISHED_COUNTERS[f"{family}.{architecture}"]
    return PUBLISHED_COUNTERS.get(family)


def agreement(ours: int, published: PublishedCount) -> str:
    """'exact' (the integer published in code), 'N digits' (ours rounded to the N significant digits of the most
    precise published value equals it), or 'differs'."""
    if published.exact is not None:
        return "exact" if ours == published.exact else "differs"
    digits = significant_digits(published.reference)
    same = round_to(ours / 1e9, digits) == round_to(float(published.reference), digits)
    return f"{digits} digits" if same else "differs"

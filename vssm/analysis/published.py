"""The originals' own FLOP counters, as rules over our counter, and the counts they published.

Each family's repository counted FLOPs its own way:

* VMamba (and LocalVMamba): fvcore with a selective-scan handle, 9·B·L·(4E)·N + B·(4E)·L: exactly our `macs`
  (MzeroMiko/VMamba `classification/models/vmamba.py`, `VSSM.flops`; hunto/LocalMamba
  `classification/lib/models/local_vmamba.py`, `VSSM.flops`).
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
* LocalVim (LocalMamba's analytic `flops()` in `classification/lib/models/local_vim.py`: x_proj, dt_proj and the
  conv once per layer, 5·L·E·N per direction) and U-Mamba (none published) have no rule here.

Rules are keyed by family, or by 'family.ModelClass' where a family holds networks counted differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from vssm.analysis.counting import Category, OpaqueMethod
from vssm.layers.bi_attn import BiAttn
from vssm.layers.mamba_mixer import MambaMixer
from vssm.layers.mambavision_mixer import MambaVisionMixer
from vssm.layers.ssm_core import SSMCore


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

PUBLISHED_COUNTERS: dict[str, PublishedCounter] = {
    "vim": VIM_BY_VMAMBA,
    "vmamba": VMAMBA_FVCORE,
    "localmamba.LocalVMamba": LOCALVMAMBA_FVCORE,
    "mambavision": MAMBAVISION_PTFLOPS,
}


@dataclass(frozen=True)
class PublishedCount:
    """A FLOP count the original authors published (in G, their unit: MACs), at the model's default input size.

    `printed` is the number as printed (README, paper, code comment); `derived` the original counter's rule worked
    through the network layer by layer to more digits, where the authors printed a rounded number only; `exact` an
    integer count printed in the original code. `source` names where each comes from (repository, commit, file).
    Numbers are kept as text so that their published digits (trailing zeros included) are known.
    """

    printed: str
    source: str
    derived: str | None = None
    exact: int | None = None
    note: str = ""  # why ours differs, where it knowingly does

    @property
    def reference(self) -> str:
        """The most precise published value, in G, as text."""
        if self.exact is not None:
            return f"{self.exact / 1e9:.9f}".rstrip("0")
        return self.derived if self.derived is not None else self.printed


def significant_digits(text: str) -> int:
    """Significant digits of a decimal number written as text ('5.10' -> 3, '0.0450' -> 3)."""
    return len(text.replace(".", "").lstrip("0-")) or 1


def round_to(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


_AT_VMAMBA = "github.com/MzeroMiko/VMamba at 2ed52ea"
_VMAMBA = (f"VMamba's README and assets/performance.md ({_AT_VMAMBA}); more digits: its fvcore counter "
           "(classification/models/vmamba.py, VSSM.flops) worked through each layer")
_VMAMBA_CODE = f"VMamba's analyze/tp.py, the comment on T[s1l8] (`tv2`, an exact integer; {_AT_VMAMBA})"
_MV = ("MambaVision's README (github.com/NVlabs/MambaVision at 7860a50; ptflops, mambavision/throughput_measure.py); "
       "more digits: ptflops' rule (conv and linear layers only; NVlabs/MambaVision#21, #97) worked through each layer")
_VIM = f"VMamba's analyze/analyze_for_vim.py, the comment on Vim-S (an exact integer; {_AT_VMAMBA})"
_LOCAL = ("LocalMamba's README (github.com/hunto/LocalMamba at 75e5d1f); more digits: its counters worked through each "
          "layer (classification/lib/models/local_vim.py and local_vmamba.py, flops)")

# Vim-T and Vim-B: nobody printed a count under analyze_for_vim's rule (the script prints Vim-S's only), so they are
# not listed; their count under that rule is still in every table ("not published").
PUBLISHED_COUNTS: dict[str, PublishedCount] = {
    "vim_small": PublishedCount("5.301500928", _VIM, exact=5_301_500_928),
    "vmamba_tiny": PublishedCount("4.9", _VMAMBA_CODE, exact=4_905_609_984),
    "vmamba_tiny_s1l8": PublishedCount("4.9", _VMAMBA_CODE, exact=4_905_609_984),
    "vmamba_tiny_s2l5": PublishedCount("4.9", _VMAMBA, derived="4.858"),
    "vmamba_small": PublishedCount("8.7", _VMAMBA, derived="8.716"),
    "vmamba_small_s2l15": PublishedCount("8.7", _VMAMBA, derived="8.716"),
    "vmamba_base": PublishedCount("15.4", _VMAMBA, derived="15.359"),
    "vmamba_base_s2l15": PublishedCount("15.4", _VMAMBA, derived="15.359"),
    "vmamba_small_s1l20": PublishedCount("8.6", _VMAMBA, derived="8.612"),
    "vmamba_base_s1l20": PublishedCount("15.2", _VMAMBA, derived="15.221"),
    "vmamba_tiny_v0": PublishedCount("5.6", _VMAMBA, derived="5.627"),
    "vmamba_small_v0": PublishedCount("11.2", _VMAMBA, derived="11.232"),
    "vmamba_base_v0": PublishedCount("18.0", _VMAMBA, derived="18.020"),
    "mambavision_tiny": PublishedCount("4.4", _MV, derived="4.46"),
    "mambavision_tiny2": PublishedCount("5.1", _MV, derived="5.10"),
    "mambavision_small": PublishedCount("7.5", _MV, derived="7.48"),
    "mambavision_base": PublishedCount("15.0", _MV, derived="14.95"),
    "mambavision_base_21k": PublishedCount("15.0", _MV, derived="14.95"),
    "mambavision_large": PublishedCount("34.9", _MV, derived="34.84"),
    "mambavision_large_21k": PublishedCount("34.9", _MV, derived="34.84"),
    "mambavision_large2": PublishedCount("37.5", _MV, derived="37.50"),
    "mambavision_large2_512_21k": PublishedCount("196.3", _MV, derived="195.91"),
    "mambavision_large3_256_21k": PublishedCount("122.3", _MV, derived="122.11"),
    "mambavision_large3_512_21k": PublishedCount("489.1", _MV, derived="488.44"),
    "local_vim_tiny": PublishedCount("1.5", _LOCAL, derived="1.4818"),
    "local_vim_small": PublishedCount("4.8", _LOCAL, derived="4.7713"),
    "local_vssm_tiny": PublishedCount("5.7", _LOCAL, derived="5.7287",
                                      note="the original projects x_proj/dt_proj on padded window routes"),
    "local_vssm_small": PublishedCount("11.4", _LOCAL, derived="11.373"),
}


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

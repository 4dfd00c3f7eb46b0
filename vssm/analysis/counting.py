"""The FLOP counter behind `vssm.analysis.flops`: torch's `FlopCounterMode`, priced under two conventions at once.

One forward (and optionally backward) pass under `count(...)` yields, per module and per `Category`:

* `macs` (fvcore's default rule, what the papers print as "FLOPs"): FlopCounterMode's formulas for conv / matmul /
  attention halved to multiply-adds; the selective scan by its registered formula (9·B·L'·D·N + B·D·L, already in
  the papers' unit); the ops fvcore's default handles price, caught where fvcore sees them (at the function level:
  `F.layer_norm`, `F.batch_norm`, `F.adaptive_avg_pool2d`, ...); element-wise ops free.
* `full` (every op): FlopCounterMode's formulas as they are (2 FLOPs per multiply-add), the scan's formula, and
  every other aten op priced per element (`ELEMENT_COSTS`, arithmetic element-wise ops 1 per output element,
  reductions 1 per input element); copies, views and index bookkeeping free.

Fused SDPA on CPU (`_scaled_dot_product_flash_attention_for_cpu`) has no formula in torch and would count zero;
it gets torch's own SDPA formula here, which equals the math path's two batched matmuls (tested).

`shape_only=True` runs every op that has a formula (the matmuls, convolutions, attention and scans: nearly all of a
forward's time) on the meta device and hands back zeros of the right shape, so counting a 740 M-parameter model at
512² takes seconds. Counts depend on shapes only; nothing downstream reads those values except the element-wise
ops, which still run.

An `OpaqueMethod` makes a method count as one unit with its own formula, the way the originals' counters saw a
fused autograd Function (fvcore's `PythonOp` handles): ops inside it are not counted.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves, tree_map_only
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop, sdpa_flop

from vssm import kernels  # noqa: F401  (registers vssm::selective_scan and its FLOP formula)

aten = torch.ops.aten


class Category(str, enum.Enum):
    """What kind of work a count is, so a convention can keep or drop it."""

    CONV = "conv"
    MATMUL = "matmul"  # linear layers, matmul, bmm, einsum
    ATTENTION = "attention"  # scaled dot-product attention (both matmuls)
    SCAN = "scan"  # vssm::selective_scan
    NORM = "norm"
    POOL = "pool"
    RESAMPLE = "resample"  # upsampling, grid sampling
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"


class Pricing(str, enum.Enum):
    """The two conventions one pass prices (`flops.Convention` adds the originals' own counters on top)."""

    MACS = "macs"
    FULL = "full"


MULTIPLY_ADD_CATEGORIES = frozenset({Category.CONV, Category.MATMUL, Category.ATTENTION})


def _already_shape_wrapped(formula: Callable) -> Callable:
    """torch's registered formulas take tensors already; tell FlopCounterMode not to wrap them a second time."""

    def call(*args: Any, **kwargs: Any) -> int:
        return formula(*args, **kwargs)

    call._get_raw = True  # type: ignore[attr-defined]
    return call


# torch has no formula for the CPU fused attention kernels; torch's SDPA formulas fit their signatures.
EXTRA_FORMULAS = {
    aten._scaled_dot_product_flash_attention_for_cpu: _already_shape_wrapped(sdpa_flop),
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _already_shape_wrapped(sdpa_backward_flop),
}


@dataclass(frozen=True)
class ElementCost:
    """`full` price of an op priced per element: `plain` (or `affine` when the argument at `weight_index` is a
    tensor) FLOPs per element of the argument at `counted_index`."""

    category: Category
    plain: int
    affine: int | None = None
    weight_index: int | None = None
    counted_index: int = 0


# Norms: statistics 3 (mean; centre + square-accumulate), normalise 2, scale and shift 2 with affine parameters;
# batch norm in eval normalises with running statistics only; RMSNorm has no centring. Softmax: max, subtract,
# exp, sum, divide. Backward of norms and softmax: twice the forward. Accumulating index ops: one add per source
# element (the routes' merge).
ELEMENT_COSTS: dict[Any, ElementCost] = {
    aten.native_layer_norm: ElementCost(Category.NORM, 5, 7, weight_index=2),
    aten.native_group_norm: ElementCost(Category.NORM, 5, 7, weight_index=1),
    aten.native_batch_norm: ElementCost(Category.NORM, 5, 7, weight_index=1),
    aten._native_batch_norm_legit: ElementCost(Category.NORM, 5, 7, weight_index=1),
    aten._native_batch_norm_legit_no_training: ElementCost(Category.NORM, 2, 4, weight_index=1),
    aten._fused_rms_norm: ElementCost(Category.NORM, 4, 5, weight_index=2),
    aten.native_layer_norm_backward: ElementCost(Category.NORM, 10, 14, weight_index=5),
    aten.native_group_norm_backward: ElementCost(Category.NORM, 10, 14, weight_index=4),
    aten.native_batch_norm_backward: ElementCost(Category.NORM, 10, 14, weight_index=2),
    aten._softmax: ElementCost(Category.ELEMENTWISE, 5),
    aten._log_softmax: ElementCost(Category.ELEMENTWISE, 5),
    aten._softmax_backward_data: ElementCost(Category.ELEMENTWISE, 10),
    aten._log_softmax_backward_data: ElementCost(Category.ELEMENTWISE, 10),
    aten.index_add: ElementCost(Category.REDUCTION, 1, counted_index=3),
    aten.index_add_: ElementCost(Category.REDUCTION, 1, counted_index=3),
    aten.scatter_add: ElementCost(Category.REDUCTION, 1, counted_index=3),
    aten.scatter_add_: ElementCost(Category.REDUCTION, 1, counted_index=3),
}
# Element-wise by tag but moving data, not computing.
_DATA_MOVEMENT = frozenset({aten.clone, aten.where, aten.masked_fill, aten.masked_fill_, aten.lift_fresh})


def formula_category(op: Any) -> Category:
    """Category of an op that has a FLOP formula (FlopCounterMode's registry or the scan's)."""
    name = str(op)
    if name.startswith("vssm."):
        return Category.SCAN
    if "attention" in name:
        return Category.ATTENTION
    if "conv" in name:
        return Category.CONV
    return Category.MATMUL


@functools.cache
def _tags(op: Any) -> frozenset:
    return frozenset(tag for name in op.overloads() for tag in getattr(op, name).tags)


def _numel(t: Any) -> int:
    return t.numel() if isinstance(t, Tensor) else 0


def _at(args: tuple, index: int) -> Any:
    return args[index] if len(args) > index else None


def _first_tensor(tree: Any) -> Tensor | None:
    return next((t for t in tree_leaves(tree) if isinstance(t, Tensor)), None)


def element_price(op: Any, args: tuple, kwargs: dict, out: Any) -> tuple[Category, int] | None:
    """`full` price of an op without a FLOP formula, or None when it computes nothing (copies, views, integers)."""
    result = _first_tensor(out)
    if result is None or not (result.is_floating_point() or result.is_complex()) or op in _DATA_MOVEMENT:
        return None
    cost = ELEMENT_COSTS.get(op)
    if cost is not None:
        weighted = cost.weight_index is not None and isinstance(_at(args, cost.weight_index), Tensor)
        per = cost.affine if weighted and cost.affine is not None else cost.plain
        return cost.category, per * _numel(_at(args, cost.counted_index))
    tags = _tags(op)
    if torch.Tag.pointwise in tags:
        return Category.ELEMENTWISE, result.numel()
    if torch.Tag.reduction in tags:
        source = _first_tensor(args)
        return Category.REDUCTION, source.numel() if source is not None else 0
    return None


# ---------------------------------------------------------------------------------------------- fvcore's handles
# `macs` prices these where fvcore's jit trace sees them: at the torch-function level, before they decompose.


def _arg(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _norm_price(weight_index: int, weight_name: str) -> Callable[[tuple, dict, Any], int]:
    def price(args: tuple, kwargs: dict, out: Any) -> int:
        affine = _arg(args, kwargs, weight_index, weight_name) is not None
        return _numel(args[0]) * (5 if affine else 4)  # fvcore's "rough estimate"

    return price


def _batch_norm_price(args: tuple, kwargs: dict, out: Any) -> int:
    if _arg(args, kwargs, 5, "training"):
        return _norm_price(3, "weight")(args, kwargs, out)
    return _numel(args[0]) * (2 if _arg(args, kwargs, 3, "weight") is not None else 1)


def _mean_price(args: tuple, kwargs: dict, out: Any) -> int:
    # Global average pooling written as a mean over the map's axes; fvcore prices adaptive_avg_pool (what the
    # originals call) at one per input element. A mean over one axis (RMSNorm, token pooling) is not a pool.
    source = args[0]
    dims = _arg(args, kwargs, 1, "dim")
    reduced = source.dim() if dims is None else (1 if isinstance(dims, int) else len(dims))
    return _numel(source) if reduced >= 2 else 0


def _interpolate_price(args: tuple, kwargs: dict, out: Any) -> int:
    mode = _arg(args, kwargs, 3, "mode") or "nearest"
    return _numel(out) * {"nearest": 1, "bilinear": 4}.get(mode, 0)


FVCORE_FUNCTIONS: dict[Callable, tuple[Category, Callable[[tuple, dict, Any], int]]] = {
    F.layer_norm: (Category.NORM, _norm_price(2, "weight")),
    F.group_norm: (Category.NORM, _norm_price(2, "weight")),
    F.instance_norm: (Category.NORM, _norm_price(3, "weight")),
    F.batch_norm: (Category.NORM, _batch_norm_price),
    F.adaptive_avg_pool1d: (Category.POOL, lambda args, kwargs, out: _numel(args[0])),
    F.adaptive_avg_pool2d: (Category.POOL, lambda args, kwargs, out: _numel(args[0])),
    F.adaptive_avg_pool3d: (Category.POOL, lambda args, kwargs, out: _numel(args[0])),
    torch.mean: (Category.POOL, _mean_price),
    Tensor.mean: (Category.POOL, _mean_price),
    F.interpolate: (Category.RESAMPLE, _interpolate_price),
    F.grid_sample: (Category.RESAMPLE, lambda args, kwargs, out: 4 * _numel(out)),
}


# ---------------------------------------------------------------------------------------------- opaque methods


@dataclass(frozen=True)
class OpaqueMethod:
    """A method counted as one unit: nothing inside it is counted; `count(module, args, kwargs, result)` is added
    under `category` instead (in `macs` units; `full` gets the same number)."""

    owner: type[nn.Module]
    method: str
    category: Category
    count: Callable[[nn.Module, tuple, dict, Any], int]


# ---------------------------------------------------------------------------------------------- the counter


class _Counter(FlopCounterMode):
    """FlopCounterMode that also prices the ops outside its registry (`full`) and can be suspended."""

    def __init__(self) -> None:
        super().__init__(display=False, custom_mapping=EXTRA_FORMULAS)
        self.priced: dict[Pricing, defaultdict[str, Counter]] = {p: defaultdict(Counter) for p in Pricing}
        self.suspended = 0

    def add(self, pricing: Pricing, category: Category, count: int) -> None:
        if count:
            for parent in set(self.mod_tracker.parents):
                self.priced[pricing][parent][category] += count

    def _count_flops(self, func_packet: Any, out: Any, args: tuple, kwargs: dict) -> Any:
        if self.suspended:
            return out
        if func_packet in self.flop_registry:
            raw = self.flop_registry[func_packet](*args, **kwargs, out_val=out)
            for parent in set(self.mod_tracker.parents):
                self.flop_counts[parent][func_packet] += raw
            category = formula_category(func_packet)
            self.add(Pricing.FULL, category, raw)
            self.add(Pricing.MACS, category, raw // 2 if category in MULTIPLY_ADD_CATEGORIES else raw)
            return out
        price = element_price(func_packet, args, kwargs, out)
        if price is not None:
            self.add(Pricing.FULL, *price)
        return out

    @contextlib.contextmanager
    def suspend(self) -> Iterator[None]:
        self.suspended += 1
        try:
            yield
        finally:
            self.suspended -= 1


class _FvcoreFunctions(TorchFunctionMode):
    """Prices, for `macs`, the functions fvcore's default handles count, where fvcore sees them."""

    def __init__(self, counter: _Counter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        entry = FVCORE_FUNCTIONS.get(func)
        if entry is not None and not self.counter.suspended:
            category, price = entry
            self.counter.add(Pricing.MACS, category, price(args, kwargs, out))
        return out


class _ShapeOnly(TorchDispatchMode):
    """Runs `ops` on the meta device and returns zeros of the result's shape (on the inputs' device)."""

    def __init__(self, ops: frozenset) -> None:
        super().__init__()
        self.ops = ops

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func._overloadpacket not in self.ops:
            return func(*args, **kwargs)
        device = _first_tensor((args, kwargs)).device
        meta_args, meta_kwargs = tree_map_only(Tensor, lambda t: t.to("meta"), (args, kwargs))
        out = func(*meta_args, **meta_kwargs)
        return tree_map_only(Tensor, lambda t: torch.zeros_like(t, device=device), out)


@contextlib.contextmanager
def _opaque(model: nn.Module, methods: tuple[OpaqueMethod, ...], counter: _Counter) -> Iterator[None]:
    patched = []
    for spec in methods:
        for module in model.modules():
            if not isinstance(module, spec.owner):
                continue
            if not callable(getattr(module, spec.method, None)):
                raise AttributeError(f"{type(module).__name__} has no method {spec.method!r} to count as one unit")
            setattr(module, spec.method, _opaque_call(module, getattr(module, spec.method), spec, counter))
            patched.append((module, spec.method))
    try:
        yield
    finally:
        for module, method in patched:
            delattr(module, method)


def _opaque_call(module: nn.Module, bound: Callable, spec: OpaqueMethod, counter: _Counter) -> Callable:
    @functools.wraps(bound)
    def call(*args: Any, **kwargs: Any) -> Any:
        if counter.suspended:
            return bound(*args, **kwargs)
        with counter.suspend():
            out = bound(*args, **kwargs)
        count = spec.count(module, args, kwargs, out)
        counter.add(Pricing.MACS, spec.category, count)
        counter.add(Pricing.FULL, spec.category, count)
        return out

    return call


@dataclass(frozen=True)
class Tally:
    """Counts of one pass: `priced[pricing][module path][category]` (root = '', as the module's attribute path),
    and FlopCounterMode's own `raw[module path][op name]` (2 per multiply-add, formula ops only)."""

    priced: dict[Pricing, dict[str, dict[Category, int]]]
    raw: dict[str, dict[str, int]]

    def total(self, pricing: Pricing, categories: frozenset[Category] | None = None) -> int:
        return sum(n for c, n in self.priced[pricing].get("", {}).items() if categories is None or c in categories)


def _by_path(per_module: dict[str, Any]) -> dict[str, dict]:
    """ModuleTracker's keys -> attribute paths: 'Global' (everything counted) -> '', 'RootClass.a.b' -> 'a.b'.

    The root module's own entry is dropped: it equals 'Global' but for work outside the forward (backward seed).
    """
    out = {}
    for name, counts in per_module.items():
        if name == "Global":
            out[""] = dict(counts)
        elif "." in name:
            out[name.split(".", 1)[1]] = dict(counts)
    return out


def count(
    model: nn.Module,
    inputs: Tensor,
    *,
    backward: bool = False,
    opaque: tuple[OpaqueMethod, ...] = (),
    shape_only: bool = True,
) -> Tally:
    """Run `model(inputs)` (and a backward of its output's sum with `backward`) under the counter.

    Work outside any module (the backward pass's seed) is in the total ('') only.
    """
    counter = _Counter()
    executor = _ShapeOnly(frozenset(counter.flop_registry)) if shape_only else contextlib.nullcontext()
    grad = torch.enable_grad() if backward else torch.no_grad()
    with grad, executor, counter, _FvcoreFunctions(counter), _opaque(model, opaque, counter):
        out = model(inputs)
        if backward:
            loss = sum(t.float().sum() for t in tree_leaves(out) if isinstance(t, Tensor) and t.requires_grad)
            loss.backward()
    priced = {pricing: _by_path(per_module) for pricing, per_module in counter.priced.items()}
    raw = {path: {str(op): n for op, n in ops.items()} for path, ops in _by_path(counter.flop_counts).items()}
    return Tally(priced=priced, raw=raw)


def num_params(model: nn.Module) -> int:
    """Number of parameters (shared tensors once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())

"""Parameters and FLOPs of any model at any input size, under a named counting convention.

    from vssm.analysis.flops import Convention, count_flops
    result = count_flops(model, (3, 224, 224), Convention.MACS)      # result.total, result.by_module, ...

Counted with torch's `FlopCounterMode` (which sees `vssm::selective_scan` through its registered formula and counts
backward passes too); `fvcore_macs` recounts with fvcore and the scan's op handle as a cross-check. fvcore counts
one multiply-add as one "flop", FlopCounterMode as two, so every number here names its unit: `macs` and
`published` give multiply-adds (GMACs: what the papers print as "GFLOPs"), `full` gives FLOPs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from math import prod
from typing import Any

import torch
from torch import nn

from vssm import zoo
from vssm.analysis import published
from vssm.analysis.counting import Category, Pricing, Tally, count, num_params
from vssm.kernels.op import fvcore_handles
from vssm.models._records import PublishedCount


class Convention(str, enum.Enum):
    """How FLOPs are counted."""

    MACS = "macs"
    FULL = "full"
    PUBLISHED = "published"

    @property
    def unit(self) -> str:
        return "FLOPs" if self is Convention.FULL else "MACs"


CONVENTION_TEXT: dict[Convention, str] = {
    Convention.MACS: (
        "MACs as FLOPs (fvcore's default rule, what the papers print as 'FLOPs'): one per multiply-add of conv, "
        "linear, matmul and attention (biases not counted); layer/group/instance norm 5 per element (4 without "
        "affine), batch norm in eval 2 (1), average pooling and nearest upsampling 1 per element, bilinear 4; the "
        "selective scan 9·B·L·D·N + B·D·L (D skip); element-wise ops 0"
    ),
    Convention.FULL: (
        "every op, in FLOPs: 2 per multiply-add (torch's FlopCounterMode), the selective scan by its formula "
        "(9·B·L·D·N + B·D·L), arithmetic element-wise ops 1 per output element, reductions 1 per input element, "
        "norms 5-7 per element, softmax 5; copies, views and indexing 0"
    ),
    Convention.PUBLISHED: "the original repository's own counter for the model's family (vssm.analysis.published)",
}


@dataclass(frozen=True)
class FlopCount:
    """A model's FLOPs at one input size under one convention.

    `total` is in `unit` (MACs or FLOPs) for the whole batch (forward, plus backward when `backward`);
    `by_module` maps attribute paths ('' = the whole model) and `by_category` kinds of work to counts.
    """

    convention: Convention
    description: str
    input_size: tuple[int, int, int]
    batch: int
    backward: bool
    total: int
    params: int
    by_category: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        return self.convention.unit

    @property
    def giga(self) -> float:
        """Per image, in G (GMACs or GFLOPs)."""
        return self.total / self.batch / 1e9


def family_of_model(model: nn.Module) -> str:
    """A vssm model's family (its `vssm.models` module); '' for any other model."""
    module = type(model).__module__
    return module.rsplit(".", 1)[-1] if module.startswith("vssm.models.") else ""


def published_counter(model: nn.Module) -> published.PublishedCounter:
    """The original counter of `model`'s family; ValueError when there is none to mirror."""
    family = family_of_model(model)
    counter = published.counter_for(family, type(model).__name__)
    if counter is None:
        known = ", ".join(sorted(published.PUBLISHED_COUNTERS))
        raise ValueError(f"no published FLOP counter to mirror for family {family or type(model).__name__!r}; "
                         f"families with one: {known}")
    return counter


def _select(table: dict[str, dict[Category, int]], categories: frozenset[Category] | None) -> dict[str, int]:
    return {path: sum(n for c, n in counts.items() if categories is None or c in categories)
            for path, counts in table.items()}


def count_flops(
    model: nn.Module,
    input_size: tuple[int, int, int],
    convention: Convention | str = Convention.MACS,
    *,
    batch: int = 1,
    backward: bool = False,
    shape_only: bool = True,
) -> FlopCount:
    """Count `model`'s FLOPs for a (batch, *input_size) input.

    Args:
        model: any nn.Module taking one image batch (in eval mode unless you count training-mode work).
        input_size: (C, H, W).
        convention: `Convention` or its name.
        batch: batch size of the traced input; `FlopCount.giga` is per image.
        backward: also count the backward of the output's sum (not with `published`: the originals count forward).
        shape_only: run the formula ops (matmuls, convolutions, attention, scans) on the meta device (counts need
            shapes only); False runs everything for real.
    """
    convention = Convention(convention)
    return count_conventions(model, input_size, (convention,), batch=batch, backward=backward,
                             shape_only=shape_only)[convention]


def count_conventions(
    model: nn.Module,
    input_size: tuple[int, int, int],
    conventions: tuple[Convention | str, ...] = tuple(Convention),
    *,
    batch: int = 1,
    backward: bool = False,
    shape_only: bool = True,
) -> dict[Convention, FlopCount]:
    """`count_flops` under several conventions from as few passes as possible (`macs` and `full` share one)."""
    wanted = [Convention(c) for c in conventions]
    if Convention.PUBLISHED in wanted and backward:
        raise ValueError("backward: the published conventions count forward passes only; use 'macs' or 'full'")
    rule = published_counter(model) if Convention.PUBLISHED in wanted else None
    inputs = random_input(model, input_size, batch).requires_grad_(backward)

    def run(opaque: tuple = ()) -> Tally:
        return count(model, inputs, backward=backward, opaque=opaque, shape_only=shape_only)

    shared = run() if (set(wanted) - {Convention.PUBLISHED} or (rule and not rule.opaque)) else None
    results = {}
    for convention in wanted:
        if convention is Convention.PUBLISHED:
            tally = run(rule.opaque) if rule.opaque else shared
            results[convention] = _result(model, tally, convention, input_size, batch, backward, rule)
        else:
            results[convention] = _result(model, shared, convention, input_size, batch, backward, None)
    return results


def random_input(model: nn.Module, input_size: tuple[int, int, int], batch: int = 1) -> torch.Tensor:
    """A random (batch, *input_size) input on the model's device, in its parameters' dtype."""
    parameter = next(model.parameters(), None)
    if parameter is None:
        return torch.randn(batch, *input_size)
    return torch.randn(batch, *input_size, device=parameter.device, dtype=parameter.dtype)


def _result(model: nn.Module, tally: Tally, convention: Convention, input_size: tuple[int, int, int], batch: int,
            backward: bool, rule: published.PublishedCounter | None) -> FlopCount:
    categories = rule.categories if rule else None
    table = tally.priced[Pricing.FULL if convention is Convention.FULL else Pricing.MACS]
    by_module = _select(table, categories)
    totals = table.get("", {})
    return FlopCount(
        convention=convention,
        description=f"{rule.name}: {rule.description}" if rule else CONVENTION_TEXT[convention],
        input_size=tuple(input_size),  # type: ignore[arg-type]
        batch=batch,
        backward=backward,
        total=by_module.get("", 0),
        params=num_params(model),
        by_category={c.value: n for c, n in sorted(totals.items(), key=lambda kv: kv[0].value)
                     if categories is None or c in categories},
        by_module=by_module,
    )


# ---------------------------------------------------------------------------------------------- fvcore cross-check


def _shape(value: Any) -> list[int] | None:
    from fvcore.nn.jit_handles import get_shape

    return None if value.type().kind() == "NoneType" else get_shape(value)


def _constant_list(value: Any) -> list | None:
    """A jit value's constant (list) value, also when the trace built the list from constants."""
    constant = value.toIValue()
    if constant is not None:
        return constant
    node = value.node()
    return [v.toIValue() for v in node.inputs()] if node.kind() == "prim::ListConstruct" else None


def _fvcore_mean(inputs: list, outputs: list) -> int:
    dims = _constant_list(inputs[1]) if len(inputs) > 1 else None
    shape = _shape(inputs[0])
    reduced = len(shape) if dims is None else len(dims)
    return prod(shape) if reduced >= 2 else 0


def _fvcore_sdpa(inputs: list, outputs: list) -> int:
    query, key, value = (_shape(v) for v in inputs[:3])
    *batch, q_len, head_dim = query
    return prod(batch) * q_len * key[-2] * (head_dim + value[-1])


def _fvcore_matmul(inputs: list, outputs: list) -> int:
    first, second = _shape(inputs[0]), _shape(inputs[1])
    if len(first) == 1 or len(second) == 1:
        return prod(first) if len(second) == 1 else prod(second)
    batch = torch.broadcast_shapes(torch.Size(first[:-2]), torch.Size(second[:-2]))
    return prod(batch) * first[-2] * first[-1] * second[-1]


def _fvcore_conv_mode(inputs: list, outputs: list) -> int:
    weight, out = _shape(inputs[1]), _shape(outputs[0])
    return prod(out) * prod(weight[1:])


def fvcore_extra_handles() -> dict[str, Any]:
    """fvcore handles that make its count follow `Convention.MACS`: the scan, global average pooling written as a
    mean, SDPA (both matmuls), convolutions with string padding (which fvcore 0.1.5 does not know) and matmul with
    batch dimensions on the second operand (which fvcore 0.1.5's handle drops: (C, C) @ (B, C, L) counts C·C·L)."""
    return {
        **fvcore_handles(),
        "aten::matmul": _fvcore_matmul,
        "aten::mean": _fvcore_mean,
        "aten::scaled_dot_product_attention": _fvcore_sdpa,
        "aten::_convolution_mode": _fvcore_conv_mode,
    }


def fvcore_macs(model: nn.Module, input_size: tuple[int, int, int], batch: int = 1) -> tuple[int, dict[str, int]]:
    """Multiply-adds by fvcore (jit trace, real forward) under `Convention.MACS`: (total, {fvcore op kind: count})."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, random_input(model, input_size, batch)).set_op_handle(**fvcore_extra_handles())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        total = int(analysis.total())
    return total, {k: int(v) for k, v in analysis.by_operator().items()}


def format_count(value: float, unit: str = "") -> str:
    """1234567 -> '1.235 M' (+ unit)."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {suffix}{unit}"
    return f"{value:.4g} {unit}".rstrip()


def module_rows(result: FlopCount, depth: int) -> list[tuple[str, int]]:
    """(path, count) of the modules at most `depth` levels deep, in the order the forward reached them; '' (the
    model) first. Containers that never run a forward of their own (ModuleList) get the sum of their children."""
    paths = result.by_module

    def total(prefix: str) -> int:
        if prefix in paths:
            return paths[prefix]
        level = prefix.count(".") + 1
        children = dict.fromkeys(p.split(".")[level] for p in paths if p.startswith(prefix + "."))
        return sum(total(f"{prefix}.{child}") for child in children)

    rows: dict[str, int] = {"": paths.get("", 0)}
    for path in paths:
        parts = path.split(".") if path else []
        for k in range(1, min(depth, len(parts)) + 1):
            prefix = ".".join(parts[:k])
            if prefix not in rows:
                rows[prefix] = total(prefix)
    return list(rows.items())


__all__ = [
    "CONVENTION_TEXT",
    "Convention",
    "FlopCount",
    "count_conventions",
    "count_flops",
    "format_count",
    "fvcore_extra_handles",
    "fvcore_macs",
    "module_rows",
]


@dataclass(frozen=True)
class ModelFlops:
    """A registered model's counts at one input size: every requested convention, the count its authors published
    (`reference`, None when there is none for this variant and size) and how ours agrees with it, and fvcore's count
    when asked."""

    name: str
    input_size: tuple[int, int, int]
    results: dict[Convention, FlopCount]
    reference: PublishedCount | None
    agreement: str | None
    fvcore: int | None = None

    @property
    def params(self) -> int:
        return next(iter(self.results.values())).params


def count_model(
    name: str,
    input_size: tuple[int, int, int] | None = None,
    conventions: tuple[Convention | str, ...] = tuple(Convention),
    *,
    batch: int = 1,
    backward: bool = False,
    with_fvcore: bool = False,
    model: nn.Module | None = None,
) -> ModelFlops:
    """Build a registered (or timm) model and count it; `published` is skipped for families without a counter.

    The published count is compared only at the model's default input size (where it was published).
    """
    size = tuple(input_size or zoo.default_input_size(name))
    model = model if model is not None else zoo.create(name, size)  # type: ignore[arg-type]
    wanted = tuple(Convention(c) for c in conventions)
    counter = published.counter_for(family_of_model(model), type(model).__name__)
    if Convention.PUBLISHED in wanted and (backward or counter is None):
        wanted = tuple(c for c in wanted if c is not Convention.PUBLISHED)
    results = count_conventions(model, size, wanted, batch=batch, backward=backward)  # type: ignore[arg-type]
    reference = published.published_count(name) if size == tuple(zoo.default_input_size(name)) else None
    ours = results.get(Convention.PUBLISHED)
    verdict = published.agreement(ours.total // batch, reference) if reference and ours and not backward else None
    fvcore = fvcore_macs(model, size, batch)[0] if with_fvcore else None  # type: ignore[arg-type]
    return ModelFlops(name, size, results, reference, verdict, fvcore)  # type: ignore[arg-type]

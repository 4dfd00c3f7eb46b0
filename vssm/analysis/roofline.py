"""A GPU cost model that runs on the CPU: every aten op of a forward (or a training step) priced by the roofline.

    from vssm.analysis.roofline import Mode, profile_model
    profile = profile_model("vmamba_tiny", Mode.TRAIN, batch=128)
    profile.predicted_s()              # seconds per step on an H100 (bf16 autocast)
    profile.contributors(10)           # where the time goes: (module class, aten op) rows
    profile.compiled().predicted_s()   # the same step under torch.compile (an estimate, see "Compiled" below)

The model runs on the `meta` device (shapes only: seconds for any model, no memory) under a `TorchDispatchMode`
that records, per aten op, the bytes it reads and writes (from shapes and dtypes; a broadcast operand counts its
distinct elements), its FLOPs (torch's FLOP formulas for matmuls, convolutions and attention, the selective scan's
registered formula, `vssm.analysis.counting.element_price` for the rest) and its kernel launches (views and
allocations launch nothing). The predicted time of a step is

    sum over ops of max(bytes / bandwidth, FLOPs / peak(dtype)) / efficiency  +  launches x launch_s

with the GPU's roofs (`H100`: 3.0 TB/s, 989 TFLOP/s for bf16 matmuls, 67 TFLOP/s on the CUDA cores) and two
constants fitted once against measured H100 throughput (`Calibration`; `benchmarks/gpu_model.py` fits them and
reports the error on every committed row).

What the meta device does not do on its own is emulated, so that the ops recorded are those a CUDA run launches:

* bf16 autocast (`CudaEmulation`: autocast does not act on meta tensors): CUDA autocast's op lists at the
  function level: matmuls, linear layers, convolutions and attention cast their float32 operands to bf16 (a weight
  once per step, as autocast's cache does); exp, log, softplus, pow, rsqrt and the norms cast bf16 inputs to float32;
  sum, cumsum, softmax and log_softmax compute in float32.
* attention: `F.scaled_dot_product_attention` runs as the fused flash kernel (the memory-efficient one with a mask),
  as on an H100, not as the math path the meta device would take; likewise `F.rms_norm` as CUDA's one-kernel
  `aten._fused_rms_norm` (its backward as layer norm's), not as the meta device's six ops.
* the selective scan: priced as the Triton backend runs it on CUDA (`kernels/triton_scan.py`: one forward kernel,
  a backward kernel plus the sums of its per-program dB/dC partials), and, for a route whose steps mostly jump, the
  gathers into route order and the scatter back that `kernels.route_order` adds on CUDA.

Training steps mirror `vssm.analysis.benchmark`: forward under autocast, backward of the output's float32 mean,
SGD with momentum (foreach kernels).

Compiled (`Profile.compiled`, an estimate of `torch.compile(model)` in inductor's default mode, not a measurement):
every recorded op is either a library kernel inductor calls as it is (an op with a FLOP formula: matmuls,
convolutions and their backward, the fused attentions; the scan's rows; the optimizer's foreach kernels, which
compiling the model leaves out) or an op inductor generates code for (everything else: elementwise ops, casts,
reductions, norms, copies, cat/stack, gathers). Each maximal run of generated ops between two library kernels, in
the eager order, is fused: it reads each storage the run reads before it writes it, once, and writes each storage
it writes that an op after the run reads (the step's last op's outputs too); what only the run reads is never
materialised, and the norms' strided-input copies disappear. It launches one kernel per chain of the run (its ops
linked by one writing what another reads: independent chains, such as a weight's cast next to an activation's
norm, are separate kernels). Priced like any op, with the same constants. Optimistic where inductor splits a chain
(reductions over different axes, more than one output shape) into several kernels; pessimistic where it fuses
across a library kernel that the run does not depend on, fuses independent chains, or its
partitioner recomputes an activation in the backward instead of saving it. As assumed here, inductor's default
mode leaves the library kernels' epilogues unfused (no max-autotune templates) and launches every kernel from the
host (no CUDA graphs).

Not modelled: how far one kernel falls below the common efficiency (the scan at short sequences, cuDNN's choices),
the host's time when it cannot keep the GPU busy, and copies a CUDA kernel makes inside an op other than the norms'
and softmax's of a strided input.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed._tools.mod_tracker import ModTracker
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import conv_flop_count, flop_registry
from torch.utils.weak import WeakIdKeyDictionary

from vssm import scans, zoo
from vssm.analysis.benchmark import Mode
from vssm.analysis.counting import EXTRA_FORMULAS, MULTIPLY_ADD_CATEGORIES, element_price, formula_category
from vssm.kernels.route_order import route_layout
from vssm.kernels.scan_tensors import ScanTensors

aten = torch.ops.aten


@dataclass(frozen=True)
class GPU:
    """A GPU's roofs: memory bandwidth (bytes/s), tensor-core FLOP/s by operand dtype, CUDA-core FLOP/s."""

    name: str
    bandwidth: float
    matmul_peak: dict[torch.dtype, float]
    vector_peak: float

    def seconds(self, read_written: int, flops: int, tensor_cores: bool, dtype: torch.dtype) -> float:
        """The roofline time of one op at full efficiency."""
        peak = self.matmul_peak.get(dtype, self.vector_peak) if tensor_cores else self.vector_peak
        return max(read_written / self.bandwidth, flops / peak)


# H100 SXM dense peaks (NVIDIA's data sheet: 989 TFLOP/s bf16/fp16, 67 TFLOP/s fp32); float32 matmuls stay on the
# CUDA cores (torch's default, allow_tf32 False). 3.0 TB/s: the data sheet's 3.35 rounded down, as
# benchmarks/bench_selective_scan.py assumes it.
H100 = GPU("NVIDIA H100 SXM", 3.0e12, {torch.bfloat16: 989e12, torch.float16: 989e12}, 67e12)


@dataclass(frozen=True)
class Calibration:
    """The two fitted constants: the share of the roofs a kernel reaches, and the cost of one launch (seconds)."""

    efficiency: float
    launch_s: float

    def __post_init__(self) -> None:
        if not (0 < self.efficiency <= 1) or self.launch_s < 0:
            raise ValueError(f"calibration: expected 0 < efficiency <= 1 and launch_s >= 0, got {self.efficiency}, "
                             f"{self.launch_s}")


# Fitted by `python benchmarks/gpu_model.py --update-repo` to the committed H100 throughput rows of
# benchmarks/h100/throughput_cuda*.csv (which rows: its `in_fit`); the fit and its error on every row are in
# benchmarks/gpu_model.md, and a slow test checks that these are the fit's values.
H100_CALIBRATION = Calibration(efficiency=0.792, launch_s=18.7e-6)


class Fusion(enum.Enum):
    """What inductor does with a recorded op when the model is compiled (`Profile.compiled`)."""

    EXTERN = "extern"  # a library or custom kernel inductor calls as it is: matmuls, convolutions, attention, the scan
    FUSIBLE = "fusible"  # elementwise ops, reductions, norms, copies, casts, gathers: inductor generates them
    INSIDE = "inside"  # a copy a CUDA kernel makes of a strided input (a generated kernel reads the strides)


@dataclass(frozen=True)
class OpCost:
    """One recorded op: where it ran (innermost module class, '' outside any), bytes read + written, FLOPs,
    kernel launches, and its roofline seconds at full efficiency.

    For the compiled estimate: `fusion`, and the tensors it reads and writes as (storage id, bytes) pairs (a view
    reads its base's storage; an in-place op reads and writes it)."""

    op: str
    module: str
    bytes: int
    flops: int
    launches: int
    roof_s: float
    fusion: Fusion = Fusion.EXTERN
    reads: tuple[tuple[int, int], ...] = ()
    writes: tuple[tuple[int, int], ...] = ()

    def seconds(self, calibration: Calibration) -> float:
        return self.roof_s / calibration.efficiency + self.launches * calibration.launch_s


@dataclass(frozen=True)
class Contributor:
    """A (module class, op) group of a profile: its calls and share of the predicted time."""

    module: str
    op: str
    calls: int
    bytes: int
    flops: int
    launches: int
    seconds: float
    share: float


@dataclass
class Profile:
    """The recorded ops of one step of `model` (`mode`, `batch` images) on `gpu`."""

    model: str
    mode: Mode
    batch: int
    input_size: tuple[int, int, int]
    gpu: GPU
    ops: list[OpCost] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(o.bytes for o in self.ops)

    @property
    def flops(self) -> int:
        return sum(o.flops for o in self.ops)

    @property
    def launches(self) -> int:
        return sum(o.launches for o in self.ops)

    @property
    def roof_s(self) -> float:
        return sum(o.roof_s for o in self.ops)

    def predicted_s(self, calibration: Calibration = H100_CALIBRATION) -> float:
        """Predicted seconds per step."""
        return self.roof_s / calibration.efficiency + self.launches * calibration.launch_s

    def images_per_s(self, calibration: Calibration = H100_CALIBRATION) -> float:
        return self.batch / self.predicted_s(calibration)

    def compiled(self) -> Profile:
        """This step as `torch.compile` (inductor, default mode) would run it: an estimate, by the rule in the
        module docstring ("Compiled"). Its ops are the library kernels, unchanged, and one op per fused group."""
        last_read: dict[int, int] = {}
        for index, o in enumerate(self.ops):
            for key, _ in o.reads:
                last_read[key] = index
        ops: list[OpCost] = []
        group: list[int] = []

        def close() -> None:
            if group:
                fused = _fused(self.gpu, [self.ops[i] for i in group], group[-1], last_read, len(self.ops) - 1)
                if fused is not None:
                    ops.append(fused)
                group.clear()

        for index, o in enumerate(self.ops):
            if o.fusion is Fusion.EXTERN:
                close()
                ops.append(o)
            else:
                group.append(index)
        close()
        return Profile(self.model, self.mode, self.batch, self.input_size, self.gpu, ops)

    def contributors(self, top: int = 10, calibration: Calibration = H100_CALIBRATION) -> list[Contributor]:
        """The `top` (module class, op) groups by predicted time, largest first."""
        groups: dict[tuple[str, str], list[OpCost]] = defaultdict(list)
        for o in self.ops:
            groups[o.module, o.op].append(o)
        total = self.predicted_s(calibration)
        rows = []
        for (module, op), ops in groups.items():
            seconds = sum(o.seconds(calibration) for o in ops)
            rows.append(Contributor(module, op, len(ops), sum(o.bytes for o in ops), sum(o.flops for o in ops),
                                    sum(o.launches for o in ops), seconds, seconds / total if total else 0.0))
        return sorted(rows, key=lambda r: -r.seconds)[:top]


FUSED = "inductor kernel (fused ops)"


def _fused(gpu: GPU, members: list[OpCost], end: int, last_read: dict[int, int], last_op: int) -> OpCost | None:
    """The generated kernels of a run of fusible ops (`Profile.compiled`), as one row: they read each storage the run
    reads before writing it, once, and write each storage it writes that an op after the run reads (or the step's
    last op writes); one launch per chain of the run (ops linked by one writing what another reads); None for a run
    that moves nothing (copies inside a kernel only)."""
    read: dict[int, int] = {}
    written: dict[int, int] = {}
    writer: dict[int, int] = {}  # storage -> the member that wrote it last
    chain = list(range(len(members)))  # union-find over the members: the chains of the run

    def root(i: int) -> int:
        while chain[i] != i:
            chain[i] = chain[chain[i]]
            i = chain[i]
        return i

    for index, o in enumerate(members):
        for key, size in o.reads:
            if key in written:
                chain[root(index)] = root(writer[key])
            else:
                read[key] = max(read.get(key, 0), size)
        for key, size in o.writes:
            written[key] = max(written.get(key, 0), size)
            writer[key] = index
    kept = sum(size for key, size in written.items() if last_read.get(key, -1) > end or end == last_op)
    moved = sum(read.values()) + kept
    if not moved:
        return None
    flops = sum(o.flops for o in members)
    launches = len({root(i) for i, o in enumerate(members) if o.reads or o.writes})
    module = max(members, key=lambda o: o.bytes).module
    return OpCost(FUSED, module, moved, flops, launches, gpu.seconds(moved, flops, False, torch.float32),
                  Fusion.FUSIBLE)


# ---------------------------------------------------------------------------------------------- autocast on meta

_LOWER_PRECISION = frozenset({
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "matmul",
    "__matmul__", "__rmatmul__", "mm", "bmm", "addmm", "baddbmm", "addbmm", "einsum", "mv", "prelu",
    "scaled_dot_product_attention",
})
_FLOAT32 = frozenset({
    "exp", "expm1", "log", "log1p", "log2", "log10", "reciprocal", "rsqrt", "pow", "__pow__", "__rpow__", "softplus",
    "layer_norm", "group_norm", "normalize", "cosine_similarity", "erfinv", "acos", "asin", "cosh", "sinh", "tan",
})
_FLOAT32_COMPUTE = frozenset({"sum", "cumsum", "cumprod", "prod", "softmax", "log_softmax", "softmin"})


class CudaEmulation(TorchFunctionMode):
    """What a CUDA run does differently at the function level, for tensors on the meta device: CUDA autocast's
    policy to `amp_dtype` (None: no autocast), and attention as the fused kernel (`fused_attention`).

    Casts of leaf tensors that require grad (the weights) are cached for the mode's life, as autocast caches them
    for one forward. `host_copies` maps integer tables moved from the CPU to the meta device (routes) to their CPU
    originals, whose values decide what a CUDA run does with them (a torch-function mode sees these moves: the
    route caches build their tables with the dispatch modes off).
    """

    def __init__(self, amp_dtype: torch.dtype | None = torch.bfloat16,
                 host_copies: WeakIdKeyDictionary | None = None) -> None:
        super().__init__()
        self.dtype = amp_dtype
        self.cache: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.host_copies = WeakIdKeyDictionary() if host_copies is None else host_copies

    def _cast(self, value: Any, source: torch.dtype, target: torch.dtype) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(self._cast(v, source, target) for v in value)
        if not isinstance(value, Tensor) or value.dtype != source:
            return value
        if value.is_leaf and value.requires_grad:
            if value not in self.cache:
                self.cache[value] = value.to(target)
            return self.cache[value]
        return value.to(target)

    def _autocast(self, name: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if name in _LOWER_PRECISION:
            return self._cast((args, kwargs), torch.float32, self.dtype)
        if name in _FLOAT32:
            return self._cast((args, kwargs), self.dtype, torch.float32)
        first = _first_tensor(args)
        if name in _FLOAT32_COMPUTE and "dtype" not in kwargs and first is not None and first.dtype == self.dtype:
            return args, {**kwargs, "dtype": torch.float32}
        return args, kwargs

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if self.dtype is not None:
            args, kwargs = self._autocast(name, args, kwargs)
        if name == "scaled_dot_product_attention":
            return fused_attention(*args, **kwargs)
        if name == "rms_norm":
            return fused_rms_norm(*args, **kwargs)
        out = func(*args, **kwargs)
        source = args[0] if args else None
        if (name == "to" and isinstance(out, Tensor) and out.device.type == "meta" and isinstance(source, Tensor)
                and source.device.type == "cpu" and not source.is_floating_point()):
            self.host_copies[out] = source
        return out


def _rms_norm_shapes(x: Tensor, dims: int) -> tuple[list[int], torch.dtype]:
    return [*x.shape[: x.dim() - dims], *([1] * dims)], torch.promote_types(x.dtype, torch.float32)


@torch.library.custom_op("cuda_emulation::_fused_rms_norm", mutates_args=())
def _fused_rms_norm(x: Tensor, weight: Tensor | None, dims: int, eps: float) -> tuple[Tensor, Tensor]:
    """(y, rstd): CUDA's one-kernel RMSNorm (`aten._fused_rms_norm`), which `F.rms_norm` runs on CUDA tensors while
    the meta device runs its six-op composite; seen by the recorder as one op."""
    axes = tuple(range(-dims, 0))
    rstd = torch.rsqrt(x.to(_rms_norm_shapes(x, dims)[1]).pow(2).mean(axes, keepdim=True) + eps)
    y = (x * rstd).to(x.dtype)
    return (y if weight is None else y * weight), rstd


@_fused_rms_norm.register_fake
def _(x: Tensor, weight: Tensor | None, dims: int, eps: float) -> tuple[Tensor, Tensor]:
    shape, dtype = _rms_norm_shapes(x, dims)
    return torch.empty_like(x), x.new_empty(shape, dtype=dtype)


@torch.library.custom_op("cuda_emulation::_fused_rms_norm_backward", mutates_args=())
def _fused_rms_norm_backward(grad: Tensor, x: Tensor, rstd: Tensor, weight: Tensor | None,
                             dims: int) -> tuple[Tensor, Tensor]:
    """(grad x, grad weight) of `_fused_rms_norm`, as CUDA's backward computes them (a weight of ones without one)."""
    axes = tuple(range(-dims, 0))
    normed = x * rstd
    scaled = grad if weight is None else grad * weight
    grad_x = rstd * (scaled - normed * (scaled * normed).mean(axes, keepdim=True))
    grad_weight = (grad * normed).sum(tuple(range(x.dim() - dims)))
    return grad_x.to(x.dtype), grad_weight


@_fused_rms_norm_backward.register_fake
def _(grad: Tensor, x: Tensor, rstd: Tensor, weight: Tensor | None, dims: int) -> tuple[Tensor, Tensor]:
    return torch.empty_like(x), x.new_empty(x.shape[x.dim() - dims:], dtype=weight.dtype if weight is not None
                                            else x.dtype)


def _rms_norm_setup(ctx: Any, inputs: tuple, output: tuple) -> None:
    x, weight, dims, _ = inputs
    ctx.save_for_backward(x, output[1], weight)
    ctx.dims = dims


def _rms_norm_backward(ctx: Any, grad: Tensor, _grad_rstd: Tensor) -> tuple:
    x, rstd, weight = ctx.saved_tensors
    grad_x, grad_weight = _fused_rms_norm_backward(grad, x, rstd, weight, ctx.dims)
    return grad_x, (grad_weight if weight is not None and ctx.needs_input_grad[1] else None), None, None


_fused_rms_norm.register_autograd(_rms_norm_backward, setup_context=_rms_norm_setup)


def fused_rms_norm(input: Tensor, normalized_shape: Any, weight: Tensor | None = None,
                   eps: float | None = None) -> Tensor:
    """`F.rms_norm` as the one kernel a CUDA run launches (`aten._fused_rms_norm`)."""
    dims = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    eps = torch.finfo(input.dtype).eps if eps is None else eps
    return _fused_rms_norm(input, weight, dims, eps)[0]


def fused_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                    dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                    enable_gqa: bool = False) -> Tensor:
    """`F.scaled_dot_product_attention` as the kernel a CUDA run picks: flash attention, or the memory-efficient
    kernel when there is a mask (query, key, value: (B, H, L, E))."""
    if attn_mask is None:
        return aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, scale=scale)[0]
    bias = attn_mask.expand(query.shape[0], query.shape[1], query.shape[2], key.shape[2])
    if bias.dtype == torch.bool:
        bias = torch.zeros_like(bias, dtype=query.dtype).masked_fill(bias.logical_not(), float("-inf"))
    grad = any(t.requires_grad for t in (query, key, value)) and torch.is_grad_enabled()
    return aten._scaled_dot_product_efficient_attention(query, key, value, bias.to(query.dtype), grad, dropout_p,
                                                        is_causal, scale=scale)[0]


# ---------------------------------------------------------------------------------------------- the recorder


def _first_tensor(tree: Any) -> Tensor | None:
    return next((t for t in tree_leaves(tree) if isinstance(t, Tensor)), None)


def tensor_bytes(t: Tensor) -> int:
    """Bytes of the distinct elements of `t` (a broadcast axis, stride 0, is read once)."""
    distinct = math.prod(size for size, stride in zip(t.shape, t.stride(), strict=True) if stride != 0)
    return distinct * t.element_size()


def _distinct(tensors: Any) -> list[Tensor]:
    seen: dict[int, Tensor] = {}
    for t in tree_leaves(tensors):
        if isinstance(t, Tensor):
            seen.setdefault(id(t), t)
    return list(seen.values())


# Ops that launch nothing and move nothing: views, aliases and allocations.
_FREE = frozenset({
    aten.detach, aten._unsafe_view, aten.alias, aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty,
    aten.new_empty_strided, aten.lift_fresh, aten._reshape_alias, aten.set_, aten.resize_, aten.sym_size,
    aten.sym_stride, aten.sym_numel, aten.sym_storage_offset, aten.is_same_size, aten._local_scalar_dense,
})
_SCAN_OPS = ("vssm.selective_scan", "vssm.selective_scan_backward")
# Ops that run several kernels on CUDA: layer/group norm backward (input gradient, then the weight and bias
# gradients' partial and final sums), the fused attentions' backward (a pre-processing pass, the kernel, a
# conversion of the float32 dq accumulator).
_LAUNCHES = {
    aten.native_layer_norm_backward: 3,
    aten.native_group_norm_backward: 3,
    aten.native_batch_norm_backward: 2,
    aten._scaled_dot_product_flash_attention_backward: 3,
    aten._scaled_dot_product_efficient_attention_backward: 2,
    torch.ops.cuda_emulation._fused_rms_norm_backward: 3,  # as the layer norm's: it runs the same CUDA kernels
}
# CUDA kernels that copy a strided input to a contiguous one first, inside the op (LayerNorm2d's permuted maps).
_CONTIGUOUS_INPUTS = frozenset({aten.native_layer_norm, aten.native_layer_norm_backward, aten.native_group_norm,
                                aten.native_group_norm_backward, aten._softmax, aten._log_softmax})
# multi_tensor_apply's most tensors per launch for the three-list foreach kernels SGD with momentum runs
_FOREACH_TENSORS_PER_LAUNCH = 48


class _Recorder(TorchDispatchMode):
    """Records an `OpCost` per launched op; remembers where integer tables came to the meta device from (routes)."""

    def __init__(self, gpu: GPU, tracker: ModTracker, names: dict[str, str],
                 host_copies: WeakIdKeyDictionary) -> None:
        super().__init__()
        self.gpu = gpu
        self.tracker = tracker
        self.names = names
        self.host_copies = host_copies
        self.ops: list[OpCost] = []
        self.phase = ""
        # Backward ops are attributed to the module whose forward made the autograd node running them (the module
        # tracker's own backward attribution follows gradient hooks and lands on identities and dropouts).
        self.made: list[tuple[Tensor, str]] = []
        self.node_modules: dict[int, str] | None = None
        # every storage an op touched, so that no storage id is reused within the step (meta storages hold no
        # memory); the storages, not the tensors: a held gradient would make AccumulateGrad copy it
        self.touched: list[torch.UntypedStorage] = []

    def _forward_module(self) -> str:
        parents = [p for p in self.tracker.parents if p != "Global"]
        return self.names.get(max(parents, key=lambda p: p.count(".")), "") if parents else ""

    def _module(self) -> str:
        node = torch._C._current_autograd_node()
        if node is None:
            return self.phase or self._forward_module()
        if self.node_modules is None:
            self.node_modules = {id(t.grad_fn): module for t, module in self.made if t.grad_fn is not None}
        module = self.node_modules.get(id(node))
        # a custom op's backward node (the scan's) is not the object its outputs' grad_fn gives back
        return f"{module or node.name().removeprefix('GeneratedBackwardFor_')} (backward)"

    def _remember(self, out: Any) -> None:
        if torch.is_grad_enabled() and torch._C._current_autograd_node() is None:
            module = self._forward_module()
            self.made.extend((t, module) for t in _distinct(out) if t.requires_grad or t.is_floating_point())

    def add(self, op: str, read_written: int, flops: int, launches: int, tensor_cores: bool = False,
            dtype: torch.dtype = torch.float32, fusion: Fusion = Fusion.EXTERN, reads: tuple = (),
            writes: tuple = ()) -> None:
        module = self._module()
        if module == "SGD step":  # the optimizer is not part of the compiled model: its foreach kernels stay
            fusion = Fusion.EXTERN
        self.ops.append(OpCost(op, module, read_written, flops, launches,
                               self.gpu.seconds(read_written, flops, tensor_cores, dtype), fusion, reads, writes))

    def _storages(self, tensors: list[Tensor]) -> tuple[tuple[int, int], ...]:
        storages = [t.untyped_storage() for t in tensors]
        self.touched.extend(storages)
        return tuple((storage._cdata, tensor_bytes(t)) for storage, t in zip(storages, tensors, strict=True))

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        self._remember(out)
        if func.is_view or packet in _FREE:
            return out
        name = str(packet)
        inputs, outputs = _distinct((args, kwargs)), _distinct(out)
        reads, writes = self._storages(inputs), self._storages(outputs)
        if name in _SCAN_OPS:
            self._scan(name, args, out, reads, writes)
            return out
        read_written = sum(tensor_bytes(t) for t in inputs) + sum(tensor_bytes(t) for t in outputs
                                                                    if all(t is not i for i in inputs))
        launches = _LAUNCHES.get(packet, 1)
        if packet is aten.convolution_backward:
            launches = sum(args[-1])  # one kernel per gradient asked for (input, weight, bias)
        if name.startswith("aten._foreach_"):
            launches = math.ceil(len(tree_leaves(args[0])) / _FOREACH_TENSORS_PER_LAUNCH)
        flops, tensor_cores, library = self._flops(packet, args, kwargs, out)
        dtype = inputs[0].dtype if inputs else torch.float32
        if packet in _CONTIGUOUS_INPUTS and not args[0].is_contiguous():
            self.add(f"{name} (its input's contiguous copy)", 2 * tensor_bytes(args[0]), 0, 1, fusion=Fusion.INSIDE)
        fusion = Fusion.EXTERN if library or name.startswith("aten._foreach_") else Fusion.FUSIBLE
        self.add(name, read_written, flops, launches, tensor_cores, dtype, fusion, reads, writes)
        return out

    def _flops(self, packet: Any, args: tuple, kwargs: dict, out: Any) -> tuple[int, bool, bool]:
        """(FLOPs, on the tensor cores, a library kernel: an op with a FLOP formula, a matmul/conv/attention)."""
        if packet is aten.convolution_backward and args[-4] != 1:
            return grouped_conv_backward_flops(*args), True, True
        formula = EXTRA_FORMULAS.get(packet) or flop_registry.get(packet)
        if formula is not None:
            return formula(*args, **kwargs, out_val=out), formula_category(packet) in MULTIPLY_ADD_CATEGORIES, True
        price = element_price(packet, args, kwargs, out)
        return (price[1] if price else 0), False, False

    def _scan(self, name: str, args: tuple, out: Any, reads: tuple, writes: tuple) -> None:
        formula = flop_registry[getattr(torch.ops.vssm, name.split(".")[1])]
        flops = formula(*args, out_val=out)
        forward = name == _SCAN_OPS[0]
        scan = ScanTensors(*(args[:9] if forward else args[1:10]))
        output = out[0] if forward else args[0]  # y, or the backward's grad_out: float32 when the call asks for it
        fold_at = 12 if forward else 13  # after (tensors, [saved,] delta_softplus, [out_float32,] backend)
        fold = args[fold_at] if len(args) > fold_at else 1
        for label, read_written, launches in triton_scan_traffic(scan, forward, self._scatters(scan), output, fold):
            main = label == name
            self.add(label, read_written, flops if main else 0, launches, reads=reads if main else (),
                     writes=writes if main else ())

    def _scatters(self, scan: ScanTensors) -> bool:
        """Whether a CUDA run gathers this call's route: decided by the route's values, which the meta tensor has
        not; its CPU original has them (a route derived on the meta device has none: read in place)."""
        host = None if scan.route is None else self.host_copies.get(scan.route)
        return host is not None and route_layout(host, scan.delta.shape[-1]).scatters


def grouped_conv_backward_flops(grad_out: Tensor, x: Tensor, weight: Tensor, bias_sizes: Any, stride: Any,
                                padding: Any, dilation: Any, transposed: bool, output_padding: Any, groups: int,
                                output_mask: list[bool]) -> int:
    """FLOPs of a grouped convolution's backward: each gradient asked for (input, weight) costs the forward's.
    (torch's `conv_backward_flop` leaves the groups out, which prices a depthwise 7 x 7 conv's backward at
    `channels` times its work.)"""
    forward = conv_flop_count(list(x.shape), list(weight.shape), list(grad_out.shape), transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def triton_scan_traffic(scan: ScanTensors, forward: bool, gathered: bool, output: Tensor,
                        fold: int = 1) -> list[tuple[str, int, int]]:
    """(label, bytes read + written, launches) of the Triton backend's forward or backward of one scan call; `output`
    is the forward's y or the backward's grad_out (B, KD/fold, L), whose dtype the call chose (`out_float32`).

    Forward: one kernel reads u, delta, B, C, z and writes y, the last state and the saved chunk states. Backward:
    one kernel reads grad_out, the inputs and the saved states and writes du, ddelta, dz, per-segment dA/dD/dbias and
    per-program float32 dB/dC partials, which are then summed (sum, cast, transpose copy for each); a shared u's
    per-route float32 du is summed too. `gathered`: the inputs are first gathered into route order and y scattered
    back (forward), and the gradients gathered back (backward), one read and one write each.

    At d_state 1 the calls run kernels/triton_scan_state1.py (`state1_config`'s tiles): no sequence segments (one
    launch each way, dA/dD/dbias per batch row and channel), and each backward program adds its channel blocks' dB/dC
    to its partial rows one block after the other: rows written `blocks_per_program` times and read back between.
    Those adds are priced as memory traffic: a block comes back to a row after sweeping the whole sequence, and the
    resident programs stream far more than the L2 in between (VMamba-T stage 1, batch 128: 3072 programs, each
    sweep ~200 KB).

    A fold F: the forward's blocks after the first read and write back the float32 sum (2 (F - 1) passes over a
    float32 (B, KD/F, L), priced as memory for the same reason), y written once; the backward reads grad_out once
    per folded block. Gathered, the scan writes every channel's float32 output, scattered back and then summed.
    """
    # imports triton; the cost model needs the tile rules, not a GPU
    from vssm.kernels import triton_scan, triton_scan_state1

    shape = scan.sizes()
    u, delta, A, B, C, D, z, bias, _ = scan
    blocks = math.lcm(shape.routes, fold)  # the kernels' tiles keep a fold's blocks whole, as they do the routes'
    if shape.state == 1:
        tiles = triton_scan_state1.state1_config(shape.channels, blocks, shape.groups)
        segments, every, partial_passes = 1, triton_scan.save_every(), 2 * tiles.blocks_per_program - 1
    else:
        tiles = triton_scan.triton_config(shape.channels, blocks, shape.groups, shape.state,
                                          batch=shape.batch, steps=shape.steps)
        segments, every, partial_passes = tiles.segments(shape.steps), tiles.save_every, 1
    f32 = 4
    small = sum(tensor_bytes(t) for t in (A, D, bias) if t is not None)
    streams = [t for t in (u, delta, B, C, z) if t is not None]
    saved = math.prod(triton_scan.saved_shape(shape, every)) * f32
    rows: list[tuple[str, int, int]] = []
    routed_stream = [delta, B, C, *([z] if z is not None else [])]
    gather_bytes = sum(2 * tensor_bytes(t) for t in routed_stream) + 2 * tensor_bytes(delta)  # u: KD channels
    unfolded = fold * output.numel() * f32  # every channel's float32 output (gathered with a fold)
    gathered_fold = gathered and fold > 1
    if forward:
        y = unfolded if gathered_fold else tensor_bytes(output)
        fold_passes = 0 if gathered else 2 * (fold - 1) * output.numel() * f32
        if gathered:
            rows.append(("route gathers", gather_bytes, len(routed_stream) + 1))
        one_segment = fold > 1 and scan.route is not None and not gathered  # a fold along a route: one segment
        rows.append(("vssm.selective_scan", sum(tensor_bytes(t) for t in streams) + small + y + fold_passes + saved
                     + shape.batch * shape.channels * shape.state * f32, 1 + (segments > 1 and not one_segment)))
        if gathered:
            rows.append(("route scatter", 2 * y, 1))
        if gathered_fold:
            rows.append(("route fold sum", y + tensor_bytes(output), 1))
        return rows
    programs = shape.channels // (tiles.block_d * tiles.blocks_per_program)
    partials = programs * shape.batch * shape.state * shape.length * f32
    gradients = sum(tensor_bytes(t) for t in (delta, *([z] if z is not None else [])))
    du = delta.numel() * f32 if shape.shared_u else tensor_bytes(u)
    per_segment = segments * shape.batch * shape.channels * (shape.state + 2) * f32
    grad = unfolded if gathered_fold else fold * tensor_bytes(output)
    if gathered:
        rows.append(("route scatter", 2 * grad, 1))
    rows.append(("vssm.selective_scan_backward", grad + sum(tensor_bytes(t) for t in streams)
                 + small + saved + gradients + du + per_segment + 2 * partial_passes * partials, 1 + (segments > 1)))
    for t in (B, C):
        summed = t.numel() * f32
        rows.append(("scan dB/dC partial sums", partials + summed + 2 * (summed + tensor_bytes(t))
                     - tensor_bytes(t), 3))
    if shape.shared_u:
        rows.append(("scan shared-u du sum", du + 2 * tensor_bytes(u), 2))
    rows.append(("scan dA/dD/dbias sums", per_segment, 3))
    if gathered:
        rows.append(("route gathers", gather_bytes, len(routed_stream) + 1))
    return rows


# ---------------------------------------------------------------------------------------------- profiling


def _module_names(model: nn.Module) -> dict[str, str]:
    """ModuleTracker's names (root class name, then attribute paths) -> module class names."""
    root = type(model).__name__
    return {(f"{root}.{path}" if path else root): type(module).__name__ for path, module in model.named_modules()}


def _loss(out: Any) -> Tensor:
    return sum(t.float().mean() for t in tree_leaves(out) if isinstance(t, Tensor) and t.is_floating_point())


@contextlib.contextmanager
def _recording(model: nn.Module, gpu: GPU, host_copies: WeakIdKeyDictionary) -> Iterator[_Recorder]:
    tracker = ModTracker()
    recorder = _Recorder(gpu, tracker, _module_names(model), host_copies)
    with tracker, recorder:
        yield recorder


def profile(model: nn.Module, mode: Mode | str = Mode.INFERENCE, *, batch: int = 128,
            input_size: tuple[int, int, int] = zoo.DEFAULT_INPUT_SIZE, amp_dtype: torch.dtype | None = torch.bfloat16,
            gpu: GPU = H100, name: str = "") -> Profile:
    """Record one step of `model` on a (batch, *input_size) input: a forward (`Mode.INFERENCE`, no grad) or forward
    + backward + SGD update (`Mode.TRAIN`), under autocast to `amp_dtype` (None: the parameters' dtype).

    `model` must be on the meta device (`timm.create_model(name, device="meta")` or `model.to("meta")`); it is
    used in the mode it is in (the benchmarks time models in eval mode).
    """
    mode = Mode(mode)
    if batch < 1:
        raise ValueError(f"batch: expected >= 1, got {batch}")
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"meta"}:
        raise ValueError(f"profile: expected a model on the meta device (timm.create_model(name, device='meta') or "
                         f"model.to('meta')), got parameters on {sorted(devices - {'meta'})}")
    parameter = next(model.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    inputs = torch.randn(batch, *input_size, device="meta", dtype=dtype)
    scans.clear_route_cache()  # every route table is moved to meta again, under `CudaEmulation`'s eyes
    host_copies = WeakIdKeyDictionary()
    result = Profile(name or type(model).__name__, mode, batch, tuple(input_size), gpu)  # type: ignore[arg-type]
    if mode is Mode.INFERENCE:
        with torch.no_grad(), _recording(model, gpu, host_copies) as recorder, CudaEmulation(amp_dtype, host_copies):
            model(inputs)
        result.ops = recorder.ops
        return result
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, foreach=True)

    def step(recorder: _Recorder | None = None) -> None:
        optimizer.zero_grad(set_to_none=True)
        with CudaEmulation(amp_dtype, host_copies):  # a fresh weight cast cache per step, as autocast's
            loss = _loss(model(inputs))
        loss.backward()
        if recorder is not None:
            recorder.phase = "SGD step"
        optimizer.step()

    step()  # the momentum buffers: a step after the first is what a benchmark times
    with _recording(model, gpu, host_copies) as recorder:
        step(recorder)
    optimizer.zero_grad(set_to_none=True)
    result.ops = recorder.ops
    return result


def profile_model(name: str, mode: Mode | str = Mode.INFERENCE, *, batch: int = 128,
                  input_size: tuple[int, int, int] | None = None, amp_dtype: torch.dtype | None = torch.bfloat16,
                  gpu: GPU = H100) -> Profile:
    """`profile` of a registered vssm (or timm) model built on the meta device, in eval mode, at its default input
    size unless `input_size` is given."""
    size = tuple(input_size or zoo.default_input_size(name))
    model = zoo.create(name, size, device="meta")  # type: ignore[arg-type]
    return profile(model, mode, batch=batch, input_size=size, amp_dtype=amp_dtype, gpu=gpu,  # type: ignore[arg-type]
                   name=name)


__all__ = [
    "FUSED",
    "GPU",
    "H100",
    "H100_CALIBRATION",
    "Calibration",
    "Contributor",
    "CudaEmulation",
    "Fusion",
    "Mode",
    "OpCost",
    "Profile",
    "fused_attention",
    "fused_rms_norm",
    "profile",
    "profile_model",
    "tensor_bytes",
    "triton_scan_traffic",
]

"""The selective scan in standard ONNX operators, for `torch.onnx.export(..., dynamo=True)`.

    onnx_program = export_onnx(model, (x,))  # torch.onnx.export(dynamo=True) with the scan's translation

`selective_scan_onnx` translates a `vssm::selective_scan` node of an exported program (onnxscript, traced: the
Python below runs once at export and emits ONNX nodes). It follows `kernels.reference` term by term: route
addressing is a `GatherElements` through the route table, padding steps reading a zero column (pre-bias delta too,
so their decay applies); the outputs come back through the route table's inverse (which step writes each token);
delta_bias, softplus (threshold 20), D and the silu(z) gate are exact.

The recurrence h[t] = exp(delta[t] A) h[t-1] + delta[t] u[t] B[t] is one ONNX `Scan` over the steps: h is its
state, each iteration reads one step's delta, delta·u, B and C and makes the decay, the input, h and
y[t] = C[t] h[t] (so no (batch, D, L, N) tensor exists). Chosen by measured ONNX Runtime 1.32 CPU time against the
graph unrolled step by step (all steps' decays and inputs made at once, then per step a multiply-add and a
reduction over N), which had beaten the chunked form (T times the work: Vim-S 439 ms step by step, 1775 ms in chunks
of T = 4, 5065 ms with T = 16). `python benchmarks/bench_onnx_scan.py` shapes, batch 8, one run, ms, median of 3,
2-core AMD EPYC shared (load 6.7-7.5); ORT with its default threads / `intra_op_num_threads=1`:

    shape (channels, L, N)                 eager C scan   unrolled     Scan
    vim_small (1536, 197, 16)                  32-45      668 / 279   219 / 134
    vmamba_tiny stage 3 (1536, 196, 1)         12-17      240 / 136   124 / 70
    mambavision_tiny stage 3 (160, 196, 8)     12-16       60 / 26     16 / 3.2
    mambavision_tiny stage 4 (320, 49, 8)       8-12       19 / 11    1.6 / 1.4
    local_vssm_tiny stage 3 (3072, 196, 16)       52     1549 / 847   472 / 244
    vmamba_tiny stage 1 (384, 3136, 1)           156         -        584 / 347
    local_vssm_tiny stage 1 (768, 3136, 16)      314         -       1991 / 1057

(unrolled at L = 3136 not measured: its export takes minutes). The Scan also keeps the exported graph's size
independent of L. One ONNX Runtime thread beat its default two on the loaded machine; its graph optimizations off
made it slower (vim_small 243 ms).

Tried since against this Scan and not adopted (hand-built graphs of the recurrence alone with the same body and
axes, one ONNX Runtime thread, 5-9 interleaved rounds, median ms, the same machine at load 6-10):

    formulation                                    shape (batch)                   this Scan   tried
    (a) all steps' decays and inputs made before   vim_small (8)                        84     210
        the Scan, body h = a h + b, y = C h        vmamba_tiny stage 3 (8)              23      30
    (b) T steps per iteration, their decays made   vim_small, L = 196 (1)               11   8-13 (T = 4..49)
        by one Exp and split                       local_vssm_tiny stage 1 (1)          86   98-104 (T = 7..49)
                                                   vmamba_tiny stage 1 (1)              25   18-24 (T = 16..49)
                                                   vmamba_tiny stage 1 (8)             260   220-290 (T = 4..32)
    (c) N = 1: chunks with the T x T decay matrix  vmamba_tiny stage 3 (8)              23   239-367 (T = 14..4)
        exp(S_t - S_s), a Scan over the chunks     vmamba_tiny stage 1 (8)             133   971-1497 (T = 16..4)

(a) streams N times delta's size through memory, (c) makes T exponentials per step; (b) saves Scan iterations,
which pays only at tiny per-step tensors (VMamba's N = 1 at batch 1), and there within the loaded machine's noise.
ONNX Runtime's default threads without spinning (`session.intra_op.allow_spinning` 0) beat the default on the loaded
machine but not one thread (`benchmarks/bench_onnx_scan.py`). Why ONNX Runtime stays behind the C loop: per step the
body runs 6 nodes, 5 elementwise passes over (batch, D, N) and one reduction, each through memory, where the C loop
makes one fused pass in registers; around the Scan 13 more nodes over (batch, D, L) (delta_bias, softplus's 9,
delta·u, D·u and its Add; 3 more with z), the Scan's own 5 transposes, and with routes an index Expand, a Pad and a
GatherElements per routed tensor, all of which the C loop does inside its one pass. The Scan node alone took 2.5-2.8x
the C scan's time inside the whole models (batch 1, one thread each). Requires the ONNX packages of the `export`
extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import torch
from onnxscript import ir
from onnxscript import opset18 as op

from .reference import SOFTPLUS_THRESHOLD, route_blocks

_bodies = itertools.count()  # numbers the Scan bodies: ONNX wants every value name unique across subgraphs


def translation_table() -> dict[torch._ops.OpOverload, object]:
    """The `custom_translation_table` of `torch.onnx.export` that translates the selective-scan op."""
    return {torch.ops.vssm.selective_scan.default: selective_scan_onnx}


def export_onnx(model: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamic_shapes: object = None,
                opset: int = 18) -> torch.onnx.ONNXProgram:
    """`torch.onnx.export(model, args, dynamo=True)` with the scan's translation.

    Without onnxscript's graph optimizer (`optimize=False`): with it, onnxscript 0.7.2 rewrote test_local_vim's
    graph into one whose outputs were off by 0.12 (max abs, logits of max 0.096; 6e-8 without it), while ONNX
    Runtime still applies its own graph optimizations when the session starts.
    """
    return torch.onnx.export(model, args, dynamo=True, opset_version=opset, dynamic_shapes=dynamic_shapes,
                             optimize=False, custom_translation_table=translation_table())


def _ints(values: list[int] | tuple[int, ...]):
    return op.Constant(value_ints=list(values))


def _tensor(array: np.ndarray):
    return op.Constant(value=onnx.numpy_helper.from_array(array))


def _float(value: float, like):
    return op.CastLike(op.Constant(value_float=value), like)


def _batch_shape(x, tail: list[int]):
    """The shape (batch, *tail), batch read from x at run time (the exported batch is dynamic)."""
    return op.Concat(op.Slice(op.Shape(x), _ints([0]), _ints([1])), _ints(tail), axis=0)


def _steps_axis(x, index, shape: list[int]):
    """x: (batch, M, P, S) read at index (M, S') along its last axis -> shape (batch, M, P, S'); index S reads zero
    (a padded column: as fast in ONNX Runtime as masking the result, and the scatter's inverse needs it too)."""
    index = op.Expand(op.Unsqueeze(index, _ints([0, 2])), _batch_shape(x, shape))
    return op.GatherElements(op.Pad(x, _ints([0, 0, 0, 0, 0, 0, 0, 1])), index, axis=3)


def _softplus(x):
    """softplus with threshold 20 (the identity above it), as max(x, log1p(exp(min(x, 20)))): softplus(x) > x, so
    the max picks x only above the threshold or where the rounded log1p fell below x (x is then the nearer value);
    ONNX Runtime's Min and Max keep NaN. ONNX has no Log1p: log1p(e) = log(w) - ((w - 1) - e) / w with w = 1 + e
    rounded (the correction of w's rounding; e where w rounds to 1), 2.7e-7 max relative error on a grid of
    [-104, 104] against float64, as ONNX Runtime 1.32's Softplus (which takes 2-3x as long and has no threshold).
    Chosen over Where(x > 20, x, Goldberg's log(w) e / (w - 1), e where w = 1) (10 nodes, two Where) by time on
    (8, 1536, 196) float32, one ONNX Runtime thread, 9 interleaved rounds, load 8.5-8.9: 12.2 against 18.3 ms
    (Softplus 35.4 ms)."""
    one = _float(1.0, x)
    e = op.Exp(op.Min(x, _float(SOFTPLUS_THRESHOLD, x)))
    w = op.Add(e, one)
    return op.Max(x, op.Sub(op.Log(w), op.Div(op.Sub(op.Sub(w, one), e), w)))


def _scan(dt, du, A, B, C, batch: ir.SymbolicDim | int, blocks: int, per_block: int, state: int, dtype: ir.DataType):
    """The recurrence as one ONNX `Scan` over the steps. dt, du: (batch, M, P, L') delta and delta·u; A: (M, P, N);
    B, C: (batch, M, N, L'). Returns y (batch, M, P, L') and the last state (batch, M, P, N)."""
    h = op.ConstantOfShape(_batch_shape(dt, [blocks, state, per_block]), value=_zero(dtype))
    # The steps stay the last axis (`scan_input_axes`, `scan_output_axes`): ONNX Runtime moves them itself.
    dt, du = op.Unsqueeze(dt, _ints([2])), op.Unsqueeze(du, _ints([2]))  # (batch, M, 1, P, L')
    B, C = op.Unsqueeze(B, _ints([3])), op.Unsqueeze(C, _ints([2]))  # (batch, M, N, 1, L'), (batch, M, 1, N, L')
    body = _step(op.Transpose(A, perm=[0, 2, 1]), batch, blocks, per_block, state, dtype)
    last = op.Scan(h, dt, du, B, C, body=body, num_scan_inputs=4, scan_input_axes=[4] * 4, scan_output_axes=[4])
    # The exporter gives a node as many outputs as its schema names; Scan's are one variadic list (states, then
    # the per-step outputs).
    scan = last.producer()
    scan.resize_outputs(2)
    y = scan.outputs[1]  # (batch, M, 1, P, L')
    y.dtype = dtype
    return op.Squeeze(y, _ints([2])), op.Transpose(last, perm=[0, 1, 3, 2])


def _step(A, batch: ir.SymbolicDim | int, blocks: int, per_block: int, state: int, dtype: ir.DataType) -> ir.Graph:
    """The Scan body, one step: h (batch, M, N, P), delta and delta·u (batch, M, 1, P), B (batch, M, N, 1) and C
    (batch, M, 1, N) -> the next h and y (batch, M, 1, P) = C h. A (M, N, P) is read from the enclosing graph.

    The state is laid out (N, P), not (P, N), and the body's shapes are declared: ONNX Runtime 1.32 runs broadcasts
    whose innermost run is N (16 or 1) instead of P (hundreds), without declared shapes, 2-8x slower (hand-built Scan
    graphs, one thread, load 7.5-8.5: Vim-S's scan 161-171 against 75-78 ms, MambaVision-T stage 4's 6.4 against
    0.7-0.8 ms).
    """
    prefix = f"selective_scan_step{next(_bodies)}"

    def value(name: str, *dims: int):
        return ir.Value(name=f"{prefix}_{name}", type=ir.TensorType(dtype), shape=ir.Shape([batch, blocks, *dims]))

    h, dt, du = value("h", state, per_block), value("delta", 1, per_block), value("delta_u", 1, per_block)
    B, C = value("B", state, 1), value("C", 1, state)
    tape = ir.tape.Tape()
    decay = tape.op("Exp", [tape.op("Mul", [dt, A])])
    h_next = tape.op("Add", [tape.op("Mul", [decay, h]), tape.op("Mul", [du, B])])
    y = tape.op("MatMul", [C, h_next])
    for index, output in enumerate(output for node in tape.nodes for output in node.outputs):
        output.name = f"{prefix}_{index}"  # names are unique across a model's graphs: its own namer counts from 0
        output.dtype = dtype
    h_next.shape, y.shape = h.shape, ir.Shape([batch, blocks, 1, per_block])
    return ir.Graph([h, dt, du, B, C], [h_next, y], nodes=tape.nodes, name=prefix)


def selective_scan_onnx(u, delta, A, B, C, D=None, z=None, delta_bias=None, route=None,
                        delta_softplus: bool = False, out_float32: bool = False, backend: str = "cpu", fold: int = 1):
    """ONNX nodes for `vssm::selective_scan` (its schema; `backend` is irrelevant here). Shapes as
    `kernels.selective_scan`; every size but the batch must be static. Returns (y, last_state, saved) with an empty
    `saved` (only the op's backward reads it); a fold sums y's (batch, fold, KD/fold, L) blocks before the cast."""
    channels, length = delta.shape[1], delta.shape[2]
    state, u_channels = A.shape[1], u.shape[1]
    groups = 1 if len(B.shape) == 3 else B.shape[1]
    double = u.dtype is not None and u.dtype.name == "DOUBLE"
    compute = 11 if double else 1  # onnx TensorProto.DOUBLE / FLOAT
    given = u
    u, delta, A = op.Cast(u, to=compute), op.Cast(delta, to=compute), op.Cast(A, to=compute)
    if len(B.shape) == 3:
        B, C = op.Unsqueeze(B, _ints([1])), op.Unsqueeze(C, _ints([1]))
    B, C = op.Cast(B, to=compute), op.Cast(C, to=compute)
    if route is None:
        blocks, steps = groups, length
        group_of = list(range(groups))
    else:
        routes, steps = route.shape[0], route.shape[1]
        route_of, group_of = route_blocks(channels, routes, groups)
        blocks = len(route_of)
        route = op.Cast(route, to=7)  # int64
        if u_channels != channels:  # shared u: channel d reads u[:, d % u_channels]
            copies = channels // u_channels
            u = op.Reshape(op.Expand(op.Unsqueeze(u, _ints([1])), _batch_shape(u, [copies, u_channels, length])),
                           _ints([0, channels, length]))
        rows = op.Gather(route, _ints(route_of), axis=0)  # (M, L')
        slot = op.Where(op.Less(rows, op.Constant(value_int=0)), op.Constant(value_int=length), rows)

        def along_route(x, width: int):  # padding steps read slot L: zero
            return _steps_axis(op.Reshape(x, _ints([0, blocks, width, length])), slot, [blocks, width, steps])

        per_block = channels // blocks
        u, delta = along_route(u, per_block), along_route(delta, per_block)
        z = None if z is None else along_route(z, per_block)
        B = along_route(op.Gather(B, _ints(group_of), axis=1), state)
        C = along_route(op.Gather(C, _ints(group_of), axis=1), state)
    per_block = channels // blocks
    if route is None and groups != blocks:
        B, C = op.Gather(B, _ints(group_of), axis=1), op.Gather(C, _ints(group_of), axis=1)
    u = op.Reshape(u, _ints([0, blocks, per_block, steps]))
    delta = op.Reshape(delta, _ints([0, blocks, per_block, steps]))
    if delta_bias is not None:
        delta = op.Add(delta, op.Reshape(op.Cast(delta_bias, to=compute), _ints([blocks, per_block, 1])))
    if delta_softplus:
        delta = _softplus(delta)
    A = op.Reshape(A, _ints([blocks, per_block, state]))
    dtype = ir.DataType.DOUBLE if double else ir.DataType.FLOAT
    y, h = _scan(delta, op.Mul(delta, u), A, B, C, given.shape[0], blocks, per_block, state, dtype)
    if D is not None:
        y = op.Add(y, op.Mul(op.Reshape(op.Cast(D, to=compute), _ints([blocks, per_block, 1])), u))
    if z is not None:
        z = op.Reshape(op.Cast(z, to=compute), _ints([0, blocks, per_block, steps]))
        y = op.Mul(y, op.Mul(z, op.Sigmoid(z)))
    if route is not None:
        # The inverse of the route table, the step that writes each token ((M, L); step L' reads zero: no step, or
        # only padding), read by a GatherElements: ONNX Runtime scatters (8, 4, 384, 196) in 24-33 ms (and a Slice),
        # this reads it in 11-15 ms (one loaded core).
        step_of = op.ScatterElements(_tensor(np.full((blocks, length + 1), steps)), slot,
                                     _tensor(np.tile(np.arange(steps), (blocks, 1))), axis=1)
        step_of = op.Slice(step_of, _ints([0]), _ints([length]), _ints([1]))
        y = _steps_axis(y, step_of, [blocks, per_block, length])
    y = op.Reshape(y, _ints([0, channels, length]))
    if fold > 1:
        y = op.ReduceSum(op.Reshape(y, _ints([0, fold, channels // fold, length])), _ints([1]), keepdims=0)
    if not (out_float32 or double):
        y = op.CastLike(y, given)
    last_state = op.Reshape(h, _ints([0, channels, state]))
    saved = _tensor(np.zeros(0, dtype=np.float32))
    return y, last_state, saved


def _zero(dtype: ir.DataType) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.zeros(1, dtype=dtype.numpy()))

"""The selective scan in standard ONNX operators, for `torch.onnx.export(..., dynamo=True)`.

    onnx_program = export_onnx(model, (x,))  # torch.onnx.export(dynamo=True) with the scan's translation

`selective_scan_onnx` translates a `vssm::selective_scan` node of an exported program (onnxscript, traced: the
Python below runs once at export and emits ONNX nodes). It follows `kernels.reference` term by term: route
addressing is a `GatherElements` through the route table with padding steps zeroed (pre-bias delta too, so their
decay applies), the outputs are written back by `ScatterElements` with padding sent to a spare slot; delta_bias,
softplus (threshold 20), D and the silu(z) gate are exact.

The recurrence h[t] = exp(delta[t] A) h[t-1] + delta[t] u[t] B[t] is unrolled step by step in the graph: the decays
and inputs of all steps are computed at once, then each step is one multiply-add and one reduction over N. Chosen by
measurement against the chunked form (within a chunk of T steps h[t] = exp(S[t]) h[start] + sum_{s <= t}
exp(S[t] - S[s]) delta[s] u[s] B[s], S the cumulative sum of delta·A: stable, fewer nodes, but T times the work):
ONNX Runtime CPU, (8, 768, 197, N = 16), one run on the loaded 2-core container: step by step 439 ms, chunks of
T = 4 1775 ms, T = 16 5065 ms (the C scan of `kernels`: 16-32 ms). A Scan/Loop body was not built.
Requires the ONNX packages of the `export` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnxscript import opset18 as op

from .reference import SOFTPLUS_THRESHOLD, route_blocks


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


def _gather_steps(x, index, pad, shape: list[int]):
    """x: (batch, M, P, L) read at index (M, L') along L -> (batch, M, P, L'), zero where pad (M, L') is set."""
    index = op.Expand(op.Unsqueeze(index, _ints([0, 2])), _batch_shape(x, shape))
    gathered = op.GatherElements(x, index, axis=3)
    return op.Where(op.Unsqueeze(pad, _ints([0, 2])), _float(0.0, x), gathered)


def _sequential(h, dt, du, A, B, C, steps: int):
    """The recurrence step by step. h: (batch, M, P, N) zero state; dt, du: (batch, M, P, L') delta and delta·u;
    A: (M, P, N); B, C: (batch, M, L', N). Returns y (batch, M, P, L') and the last state."""
    decay = op.Exp(op.Mul(op.Unsqueeze(dt, _ints([4])), op.Unsqueeze(A, _ints([2]))))  # (batch, M, P, L', N)
    x = op.Mul(op.Unsqueeze(du, _ints([4])), op.Unsqueeze(B, _ints([2])))
    C = op.Unsqueeze(C, _ints([2]))  # (batch, M, 1, L', N)
    ys = []
    for t in range(steps):
        index = op.Constant(value_int=t)
        h = op.Add(op.Mul(op.Gather(decay, index, axis=3), h), op.Gather(x, index, axis=3))
        ys.append(op.ReduceSum(op.Mul(h, op.Gather(C, index, axis=3)), _ints([3]), keepdims=1))  # (batch, M, P, 1)
    return op.Concat(*ys, axis=3), h


def selective_scan_onnx(u, delta, A, B, C, D=None, z=None, delta_bias=None, route=None,
                        delta_softplus: bool = False, out_float32: bool = False, backend: str = "cpu"):
    """ONNX nodes for `vssm::selective_scan` (its schema; `backend` is irrelevant here). Shapes as
    `kernels.selective_scan`; every size but the batch must be static. Returns (y, last_state, saved) with an empty
    `saved` (only the op's backward reads it)."""
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
        if u_channels != channels:  # shared u: route k's channel j reads u[:, j]
            u = op.Reshape(op.Expand(op.Unsqueeze(u, _ints([1])), _batch_shape(u, [routes, u_channels, length])),
                           _ints([0, channels, length]))
        rows = op.Gather(route, _ints(route_of), axis=0)  # (M, L')
        pad = op.Less(rows, op.Constant(value_int=0))
        index = op.Max(rows, op.Constant(value_int=0))

        def along_route(x, width: int):
            return _gather_steps(op.Reshape(x, _ints([0, blocks, width, length])), index, pad,
                                 [blocks, width, steps])

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
        delta = op.Where(op.Greater(delta, _float(SOFTPLUS_THRESHOLD, delta)), delta, op.Softplus(delta))
    A = op.Reshape(A, _ints([blocks, per_block, state]))
    B, C = op.Transpose(B, perm=[0, 1, 3, 2]), op.Transpose(C, perm=[0, 1, 3, 2])  # (batch, M, L', N)
    du = op.Mul(delta, u)
    h = op.ConstantOfShape(_batch_shape(u, [blocks, per_block, state]), value=_zero(double))
    y, h = _sequential(h, delta, du, A, B, C, steps)  # (batch, M, P, L'), the last state
    if D is not None:
        y = op.Add(y, op.Mul(op.Reshape(op.Cast(D, to=compute), _ints([blocks, per_block, 1])), u))
    if z is not None:
        z = op.Reshape(op.Cast(z, to=compute), _ints([0, blocks, per_block, steps]))
        y = op.Mul(y, op.Mul(z, op.Sigmoid(z)))
    if route is not None:
        slot = op.Where(pad, op.Constant(value_int=length), rows)
        slot = op.Expand(op.Unsqueeze(slot, _ints([0, 2])), _batch_shape(y, [blocks, per_block, steps]))
        out = op.ConstantOfShape(_batch_shape(y, [blocks, per_block, length + 1]), value=_zero(double))
        y = op.Slice(op.ScatterElements(out, slot, y, axis=3), _ints([0]), _ints([length]), _ints([3]))
    y = op.Reshape(y, _ints([0, channels, length]))
    if not (out_float32 or double):
        y = op.CastLike(y, given)
    last_state = op.Reshape(h, _ints([0, channels, state]))
    saved = _tensor(np.zeros(0, dtype=np.float32))
    return y, last_state, saved


def _zero(double: bool) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.zeros(1, dtype=np.float64 if double else np.float32))

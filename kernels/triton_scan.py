"""The `triton` backend: chunked forward and backward kernels of the recurrence `kernels/reference.py` defines.

Each program owns BLOCK_D consecutive channels of one batch row; all of them share one route row and one B/C group
(BLOCK_D divides KD / lcm(K, G)), so B, C and the route are loaded once per program. Time runs in chunks of CHUNK
steps: a chunk's decays exp2(delta * A * log2 e) and inputs delta * u * B form a (CHUNK, N, BLOCK_D) tile that
`tl.associative_scan` combines, starting from the state carried over from the previous chunk.

* Layout: tiles are time-major with the channels last. With one warp and BLOCK_D = 8 channels, Triton's default
  layout puts the channels on 8 lanes and N on the other 4 (N >= 8; all 32 lanes on channels at N = 1), and every
  step inside the thread: the scan is register arithmetic, the sum over N takes 2 shuffle rounds per step and
  channel, and the backward's sums over channels (dB, dC) cross the 8 channel lanes. With time on the lanes (the
  first design) the scan cost about 15 shuffles per element forward and 46 backward (benchmarks/triton_static.py).
* Route addressing: the token read at step t is route[k, t] (-1: padding, read as zeros before the bias), y and the
  gradients of u/delta/z are written back at token positions. A u shared by the K routes (KD/K channels) is read at
  channel d % (KD/K); its gradient is written per route (KD channels, float32) and summed over the routes by the
  wrapper. Reading a route that jumps between tokens sends every lane's loads to its own sectors, so
  `kernels.selective_scan` gathers the inputs of such routes into route order first (kernels/route_order.py).
* Sequence segments: with few (batch x channel block) programs, the sequence is cut into segments of whole saved
  spans run by separate programs. A first kernel computes each segment's end state from zero (forward) or its
  outgoing adjoint carry with nothing coming in (backward), with its summed delta; each segment's program then
  derives its incoming state or carry from the others' (the segment's decay is exp2(A log2 e * sum delta)).
* Steps past L' inside the last tile are the scan identity (delta = 0 after bias/softplus, mamba#368).
* Forward saves the state every CHUNK * CHUNKS_PER_SAVE steps but at the start: (batch, KD, saves, N) float32, so
  backward memory is O(batch·KD·N·L/save_every). Backward walks the saved spans in reverse: it replays a span
  forward from its saved state, writing each chunk's start state to a small per-program scratch buffer, then walks
  the span's chunks in reverse. The reverse scan lambda[t] = dy[t] C[t] + decay[t+1] lambda[t+1] runs forward over
  the flipped tile (no `reverse=True`: triton#4362) with a combine that carries each span's first decay, so
  decay[t+1] needs no second load or exponential.
* Deterministic: dB/dC are summed over a program's channels inside the program and accumulated over its
  BLOCKS_PER_PROGRAM channel blocks in a fixed order into per-program partials (n_programs, batch, N, L), which the
  wrapper sums over the programs of each group in a fixed order; dA, dD and the bias gradient are written per
  segment and summed by the wrapper. No atomics.
* Fold (`selective_scan(..., fold=F)`): a forward program owns BLOCK_D output channels and scans the F channel
  blocks that add into them one after the other, the first writing y, the others adding to it (float32, through a
  float32 buffer when y is not float32, the last block rounding once): a fixed order, no atomics. The backward
  reads each channel's dy at the output channel it folds into.
* No autotuning: the save interval fixes the saved-state layout and BLOCK_D the reduction order, so both are fixed
  functions of the shapes (`triton_config`, measured with benchmarks/tune_triton.py); under TRITON_INTERPRET=1
  tiles are tiny and every saved span is a segment, because the interpreter runs every element of
  `tl.associative_scan` through Python.

fp32/fp16/bf16 inputs are upcast right after loading; state and arithmetic are fp32.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .backends import triton_interpret
from .scan_tensors import ScanShape, ScanTensors

LOG2E = 1.4426950408889634


# Host-side integer helpers: triton.cdiv and triton.next_power_of_2 are constexpr functions in Triton 3.8, each
# Python call costing microseconds (18 of them per forward + backward were a fifth of the launchers' host time).
def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_2(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


@dataclass(frozen=True)
class TritonConfig:
    """Tile sizes of one call: channels per backward block, blocks per backward program, steps per chunk (the
    scanned tile), warps, channels per forward program, chunks per saved state (the saved layout is fixed by
    chunk * chunks_per_save alone), and saved spans per sequence segment (segments run as separate programs)."""

    block_d: int
    blocks_per_program: int
    chunk: int
    num_warps: int
    forward_block_d: int
    chunks_per_save: int
    spans_per_segment: int

    @property
    def save_every(self) -> int:
        return self.chunk * self.chunks_per_save

    def segments(self, steps: int) -> int:
        """How many segments a sequence of `steps` steps is cut into."""
        return max(1, _cdiv(_cdiv(steps, self.save_every), self.spans_per_segment))


# Segments pay for themselves only when the (batch x channel block) programs cannot fill the GPU: on an H100 every
# zoo shape with 768 or more programs ran fastest as one segment (VMamba-T stage 1: 14.3 ms in one, 16.6 in two),
# while U-Mamba's 32 programs at L 16384 ran 6x faster cut into 64 segments (2048 programs) than in one, and faster
# than in 8, 16 or 256 (benchmarks/h100/triton_segments*.md).
SEGMENT_BELOW_PROGRAMS = 256
SEGMENTED_PROGRAMS = 2048


def chunk_size(state: int) -> int:
    """Steps per scanned tile: 32 tile elements per thread for N >= 8 (with N over 4 lanes), 8 steps below."""
    if triton_interpret():
        return 4
    n = _next_power_of_2(state)
    return 128 // n if n >= 8 else 8


def save_every() -> int:
    """Steps between the states the forward saves for the backward (a multiple of `chunk_size`)."""
    return 8 if triton_interpret() else 64


def _largest_power_of_two_dividing(n: int, cap: int) -> int:
    p = 1
    while p * 2 <= cap and n % (p * 2) == 0:
        p *= 2
    return p


def spans_per_segment(programs: int, steps: int, every: int) -> int:
    """Saved spans per segment (whole spans: a segment starts where a state is saved). One segment unless fewer than
    SEGMENT_BELOW_PROGRAMS (batch x channel block) programs, else enough segments for SEGMENTED_PROGRAMS programs.
    Under the interpreter, 1, so small tests cross several segments."""
    spans = max(1, _cdiv(steps, every))
    if triton_interpret():
        return 1
    if programs >= SEGMENT_BELOW_PROGRAMS:
        return spans
    return _cdiv(spans, min(spans, _cdiv(SEGMENTED_PROGRAMS, max(programs, 1))))


def triton_config(channels: int, routes: int, groups: int, state: int, *, batch: int, steps: int) -> TritonConfig:
    """The tiles of one call (a fixed function of the shapes, cached: it runs twice per forward + backward)."""
    return _triton_config(channels, routes, groups, state, batch, steps, triton_interpret())


@functools.lru_cache(maxsize=1024)
def _triton_config(channels: int, routes: int, groups: int, state: int, batch: int, steps: int,
                   interpret: bool) -> TritonConfig:
    per_segment = channels // math.lcm(routes, groups)
    chunk = chunk_size(state)
    per_save = save_every() // chunk
    if interpret:
        block_d = _largest_power_of_two_dividing(per_segment, 4)
        return TritonConfig(block_d, _largest_power_of_two_dividing(per_segment // block_d, 2), chunk, 1, block_d,
                            per_save, spans_per_segment(batch, steps, save_every()))
    # One warp per program; the channels on 8 lanes and N on the other 4 (N >= 8), or all 32 lanes on the channels
    # (N = 1); time inside the thread (measured on an H100: benchmarks/h100/triton_tiles.md).
    block_d = _largest_power_of_two_dividing(per_segment, 32 // min(_next_power_of_2(state), 4))
    programs = batch * (channels // block_d)
    return TritonConfig(block_d, 1, chunk, 1, block_d, per_save, spans_per_segment(programs, steps, save_every()))


def candidate_configs(channels: int, routes: int, groups: int, state: int, warps: tuple[int, ...] = (1, 2, 4),
                      chunks: tuple[int, ...] = (2, 4, 8, 16), *, batch: int, steps: int) -> list[TritonConfig]:
    """Tiles worth trying on a GPU, each with at most 256 tile elements per thread, the state saved every 64 steps
    and `spans_per_segment`'s segments: blocks of 32 lanes x `warps` x 1 or 2 channels per thread, and one-warp
    blocks of 8 or 16 channels that leave the warp's other lanes to the states (N >= 32 / block). Every block
    divides a route's channels."""
    per_segment = channels // math.lcm(routes, groups)
    n = _next_power_of_2(state)
    blocks = [(block_d, 1) for block_d in (8, 16) if 1 in warps and block_d * n >= 32]
    blocks += [(32 * num_warps * per_thread, num_warps) for num_warps in warps for per_thread in (1, 2)]
    return [TritonConfig(block_d, 1, chunk, num_warps, block_d, max(1, 64 // chunk),
                         spans_per_segment(batch * channels // block_d, steps, max(64, chunk)))
            for block_d, num_warps in blocks if per_segment % block_d == 0
            for chunk in chunks if chunk * n * block_d <= 256 * 32 * num_warps]


def saved_shape(shape: ScanShape, every: int | None = None) -> tuple[int, ...]:
    """The saved states: (batch, KD, saves, N), one every `every` steps (default `save_every`) but the first."""
    return (shape.batch, shape.channels, _cdiv(shape.steps, every or save_every()) - 1, shape.state)


@triton.jit
def _combine(a1, b1, a2, b2):
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _softplus(x):
    # log1p(e^x) as log(1 + y) corrected for the rounding of 1 + y; no libdevice (the interpreter has none)
    y = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + y
    return tl.where(x <= 20.0, tl.log(w) - ((w - 1.0) - y) / w, x)


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _step(tile, index, CHUNK: tl.constexpr):
    """tile[index] of a (CHUNK, N, D) tile; time is held inside each thread, so the pick is a register select."""
    pick = (tl.arange(0, CHUNK) == index)[:, None, None]
    return tl.sum(tl.where(pick, tile, 0.0), axis=0)


@triton.jit
def _load_steps(route_ptr, route_row, t, steps, HAS_ROUTE: tl.constexpr):
    """Token index of steps t (-1 for padding and for t >= steps), and whether t is inside the sequence."""
    inside = t < steps
    if HAS_ROUTE:
        # int32 from eager calls (kernels.route_order.RouteLayout.kernel_route), int64 inside compiled graphs
        tok = tl.load(route_ptr + route_row * steps + t, mask=inside, other=-1).to(tl.int32)
    else:
        tok = tl.where(inside, t, -1)
    return tok, inside


@triton.jit
def _chunk_decays(delta_ptr, route_ptr, route_row, t, steps, row, bias, A2, HAS_ROUTE: tl.constexpr,
                  SOFTPLUS: tl.constexpr):
    """Steps t of one chunk along the route: token indices, inside/valid masks, offsets in the (batch, KD, L)
    tensors, pre-softplus x and delta (CHUNK, D), and the decays exp2(delta * A * log2 e) (CHUNK, N, D)."""
    tok, inside = _load_steps(route_ptr, route_row, t, steps, HAS_ROUTE)
    valid = (tok >= 0)[:, None]
    off = tok[:, None] + row[None, :]
    x = tl.load(delta_ptr + off, mask=valid, other=0.0).to(tl.float32) + bias[None, :]
    dt = _softplus(x) if SOFTPLUS else x
    dt = tl.where(inside[:, None], dt, 0.0)  # steps past the end are the identity (mamba#368)
    # decay 1 there even for an infinite or NaN A (exp2(0 * inf) is NaN): it would reach the last state and, through
    # the reverse scan's carry, the last step's gradients, which the reference leaves finite
    decay = tl.where(inside[:, None, None], tl.exp2(dt[:, None, :] * A2[None, :, :]), 1.0)
    return tok, inside, valid, off, x, dt, decay


class ChunkScan(NamedTuple):
    """One chunk loaded along the route and scanned (`_chunk_states`), in time-major tiles."""

    states: tl.tensor  # (CHUNK, N, D) the state after each step
    drive: tl.tensor  # (CHUNK, N, D) each step's input delta * u * B, without the state carried in
    decay: tl.tensor  # (CHUNK, N, D) exp2(delta * A * log2 e)
    u: tl.tensor  # (CHUNK, D)
    x: tl.tensor  # (CHUNK, D) delta + bias, before the softplus
    dt: tl.tensor  # (CHUNK, D) delta after bias and softplus, 0 past the end
    B: tl.tensor  # (CHUNK, N)
    C: tl.tensor  # (CHUNK, N)
    tok: tl.tensor  # (CHUNK,) the token each step reads, -1 for padding and past the end
    inside: tl.tensor  # (CHUNK,) the step is before the end of the sequence
    off: tl.tensor  # (CHUNK, D) offsets of the steps' tokens in the (batch, KD, L) tensors
    valid: tl.tensor  # (CHUNK, 1) the step reads a token
    bc_ok: tl.tensor  # (CHUNK, N) the step reads a token and n < N


@triton.jit
def _chunk_states(u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias,
                  A2, h0, HAS_ROUTE: tl.constexpr, SOFTPLUS: tl.constexpr, CHUNK: tl.constexpr):
    """Load one chunk along the route and scan it from state h0 (N, D): a `ChunkScan` (u's rows start at u_row).

    Every thread holds whole columns of time, so the scan runs inside the thread (no shuffles)."""
    tok, inside, valid, off, x, dt, decay = _chunk_decays(delta_ptr, route_ptr, route_row, t, steps, row, bias, A2,
                                                          HAS_ROUTE, SOFTPLUS)
    u = tl.load(u_ptr + tok[:, None] + u_row[None, :], mask=valid, other=0.0).to(tl.float32)
    bc_off = tok[:, None] + bc_row[None, :]
    bc_ok = (tok >= 0)[:, None] & n_ok[None, :]
    Bv = tl.load(B_ptr + bc_off, mask=bc_ok, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + bc_off, mask=bc_ok, other=0.0).to(tl.float32)
    drive = (dt * u)[:, None, :] * Bv[:, :, None]
    first = (tl.arange(0, CHUNK) == 0)[:, None, None]
    _, states = tl.associative_scan((decay, tl.where(first, drive + decay * h0[None, :, :], drive)), axis=0,
                                    combine_fn=_combine)
    return ChunkScan(states, drive, decay, u, x, dt, Bv, Cv, tok, inside, off, valid, bc_ok)


@triton.jit
def _channel_block(A_ptr, bias_ptr, b, d0, n_ok, channels, u_channels, length, state, groups, HAS_BIAS: tl.constexpr,
                   BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """What a program needs of channels d = d0 + [0, BLOCK_D) in batch row b: d, A and A * log2 e (N, D), the delta
    bias (D,), and the row offsets of delta/z/out (D,), of u (D,) and of the channels' B/C group (N,)."""
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    A = tl.load(A_ptr + d[None, :] * state + n[:, None], mask=n_ok[:, None], other=0.0)
    bias = tl.load(bias_ptr + d) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
    row = (b * channels + d) * length
    u_row = (b * u_channels + d % u_channels) * length
    bc_row = ((b * groups + d0 // (channels // groups)) * state + n) * length
    return d, A, A * 1.4426950408889634, bias, row, u_row, bc_row


@triton.jit
def _program_block(A_ptr, bias_ptr, channels, u_channels, length, state, groups, routes, HAS_BIAS: tl.constexpr,
                   BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """`_channel_block` of the one-block kernels' program: channel block = program axis 0, batch row = axis 1.
    Returns the batch row, n and its mask, those of `_channel_block` but A, and the program's route row."""
    d0 = tl.program_id(0) * BLOCK_D
    b = tl.program_id(1).to(tl.int64)
    n = tl.arange(0, BLOCK_N)
    n_ok = n < state
    d, _A, A2, bias, row, u_row, bc_row = _channel_block(A_ptr, bias_ptr, b, d0, n_ok, channels, u_channels, length,
                                                        state, groups, HAS_BIAS, BLOCK_D, BLOCK_N)
    return b, n, n_ok, d, A2, bias, row, u_row, bc_row, d0 // (channels // routes)


@triton.jit
def _segment_offsets(b, d, channels, segments, index):
    """(1, D) offsets of channels d in the (batch, KD, segments - 1) summaries of the segments after the first."""
    return (b * channels + d[None, :]) * (segments - 1) + index


@triton.jit
def _segment_state_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, bias_ptr, route_ptr, seg_state_ptr, seg_dt_ptr,
    channels, u_channels, length, steps, state, groups, routes, segments, chunks_per_segment,
    HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr, SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
):
    """Sequence parallelism, forward: the state each segment but the last ends in when started from zero, and its
    summed delta (the segment's decay is exp2(A log2 e * sum)). Program axis 2 is the segment."""
    b, n, n_ok, d, A2, bias, row, u_row, bc_row, route_row = _program_block(
        A_ptr, bias_ptr, channels, u_channels, length, state, groups, routes, HAS_BIAS, BLOCK_D, BLOCK_N)
    seg = tl.program_id(2)
    h = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dt_sum = tl.zeros([BLOCK_D], tl.float32)
    for c in range(seg * chunks_per_segment, (seg + 1) * chunks_per_segment):
        t = c * CHUNK + tl.arange(0, CHUNK)
        chunk = _chunk_states(u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row,
                              n_ok, bias, A2, h, HAS_ROUTE, SOFTPLUS, CHUNK)
        h = _step(chunk.states, CHUNK - 1, CHUNK)
        dt_sum += tl.sum(chunk.dt, axis=0)
    summary = _segment_offsets(b, d, channels, segments, seg)
    tl.store(seg_state_ptr + summary * state + n[:, None], h, mask=n_ok[:, None])
    tl.store(seg_dt_ptr + summary, dt_sum[None, :])


@triton.jit
def _fold_store(out_ptr, acc_ptr, off, y, mask, f, FOLD: tl.constexpr, SEPARATE_ACC: tl.constexpr):
    """Store y (float32) of the program's f-th folded channel block at `off` in the (batch, KD/FOLD, L) output: the
    first block writes, the others add what the blocks before wrote (in order f = 0, 1, ...: deterministic, no
    atomics), in float32 (`acc_ptr`, a float32 buffer of the output's shape, when the output is not float32: the
    last block rounds the sum once into it)."""
    if FOLD == 1:
        tl.store(out_ptr + off, y.to(out_ptr.dtype.element_ty), mask=mask)
    elif SEPARATE_ACC:
        y += tl.load(acc_ptr + off, mask=mask & (f > 0), other=0.0)
        tl.store(acc_ptr + off, y, mask=mask & (f < FOLD - 1))
        tl.store(out_ptr + off, y.to(out_ptr.dtype.element_ty), mask=mask & (f == FOLD - 1))
    else:
        y += tl.load(out_ptr + off, mask=mask & (f > 0), other=0.0)
        tl.store(out_ptr + off, y, mask=mask)


@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr, seg_state_ptr, seg_dt_ptr,
    out_ptr, acc_ptr, last_ptr, saved_ptr,
    channels, u_channels, length, steps, state, groups, routes, segments, chunks_per_segment,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
    CHUNKS_PER_SAVE: tl.constexpr, FOLD: tl.constexpr, SEPARATE_ACC: tl.constexpr,
):
    """Program axis 0: a block of BLOCK_D output channels; with FOLD > 1 the program scans the FOLD channel blocks
    that fold into it one after the other (f = 0, 1, ...), each adding its y to the output (`_fold_store`)."""
    b = tl.program_id(1).to(tl.int64)
    n = tl.arange(0, BLOCK_N)
    n_ok = n < state
    seg = tl.program_id(2)
    n_chunks = tl.cdiv(steps, CHUNK)
    n_saves = tl.cdiv(steps, CHUNK * CHUNKS_PER_SAVE) - 1
    out_channels = channels // FOLD
    out_row = (b * out_channels + tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)) * length
    for f in range(0, FOLD):
        d0 = f * out_channels + tl.program_id(0) * BLOCK_D
        d, _A, A2, bias, row, u_row, bc_row = _channel_block(A_ptr, bias_ptr, b, d0, n_ok, channels, u_channels,
                                                            length, state, groups, HAS_BIAS, BLOCK_D, BLOCK_N)
        route_row = d0 // (channels // routes)
        Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
        # the state this segment starts from: the earlier segments' zero-start states, each carried through the
        # decays of the segments after it
        h = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        for k in range(0, seg):
            summary = _segment_offsets(b, d, channels, segments, k)
            h = tl.exp2(A2 * tl.load(seg_dt_ptr + summary)) * h + tl.load(
                seg_state_ptr + summary * state + n[:, None], mask=n_ok[:, None], other=0.0)
        for c in range(seg * chunks_per_segment, tl.minimum((seg + 1) * chunks_per_segment, n_chunks)):
            save = c // CHUNKS_PER_SAVE
            saved_off = ((b * channels + d[None, :]) * n_saves + save - 1) * state + n[:, None]
            tl.store(saved_ptr + saved_off, h, mask=n_ok[:, None] & (c > 0) & (c % CHUNKS_PER_SAVE == 0))
            t = c * CHUNK + tl.arange(0, CHUNK)
            chunk = _chunk_states(u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row,
                                  n_ok, bias, A2, h, HAS_ROUTE, SOFTPLUS, CHUNK)
            y = tl.sum(chunk.states * chunk.C[:, :, None], axis=1) + Dv[None, :] * chunk.u
            h = _step(chunk.states, CHUNK - 1, CHUNK)
            if HAS_Z:
                zv = tl.load(z_ptr + chunk.off, mask=chunk.valid, other=0.0).to(tl.float32)
                y = y * zv * _sigmoid(zv)
            if FOLD == 1:
                out_off = chunk.off
            else:
                out_off = chunk.tok[:, None] + out_row[None, :]
            _fold_store(out_ptr, acc_ptr, out_off, y, chunk.valid, f, FOLD, SEPARATE_ACC)
        tl.store(last_ptr + (b * channels + d[None, :]) * state + n[:, None], h,
                 mask=n_ok[:, None] & (seg == segments - 1))
        if FOLD > 1:
            tl.debug_barrier()  # the next block's threads read what this block's wrote at other lanes


@triton.jit
def _combine_reverse(alpha1, beta1, decay1, alpha2, beta2, decay2):
    """Compose two spans of lambda[t] = dy[t] C[t] + decay[t+1] lambda[t+1], walking back in time: span 1 is the
    later one. A span maps the lambda just past its end to the lambda at its start, lambda = alpha + beta *
    decay_past_end * lambda_past_end, and keeps the decay of its first step for the span before it."""
    return alpha2 + beta2 * decay1 * alpha1, beta2 * decay1 * beta1, decay2


@triton.jit
def _grad_offsets(tok, off, b, d, channels, length, FOLD: tl.constexpr):
    """Offsets (CHUNK, D) of channels d's output gradient at tokens tok: `off` itself, or with FOLD > 1 those of the
    channel d % (KD / FOLD) of the (batch, KD/FOLD, L) gradient that channel d folds into."""
    if FOLD == 1:
        goff = off
    else:
        goff = tok[:, None] + ((b * (channels // FOLD) + d % (channels // FOLD)) * length)[None, :]
    return goff


@triton.jit
def _output_gradient(grad_ptr, z_ptr, goff, off, valid, HAS_Z: tl.constexpr):
    """dL/dy before the gate (CHUNK, D), with the loaded gradient g (at `goff`), gate z and sigmoid(z) (zeros
    without z)."""
    g = tl.load(grad_ptr + goff, mask=valid, other=0.0).to(tl.float32)
    if HAS_Z:
        zv = tl.load(z_ptr + off, mask=valid, other=0.0).to(tl.float32)
        s = _sigmoid(zv)
        dy = g * zv * s
    else:
        zv = tl.zeros(g.shape, tl.float32)
        s = zv
        dy = g
    return dy, g, zv, s


@triton.jit
def _adjoints(dy, Cv, decay, carry, CHUNK: tl.constexpr):
    """lambda (CHUNK, N, D) of one chunk from its dy, C, decays and the carry decay * lambda at the first step of
    the next chunk; returns lambda and the carry for the chunk before. The reverse scan walks the flipped tile
    forward (no `reverse=True`: triton#4362); flipping an axis held inside the thread only renames registers."""
    last_step = (tl.arange(0, CHUNK) == CHUNK - 1)[:, None, None]
    source = dy[:, None, :] * Cv[:, :, None] + tl.where(last_step, carry[None, :, :], 0.0)
    lam, _, _ = tl.associative_scan(
        (tl.flip(source, 0), tl.full(source.shape, 1.0, tl.float32), tl.flip(decay, 0)), axis=0,
        combine_fn=_combine_reverse)
    lam = tl.flip(lam, 0)
    return lam, _step(decay * lam, 0, CHUNK)


@triton.jit
def _segment_carry_kernel(
    grad_ptr, delta_ptr, A_ptr, C_ptr, z_ptr, bias_ptr, route_ptr, seg_carry_ptr, seg_dt_ptr,
    channels, u_channels, length, steps, state, groups, routes, segments, chunks_per_segment,
    HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr, SOFTPLUS: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr, FOLD: tl.constexpr,
):
    """Sequence parallelism, backward: the carry decay * lambda at the first step of each segment but the first
    when nothing comes in from after it, and its summed delta. Program axis 2 is the segment minus one."""
    b, n, n_ok, d, A2, bias, row, _u_row, bc_row, route_row = _program_block(
        A_ptr, bias_ptr, channels, u_channels, length, state, groups, routes, HAS_BIAS, BLOCK_D, BLOCK_N)
    seg = tl.program_id(2) + 1
    first = seg * chunks_per_segment
    last = tl.minimum(first + chunks_per_segment, tl.cdiv(steps, CHUNK)) - 1
    carry = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    dt_sum = tl.zeros([BLOCK_D], tl.float32)
    for ci in range(first, last + 1):
        t = (first + last - ci) * CHUNK + tl.arange(0, CHUNK)
        tok, _, valid, off, _, dt, decay = _chunk_decays(delta_ptr, route_ptr, route_row, t, steps, row, bias, A2,
                                                         HAS_ROUTE, SOFTPLUS)
        Cv = tl.load(C_ptr + tok[:, None] + bc_row[None, :], mask=(tok >= 0)[:, None] & n_ok[None, :], other=0.0)
        goff = _grad_offsets(tok, off, b, d, channels, length, FOLD)
        dy, _, _, _ = _output_gradient(grad_ptr, z_ptr, goff, off, valid, HAS_Z)
        _, carry = _adjoints(dy, Cv.to(tl.float32), decay, carry, CHUNK)
        dt_sum += tl.sum(dt, axis=0)
    summary = _segment_offsets(b, d, channels, segments, seg - 1)
    tl.store(seg_carry_ptr + summary * state + n[:, None], carry, mask=n_ok[:, None])
    tl.store(seg_dt_ptr + summary, dt_sum[None, :])


@triton.jit
def _selective_scan_bwd_kernel(
    grad_ptr, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr, saved_ptr, scratch_ptr,
    seg_carry_ptr, seg_dt_ptr, du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    batch, channels, u_channels, length, steps, state, groups, routes, segments, spans_per_segment,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
    CHUNKS_PER_SAVE: tl.constexpr, BLOCKS_PER_PROGRAM: tl.constexpr, FOLD: tl.constexpr,
):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    seg = tl.program_id(2)
    n = tl.arange(0, BLOCK_N)
    n_ok = n < state
    first = pid * BLOCK_D * BLOCKS_PER_PROGRAM
    route_row = first // (channels // routes)
    partial_row = ((pid * batch + b) * state + n) * length
    # this program's chunk-start states of one saved span: (CHUNKS_PER_SAVE, N, BLOCK_D) float32
    lane = tl.arange(0, BLOCK_D)
    scratch_off = (((seg * tl.num_programs(0) + pid) * batch + b) * CHUNKS_PER_SAVE * BLOCK_N + n[:, None]) * BLOCK_D \
        + lane[None, :]
    n_chunks = tl.cdiv(steps, CHUNK)
    n_saves = tl.cdiv(n_chunks, CHUNKS_PER_SAVE) - 1
    span_first = seg * spans_per_segment
    span_last = tl.minimum(span_first + spans_per_segment, n_saves + 1) - 1
    for blk in range(0, BLOCKS_PER_PROGRAM):
        d, A, A2, bias, row, u_row, bc_row = _channel_block(A_ptr, bias_ptr, b, first + blk * BLOCK_D, n_ok, channels,
                                                            u_channels, length, state, groups, HAS_BIAS, BLOCK_D,
                                                            BLOCK_N)
        Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
        # decay * lambda at the first step after this segment: the later segments' carries, each carried through
        # the decays of the segments before it
        carry = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        for k in range(seg + 1, segments):
            summary = _segment_offsets(b, d, channels, segments, seg + segments - k - 1)
            carry = tl.exp2(A2 * tl.load(seg_dt_ptr + summary)) * carry + tl.load(
                seg_carry_ptr + summary * state + n[:, None], mask=n_ok[:, None], other=0.0)
        dA = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        dD = tl.zeros([BLOCK_D], tl.float32)
        dbias = tl.zeros([BLOCK_D], tl.float32)
        for si in range(span_first, span_last + 1):
            span = span_first + span_last - si
            saved_off = ((b * channels + d[None, :]) * n_saves + span - 1) * state + n[:, None]
            h = tl.load(saved_ptr + saved_off, mask=n_ok[:, None] & (span > 0), other=0.0)
            span_chunks = tl.minimum(CHUNKS_PER_SAVE, n_chunks - span * CHUNKS_PER_SAVE)
            # replay the span forward, keeping each chunk's start state (saving them all would cost N floats per step)
            for j in range(0, span_chunks):
                tl.store(scratch_ptr + scratch_off + j * BLOCK_N * BLOCK_D, h)
                t = (span * CHUNKS_PER_SAVE + j) * CHUNK + tl.arange(0, CHUNK)
                chunk = _chunk_states(u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row,
                                      bc_row, n_ok, bias, A2, h, HAS_ROUTE, SOFTPLUS, CHUNK)
                h = _step(chunk.states, CHUNK - 1, CHUNK)
            tl.debug_barrier()
            for ji in range(0, span_chunks):
                j = span_chunks - 1 - ji
                h0 = tl.load(scratch_ptr + scratch_off + j * BLOCK_N * BLOCK_D)
                t = (span * CHUNKS_PER_SAVE + j) * CHUNK + tl.arange(0, CHUNK)
                states, drive, decay, u, x, dt, Bv, Cv, tok, inside, off, valid, bc_ok = _chunk_states(
                    u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias,
                    A2, h0, HAS_ROUTE, SOFTPLUS, CHUNK)
                goff = _grad_offsets(tok, off, b, d, channels, length, FOLD)
                dy, g, zv, s = _output_gradient(grad_ptr, z_ptr, goff, off, valid, HAS_Z)
                if HAS_Z:
                    y = tl.sum(states * Cv[:, :, None], axis=1) + Dv[None, :] * u
                    dz = g * y * s * (1.0 + zv * (1.0 - s))
                    tl.store(dz_ptr + off, dz.to(dz_ptr.dtype.element_ty), mask=valid)
                lam, carry = _adjoints(dy, Cv, decay, carry, CHUNK)

                prev = states - drive  # decay * previous state, without dividing by the decay
                sum_b = tl.sum(lam * Bv[:, :, None], axis=1)
                du = dt * sum_b + Dv[None, :] * dy
                ddt = tl.sum(lam * A[None, :, :] * prev, axis=1) + u * sum_b
                if SOFTPLUS:
                    ddt = tl.where(x > 20.0, ddt, ddt * _sigmoid(x))  # a NaN x takes the sigmoid: NaN
                ddt = tl.where(inside[:, None], ddt, 0.0)
                dbias += tl.sum(ddt, axis=0)
                dD += tl.sum(dy * u, axis=0)
                dA += tl.sum(lam * dt[:, None, :] * prev, axis=0)
                tl.store(du_ptr + off, du.to(du_ptr.dtype.element_ty), mask=valid)
                tl.store(ddelta_ptr + off, ddt.to(ddelta_ptr.dtype.element_ty), mask=valid)

                part_off = tok[:, None] + partial_row[None, :]
                dB_blk = tl.sum(lam * (dt * u)[:, None, :], axis=2)
                dC_blk = tl.sum(dy[:, None, :] * states, axis=2)
                dB_prev = tl.load(dB_ptr + part_off, mask=bc_ok & (blk > 0), other=0.0)
                dC_prev = tl.load(dC_ptr + part_off, mask=bc_ok & (blk > 0), other=0.0)
                tl.store(dB_ptr + part_off, dB_prev + dB_blk, mask=bc_ok)
                tl.store(dC_ptr + part_off, dC_prev + dC_blk, mask=bc_ok)
            tl.debug_barrier()
        per_segment = (seg * batch + b) * channels + d
        tl.store(dA_ptr + per_segment[None, :] * state + n[:, None], dA, mask=n_ok[:, None])
        tl.store(dD_ptr + per_segment, dD)
        tl.store(dbias_ptr + per_segment, dbias)


def _flags(scan: ScanTensors, delta_softplus: bool, state: int, cfg: TritonConfig, block_d: int, fold: int) -> dict:
    return dict(
        HAS_D=scan.D is not None, HAS_Z=scan.z is not None, HAS_BIAS=scan.delta_bias is not None,
        HAS_ROUTE=scan.route is not None, SOFTPLUS=delta_softplus, BLOCK_D=block_d, BLOCK_N=_next_power_of_2(state),
        CHUNK=cfg.chunk, CHUNKS_PER_SAVE=cfg.chunks_per_save, FOLD=fold, num_warps=cfg.num_warps,
    )


def _folded_output(delta: torch.Tensor, dtype: torch.dtype, fold: int,
                   unused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output (batch, KD/fold, L) in `dtype` and the float32 buffer the folded blocks add into before the last
    rounds into the output: `unused` (a float32 input the kernel never touches then) when no such buffer is needed,
    without a fold or with a float32 output."""
    batch, channels, length = delta.shape
    out = delta.new_empty(batch, channels // fold, length, dtype=dtype)
    if fold == 1 or dtype == torch.float32:
        return out, unused
    return out, delta.new_empty(batch, channels // fold, length, dtype=torch.float32)


def _summary_buffers(u: torch.Tensor, batch: int, channels: int, segments: int, state: int,
                     unused: torch.Tensor):
    """Per-segment summaries (batch, KD, segments - 1, N) and summed deltas (batch, KD, segments - 1), float32. With
    a single segment the kernels never read them, and both are `unused`: a float32 input the kernels only read, so
    no pointer is null, nothing is allocated per call, and no output is passed twice."""
    if segments == 1:
        return unused, unused
    return (u.new_empty(batch, channels, segments - 1, state, dtype=torch.float32),
            u.new_empty(batch, channels, segments - 1, dtype=torch.float32))


def selective_scan_triton_fwd(scan: ScanTensors, delta_softplus: bool, out_float32: bool, fold: int = 1,
                              config: TritonConfig | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward (`ScanTensors` order and shapes). Returns (out (batch, KD/fold, L), last_state, saved states).

    `config` (default `triton_config`'s) is for tuning; backward must get one with the same `save_every`. With
    several segments, a first kernel computes each segment's zero-start end state, from which every segment's
    program derives its start state.

    A fold runs in the forward kernel's epilogue: one program per block of output channels scans the `fold` channel
    blocks that add into it one after the other, the first writing, the others adding (read-modify-write, float32).
    One launch, not `fold` launches in order (each would pay a launch and the sum would still be a read-modify-write),
    with batch x KD / (fold x block) programs, still thousands at batch 128 for every zoo shape. Along a
    route the folded blocks write the same token at different steps, so sequence segments (separate programs) could
    race on it: with a route, a fold runs in one segment (segments only pay off below 256 programs, small batches)."""
    scan = scan.contiguous()
    shape = scan.sizes()
    u, delta, A, B, C, _, _, delta_bias, route = scan
    batch, channels, length, state, groups, routes, steps, u_channels = shape
    # without a route the blocks of a fold must stay whole too: tiles divide KD / lcm(fold, G)
    cfg = config or triton_config(channels, math.lcm(routes, fold), groups, state, batch=batch, steps=steps)
    if fold > 1 and route is not None:
        cfg = dataclasses.replace(cfg, spans_per_segment=_cdiv(steps, cfg.save_every))
    out, acc = _folded_output(delta, torch.float32 if out_float32 else u.dtype, fold, A)
    last_state = u.new_empty(batch, channels, state, dtype=torch.float32)
    saved = u.new_empty(saved_shape(shape, cfg.save_every), dtype=torch.float32)
    segments = cfg.segments(steps)
    chunks_per_segment = cfg.spans_per_segment * cfg.chunks_per_save
    seg_state, seg_dt = _summary_buffers(u, batch, channels, segments, state, A)
    flags = _flags(scan, delta_softplus, state, cfg, cfg.forward_block_d, fold)
    sizes = (channels, u_channels, length, steps, state, groups, routes, segments, chunks_per_segment)
    blocks = channels // cfg.forward_block_d
    if batch > 0 and segments > 1:
        torch.library.wrap_triton(_segment_state_kernel)[(blocks, batch, segments - 1)](
            u, delta, A, B, C, delta_bias, route, seg_state, seg_dt, *sizes,
            **{k: flags[k] for k in ("HAS_BIAS", "HAS_ROUTE", "SOFTPLUS", "BLOCK_D", "BLOCK_N", "CHUNK", "num_warps")},
        )
    if batch > 0:
        torch.library.wrap_triton(_selective_scan_fwd_kernel)[(blocks // fold, batch, segments)](
            *scan, seg_state, seg_dt, out, acc, last_state, saved, *sizes, SEPARATE_ACC=acc is not A, **flags,
        )
    return out, last_state, saved


def selective_scan_triton_bwd(grad_out: torch.Tensor, scan: ScanTensors, saved: torch.Tensor, delta_softplus: bool,
                              fold: int = 1, config: TritonConfig | None = None) -> tuple[torch.Tensor | None, ...]:
    """Backward. Returns du, ddelta, dA, dB, dC, dD, dz, ddelta_bias (None if absent). With a fold, channel d reads
    its output gradient at grad_out[:, d % (KD/fold)] (grad_out: (batch, KD/fold, L)).

    With several segments, a first kernel computes each segment's outgoing carry with nothing coming in from after
    it, from which every segment's program derives its incoming carry; dA, dD and the delta bias's gradient are
    summed over the segments here, in a fixed order."""
    scan = scan.contiguous()
    shape = scan.sizes()
    u, delta, A, B, C, D, z, delta_bias, route = scan
    batch, channels, length, state, groups, routes, steps, u_channels = shape
    grad_out = grad_out.contiguous()
    cfg = config or triton_config(channels, math.lcm(routes, fold), groups, state, batch=batch, steps=steps)
    programs = channels // (cfg.block_d * cfg.blocks_per_program)
    segments = cfg.segments(steps)
    # a shared u gets one gradient per route, in float32, summed over the routes below in a fixed order
    du = torch.empty_like(delta, dtype=torch.float32) if shape.shared_u else torch.empty_like(u)
    ddelta = torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else None
    f32 = dict(dtype=torch.float32, device=u.device)
    dA = torch.empty(segments, batch, channels, state, **f32)
    dD, dbias = torch.empty(segments, batch, channels, **f32), torch.empty(segments, batch, channels, **f32)
    dB_part = torch.empty(programs, batch, state, length, **f32)
    dC_part = torch.empty(programs, batch, state, length, **f32)
    scratch = torch.empty(segments, programs, batch, cfg.chunks_per_save, _next_power_of_2(state), cfg.block_d,
                          **f32)
    seg_carry, seg_dt = _summary_buffers(u, batch, channels, segments, state, A)
    flags = _flags(scan, delta_softplus, state, cfg, cfg.block_d, fold)
    if batch > 0 and segments > 1:
        torch.library.wrap_triton(_segment_carry_kernel)[(channels // cfg.block_d, batch, segments - 1)](
            grad_out, delta, A, C, z, delta_bias, route, seg_carry, seg_dt,
            channels, u_channels, length, steps, state, groups, routes, segments,
            cfg.spans_per_segment * cfg.chunks_per_save,
            **{k: flags[k] for k in ("HAS_Z", "HAS_BIAS", "HAS_ROUTE", "SOFTPLUS", "BLOCK_D", "BLOCK_N", "CHUNK",
                                     "FOLD", "num_warps")},
        )
    if batch > 0:
        torch.library.wrap_triton(_selective_scan_bwd_kernel)[(programs, batch, segments)](
            grad_out, *scan, saved.contiguous(), scratch, seg_carry, seg_dt,
            du, ddelta, dz, dA, dB_part, dC_part, dD, dbias,
            batch, channels, u_channels, length, steps, state, groups, routes, segments, cfg.spans_per_segment,
            BLOCKS_PER_PROGRAM=cfg.blocks_per_program, **flags,
        )
    per_group = programs // groups
    dB = dB_part.view(groups, per_group, batch, state, length).sum(1).transpose(0, 1).to(B.dtype)
    dC = dC_part.view(groups, per_group, batch, state, length).sum(1).transpose(0, 1).to(C.dtype)
    if shape.shared_u:
        du = du.view(batch, channels // u_channels, u_channels, length).sum(1).to(u.dtype)
    return (du, ddelta, dA.sum((0, 1)), dB.contiguous(), dC.contiguous(), dD.sum((0, 1)) if D is not None else None,
            dz, dbias.sum((0, 1)) if delta_bias is not None else None)

"""The `triton` backend at d_state N = 1 (VMamba-T, MSVMamba): kernels of the first-order recurrence
h[t] = exp(delta[t] A) h[t-1] + delta[t] u[t] B[t] with no state axis, same contract as `kernels/triton_scan.py`
(`kernels.backends` sends N = 1 calls here).

`kernels/triton_scan.py` tiles (CHUNK, N, BLOCK_D) with time inside each thread and the channels on the lanes; at
N = 1 each lane reads its own channel's row, so a warp's load touches 32 rows (32 sectors per request) and every
element pays its own address arithmetic.

* Layout: tiles are (PER_LANE, BLOCK_D, LANES) = (4, 4, 32) on one warp: lane l holds steps l * 4 .. l * 4 + 3 of a
  128-step chunk for all the program's channels, so a warp's load of one channel row is one run of consecutive
  tokens (8 sectors per request for 4 requests, bf16) and, without a route and with L a multiple of 16, a vector
  load per thread. The scan has two levels: each thread scans its steps in registers (`tl.associative_scan` along
  the register axis), the threads' spans are scanned across the lanes (shuffles, once per span, not per step), and
  each step is then the state entering its span carried through its prefix. The state entering a lane is the lane
  before's end, fetched with `tl.gather` (one shuffle).
* Why one warp: with 4 warps on the channels, Triton's default layout put the warps of the (steps, 1, lanes) route,
  B and C tiles on the steps, and every chunk converted them through shared memory (see `state1_config`).
* One channel block and one batch row per program; its channels share one route row and one B/C group (the block
  divides KD / lcm(K, G)), so B, C and the route are loaded once per chunk.
* Route addressing as in `kernels/triton_scan.py`: step t reads token route[k, t] (-1: padding, zeros before the
  bias), results are written at token positions, a shared u is read at channel d % u_channels and its gradient is
  written per channel in float32 and summed by the wrapper.
* Steps past L' inside the last chunk are the scan identity (delta = 0, decay 1).
* The forward saves the state every `triton_scan.save_every()` steps but at the start, in `triton_scan`'s layout
  (batch, KD, saves, 1) float32, so the op's fake kernel and the saved-state shape stay the backend's. A chunk is a
  multiple of the save interval, so every chunk starts at a saved state: the backward walks the chunks in reverse
  and recomputes each chunk's states from its saved start (no replay of a span, no scratch buffer). The adjoint
  lambda[t] = dy[t] C[t] + decay[t+1] lambda[t+1] is the same two-level scan run backwards: the register axis is
  flipped (renaming registers) and the lanes are reversed by `tl.gather` (one shuffle per value; `tl.flip` takes one
  per lane bit), both scanned forward with `triton_scan._combine_reverse` (no `reverse=True`: triton#4362).
* Deterministic: dB, dC are summed over a block's channels inside the thread and added, block after block in a
  fixed order, to the backward program's rows (programs, batch, L), which the wrapper sums over the programs of each
  group in a fixed order; dA, dD and the bias gradient are written per (batch row, channel) and summed by the
  wrapper. No atomics.
* No sequence segments: at N = 1 a batch row of KD channels already gives KD / 4 forward programs.

Static counts on sm_90 (benchmarks/triton_static.py, vmamba_t stage 1 with its routes; and with L and the pointers
16-divisible as a launch on VMamba-T stage 1 specialises them): 107 and 224 instructions per element forward and
backward against the generic kernel's 122 and 272 (100 and 205 against 124 and 254 specialised; 84 and 173 without
a route, against 107 and 254).

fp32/fp16/bf16 inputs are upcast right after loading; state and arithmetic are fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .backends import triton_interpret
from .scan_tensors import ScanTensors
from .triton_scan import (
    _combine,
    _combine_reverse,
    _fold_store,
    _folded_output,
    _largest_power_of_two_dividing,
    _sigmoid,
    _softplus,
    save_every,
    saved_shape,
)


@dataclass(frozen=True)
class State1Config:
    """Tiles of one call: channels per block, steps per chunk (a multiple of `save_every`) = lanes x steps per
    lane, lanes along time, warps, and channel blocks per backward program (one after the other, adding to the
    program's dB, dC rows)."""

    block_d: int
    chunk: int
    lanes: int
    num_warps: int
    blocks_per_program: int

    @property
    def per_lane(self) -> int:
        return self.chunk // self.lanes


def state1_config(channels: int, routes: int, groups: int) -> State1Config:
    """The tiles of one call, a fixed function of the shapes. On a GPU: one warp, 128 steps (4 consecutive ones per
    lane on 32 lanes) by up to 4 channels held in each thread. With 4 warps on the channels, Triton's default
    layout put the warps of the (steps, 1, lanes) route, B and C tiles on the steps, and converting them to the
    channel tiles' layout went through shared memory (sm_90 static counts, benchmarks/triton_static.py's method, with a
    route and without z: 127 against 88 instructions per element forward, 232 against 188 backward). Under the
    interpreter, one save interval of 8 steps, 2 per lane on 4 lanes, by up to 4 channels, so small tests cross
    lanes and chunks.

    A backward program runs up to 8 blocks (32 channels, as kernels/triton_scan.py's N = 1 programs): its dB, dC
    rows (programs, batch, L) float32, written and summed again by the wrapper, would otherwise move 8 bytes per
    4 channels and token, a third of the backward's other traffic at VMamba-T's shapes."""
    per_block = channels // math.lcm(routes, groups)
    block_d = _largest_power_of_two_dividing(per_block, 4)
    if triton_interpret():
        return State1Config(block_d, save_every(), 4, 1, _largest_power_of_two_dividing(per_block // block_d, 2))
    return State1Config(block_d, max(128, save_every()), 32, 1,
                        _largest_power_of_two_dividing(per_block // block_d, 8))


@triton.jit
def _tokens(route_ptr, route_row, t, steps, HAS_ROUTE: tl.constexpr):
    """Token read at steps t, whether t is before the end, and whether it reads a token. Without a route the token
    is t itself, so the compiler sees each thread's consecutive offsets and vectorises the loads."""
    inside = t < steps
    if HAS_ROUTE:
        # int32 from eager calls (kernels.route_order.RouteLayout.kernel_route), int64 inside compiled graphs
        tok = tl.load(route_ptr + route_row * steps + t, mask=inside, other=-1).to(tl.int32)
        valid = tok >= 0
    else:
        tok = t
        valid = inside
    return tok, inside, valid


@triton.jit
def _in_thread(tile, index, PER_LANE: tl.constexpr):
    """tile[index] of a (PER_LANE, D, LANES) tile: a register select, each thread holding its steps."""
    return tl.sum(tl.where((tl.arange(0, PER_LANE) == index)[:, None, None], tile, 0.0), axis=0)


@triton.jit
def _on_lane(tile, index, LANES: tl.constexpr):
    """tile[:, index] of a (D, LANES) tile: a sum across the lanes."""
    return tl.sum(tl.where((tl.arange(0, LANES) == index)[None, :], tile, 0.0), axis=1)


@triton.jit
def _from_lane(tile, lane, LANES: tl.constexpr):
    """tile[d, lane[d, l]] of (D, LANES) tiles: one shuffle per value."""
    return tl.gather(tile, tl.broadcast_to(lane, tile.shape), axis=1)


@triton.jit
def _chunk(u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, bias, A2, h,
           HAS_ROUTE: tl.constexpr, SOFTPLUS: tl.constexpr, PER_LANE: tl.constexpr, LANES: tl.constexpr):
    """Load steps t (PER_LANE, 1, LANES) of the program's channels and scan them from states h (D,): first the
    steps of each thread in registers, then the threads' spans across the lanes, then each step from the state
    entering its span. Returns the (PER_LANE, D, LANES) states, inputs delta * u * B, decays, u, pre-softplus x and
    delta, the (PER_LANE, 1, LANES) B, C, tokens and masks, the offsets of the steps' tokens in the (batch, KD, L)
    tensors, and the state after the chunk (D,)."""
    tok, inside, valid = _tokens(route_ptr, route_row, t, steps, HAS_ROUTE)
    off = row[None, :, None] + tok
    x = tl.load(delta_ptr + off, mask=valid, other=0.0).to(tl.float32) + bias[None, :, None]
    dt = _softplus(x) if SOFTPLUS else x
    dt = tl.where(inside, dt, 0.0)  # steps past the end are the identity (mamba#368)
    # decay 1 there even for an infinite or NaN A (exp2(0 * inf) is NaN), as in kernels/triton_scan.py
    decay = tl.where(inside, tl.exp2(dt * A2[None, :, None]), 1.0)
    u = tl.load(u_ptr + u_row[None, :, None] + tok, mask=valid, other=0.0).to(tl.float32)
    Bv = tl.load(B_ptr + bc_row + tok, mask=valid, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + bc_row + tok, mask=valid, other=0.0).to(tl.float32)
    drive = dt * u * Bv
    decays, drives = tl.associative_scan((decay, drive), axis=0, combine_fn=_combine)
    first_lane = (tl.arange(0, LANES) == 0)[None, :]
    span_decay = _in_thread(decays, PER_LANE - 1, PER_LANE)
    span_drive = _in_thread(drives, PER_LANE - 1, PER_LANE)
    _, ends = tl.associative_scan(
        (span_decay, tl.where(first_lane, span_drive + span_decay * h[:, None], span_drive)), axis=1,
        combine_fn=_combine)
    lane = tl.arange(0, LANES)[None, :]
    entering = tl.where(first_lane, h[:, None], _from_lane(ends, tl.maximum(lane - 1, 0), LANES))
    states = decays * entering[None, :, :] + drives
    return (states, drive, decay, u, x, dt, Bv, Cv, tok, inside, valid, off,
            _on_lane(ends, LANES - 1, LANES))


@triton.jit
def _adjoints(source, decay, carry, PER_LANE: tl.constexpr, LANES: tl.constexpr):
    """lambda[t] = source[t] + decay[t+1] lambda[t+1] over a (PER_LANE, D, LANES) chunk, with decay * lambda at the
    first step after it `carry` (D,); returns lambda and the carry for the chunk before. Reverse scans walk flipped
    tiles forward (no `reverse=True`: triton#4362): each thread's steps in registers (a flip of the register axis
    only renames registers), then the threads' spans across the lanes (reversed by shuffles, once per span, not
    per step), then each step from the carry entering its span."""
    inner, spread, _ = tl.associative_scan(
        (tl.flip(source, 0), tl.full(source.shape, 1.0, tl.float32), tl.flip(decay, 0)), axis=0,
        combine_fn=_combine_reverse)
    inner = tl.flip(inner, 0)
    spread = tl.flip(spread, 0)
    span_first = _in_thread(inner, 0, PER_LANE)  # lambda at the span's first step from what the span holds
    span_spread = _in_thread(spread, 0, PER_LANE)  # and how the carry entering it from the right spreads there
    span_decay = _in_thread(decay, 0, PER_LANE)
    last_lane = (tl.arange(0, LANES) == LANES - 1)[None, :]
    lane = tl.arange(0, LANES)[None, :]
    mirror = LANES - 1 - lane  # reversing the lanes by one shuffle per value (tl.flip: one per lane bit)
    starts, _, _ = tl.associative_scan(
        (_from_lane(tl.where(last_lane, span_first + span_spread * carry[:, None], span_first), mirror, LANES),
         _from_lane(span_spread, mirror, LANES), _from_lane(span_decay, mirror, LANES)), axis=1,
        combine_fn=_combine_reverse)
    starts = _from_lane(starts, mirror, LANES)  # lambda at each span's first step
    entering = tl.where(last_lane, carry[:, None],
                        _from_lane(span_decay * starts, tl.minimum(lane + 1, LANES - 1), LANES))
    return inner + spread * entering[None, :, :], _on_lane(span_decay * starts, 0, LANES)


@triton.jit
def _program(A_ptr, bias_ptr, d0, channels, u_channels, length, groups, routes, HAS_BIAS: tl.constexpr,
             BLOCK_D: tl.constexpr):
    """Channels d = d0 + [0, BLOCK_D) of the program's batch row: d (D,), the batch row, A (D,) and A * log2 e, the
    delta bias, the row offsets of delta/z/out and of u (D,), the offset of the B/C group's row and the route row."""
    b = tl.program_id(1).to(tl.int64)
    d = d0 + tl.arange(0, BLOCK_D)
    A = tl.load(A_ptr + d)
    bias = tl.load(bias_ptr + d) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
    row = (b * channels + d) * length
    u_row = (b * u_channels + d % u_channels) * length
    bc_row = (b * groups + d0 // (channels // groups)) * length
    return d, b, A, A * 1.4426950408889634, bias, row, u_row, bc_row, d0 // (channels // routes)


@triton.jit
def _chunk_steps(c, PER_LANE: tl.constexpr, LANES: tl.constexpr):
    """Steps (PER_LANE, 1, LANES) of chunk c: lane l holds PER_LANE consecutive steps."""
    return (c * LANES + tl.arange(0, LANES)[None, None, :]) * PER_LANE + tl.arange(0, PER_LANE)[:, None, None]


@triton.jit
def _sum_steps(tile):
    """(D,) sums of a (PER_LANE, D, LANES) tile over its steps."""
    return tl.sum(tl.sum(tile, axis=2), axis=0)


@triton.jit
def _state1_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr, out_ptr, acc_ptr, last_ptr, saved_ptr,
    channels, u_channels, length, steps, groups, routes, n_saves,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, PER_LANE: tl.constexpr, LANES: tl.constexpr,
    SAVE_EVERY: tl.constexpr, FOLD: tl.constexpr, SEPARATE_ACC: tl.constexpr,
):
    """Program axis 0: a block of BLOCK_D output channels; with FOLD > 1 the program scans the FOLD channel blocks
    that fold into it one after the other, each adding its y to the output (`triton_scan._fold_store`)."""
    out_channels = channels // FOLD
    out_row = (tl.program_id(1).to(tl.int64) * out_channels + tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)) \
        * length
    for f in range(0, FOLD):
        d, b, _A, A2, bias, row, u_row, bc_row, route_row = _program(
            A_ptr, bias_ptr, f * out_channels + tl.program_id(0) * BLOCK_D, channels, u_channels, length, groups,
            routes, HAS_BIAS, BLOCK_D)
        Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
        saved_row = (b * channels + d) * n_saves
        h = tl.zeros([BLOCK_D], tl.float32)
        for c in range(0, tl.cdiv(steps, PER_LANE * LANES)):
            t = _chunk_steps(c, PER_LANE, LANES)
            states, _, _, u, _, _, _, Cv, tok, _, valid, off, h = _chunk(
                u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, bias, A2, h,
                HAS_ROUTE, SOFTPLUS, PER_LANE, LANES)
            # the state before step s * SAVE_EVERY is saved at s - 1 (s >= 1), in triton_scan's layout
            save = (t + 1) // SAVE_EVERY - 1
            tl.store(saved_ptr + saved_row[None, :, None] + save, states,
                     mask=((t + 1) % SAVE_EVERY == 0) & (save < n_saves))
            y = states * Cv + Dv[None, :, None] * u
            if HAS_Z:
                zv = tl.load(z_ptr + off, mask=valid, other=0.0).to(tl.float32)
                y = y * zv * _sigmoid(zv)
            if FOLD == 1:
                out_off = off
            else:
                out_off = out_row[None, :, None] + tok
            _fold_store(out_ptr, acc_ptr, out_off, y, valid, f, FOLD, SEPARATE_ACC)
        tl.store(last_ptr + b * channels + d, h)
        if FOLD > 1:
            tl.debug_barrier()  # the next block's threads read what this block's wrote at other lanes


@triton.jit
def _state1_bwd_kernel(
    grad_ptr, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr, saved_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    batch, channels, u_channels, length, steps, groups, routes, n_saves,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, PER_LANE: tl.constexpr, LANES: tl.constexpr,
    SAVE_EVERY: tl.constexpr, BLOCKS_PER_PROGRAM: tl.constexpr, FOLD: tl.constexpr,
):
    partial_row = (tl.program_id(0) * batch + tl.program_id(1).to(tl.int64)) * length
    n_chunks = tl.cdiv(steps, PER_LANE * LANES)
    for blk in range(0, BLOCKS_PER_PROGRAM):
        d, b, A, A2, bias, row, u_row, bc_row, route_row = _program(
            A_ptr, bias_ptr, (tl.program_id(0) * BLOCKS_PER_PROGRAM + blk) * BLOCK_D, channels, u_channels, length,
            groups, routes, HAS_BIAS, BLOCK_D)
        Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
        saved_row = (b * channels + d) * n_saves
        carry = tl.zeros([BLOCK_D], tl.float32)  # decay * lambda at the first step after the chunk
        dA = tl.zeros([BLOCK_D], tl.float32)
        dD = tl.zeros([BLOCK_D], tl.float32)
        dbias = tl.zeros([BLOCK_D], tl.float32)
        for ci in range(0, n_chunks):
            c = n_chunks - 1 - ci
            h0 = tl.load(saved_ptr + saved_row + c * (PER_LANE * LANES // SAVE_EVERY) - 1, mask=c > 0, other=0.0)
            t = _chunk_steps(c, PER_LANE, LANES)
            states, drive, decay, u, x, dt, Bv, Cv, tok, inside, valid, off, _ = _chunk(
                u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, bias, A2, h0,
                HAS_ROUTE, SOFTPLUS, PER_LANE, LANES)
            if FOLD == 1:
                goff = off
            else:  # channel d's gradient is that of the output channel it folds into
                goff = ((b * (channels // FOLD) + d % (channels // FOLD)) * length)[None, :, None] + tok
            g = tl.load(grad_ptr + goff, mask=valid, other=0.0).to(tl.float32)
            if HAS_Z:
                zv = tl.load(z_ptr + off, mask=valid, other=0.0).to(tl.float32)
                s = _sigmoid(zv)
                dy = g * zv * s
                y = states * Cv + Dv[None, :, None] * u
                dz = g * y * s * (1.0 + zv * (1.0 - s))
                tl.store(dz_ptr + off, dz.to(dz_ptr.dtype.element_ty), mask=valid)
            else:
                dy = g
            lam, carry = _adjoints(dy * Cv, decay, carry, PER_LANE, LANES)

            prev = states - drive  # decay * previous state, without dividing by the decay
            sum_b = lam * Bv
            du = dt * sum_b + Dv[None, :, None] * dy
            ddt = lam * A[None, :, None] * prev + u * sum_b
            if SOFTPLUS:
                ddt = tl.where(x > 20.0, ddt, ddt * _sigmoid(x))  # a NaN x takes the sigmoid: NaN
            ddt = tl.where(inside, ddt, 0.0)
            dbias += _sum_steps(ddt)
            dD += _sum_steps(dy * u)
            dA += _sum_steps(lam * dt * prev)
            tl.store(du_ptr + off, du.to(du_ptr.dtype.element_ty), mask=valid)
            tl.store(ddelta_ptr + off, ddt.to(ddelta_ptr.dtype.element_ty), mask=valid)
            # the program's channel blocks add to its dB, dC rows in order (a read of what the block before wrote)
            part = partial_row + tok
            dB_blk = tl.sum(lam * dt * u, axis=1, keep_dims=True)
            dC_blk = tl.sum(dy * states, axis=1, keep_dims=True)
            dB_blk += tl.load(dB_ptr + part, mask=valid & (blk > 0), other=0.0)
            dC_blk += tl.load(dC_ptr + part, mask=valid & (blk > 0), other=0.0)
            tl.store(dB_ptr + part, dB_blk, mask=valid)
            tl.store(dC_ptr + part, dC_blk, mask=valid)
        per_row = b * channels + d
        tl.store(dA_ptr + per_row, dA)
        tl.store(dD_ptr + per_row, dD)
        tl.store(dbias_ptr + per_row, dbias)


def _flags(scan: ScanTensors, delta_softplus: bool, cfg: State1Config, fold: int) -> dict:
    return dict(
        HAS_D=scan.D is not None, HAS_Z=scan.z is not None, HAS_BIAS=scan.delta_bias is not None,
        HAS_ROUTE=scan.route is not None, SOFTPLUS=delta_softplus, BLOCK_D=cfg.block_d, PER_LANE=cfg.per_lane,
        LANES=cfg.lanes, SAVE_EVERY=save_every(), FOLD=fold, num_warps=cfg.num_warps,
    )


def _checked_config(channels: int, routes: int, groups: int, state: int, config: State1Config | None,
                    fold: int) -> State1Config:
    if state != 1:
        raise ValueError(f"triton_scan_state1: expected d_state N = 1, got N = {state}")
    # without a route the blocks of a fold must stay whole too: tiles divide KD / lcm(fold, G)
    cfg = config or state1_config(channels, math.lcm(routes, fold), groups)
    if cfg.chunk % save_every():
        raise ValueError(f"triton_scan_state1: chunk must be a multiple of save_every() = {save_every()}, got "
                         f"{cfg.chunk}")
    return cfg


def selective_scan_state1_fwd(scan: ScanTensors, delta_softplus: bool, out_float32: bool, fold: int = 1,
                              config: State1Config | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward at N = 1 (`ScanTensors` order and shapes). Returns (out (batch, KD/fold, L), last_state, saved
    states), the saved states in `triton_scan.saved_shape`. A fold runs in the epilogue as in
    `triton_scan.selective_scan_triton_fwd`: one program per block of output channels scans the `fold` blocks
    that add into it in order: batch x KD / (fold x block) programs, thousands at batch 128 for every zoo shape."""
    scan = scan.contiguous()
    shape = scan.sizes()
    u, delta, A = scan.u, scan.delta, scan.A
    batch, channels, length, state, groups, routes, steps, u_channels = shape
    cfg = _checked_config(channels, routes, groups, state, config, fold)
    out, acc = _folded_output(delta, torch.float32 if out_float32 else u.dtype, fold, A)
    last_state = u.new_empty(batch, channels, 1, dtype=torch.float32)
    saved = u.new_empty(saved_shape(shape), dtype=torch.float32)
    if batch > 0:
        torch.library.wrap_triton(_state1_fwd_kernel)[(channels // cfg.block_d // fold, batch)](
            *scan, out, acc, last_state, saved, channels, u_channels, length, steps, groups, routes, saved.shape[2],
            SEPARATE_ACC=acc is not A, **_flags(scan, delta_softplus, cfg, fold),
        )
    return out, last_state, saved


def selective_scan_state1_bwd(grad_out: torch.Tensor, scan: ScanTensors, saved: torch.Tensor, delta_softplus: bool,
                              fold: int = 1, config: State1Config | None = None) -> tuple[torch.Tensor | None, ...]:
    """Backward at N = 1. Returns du, ddelta, dA, dB, dC, dD, dz, ddelta_bias (None if absent); with a fold,
    channel d reads its output gradient at grad_out[:, d % (KD/fold)]."""
    scan = scan.contiguous()
    shape = scan.sizes()
    u, delta, _, B, C, D, z, delta_bias, _ = scan
    batch, channels, length, state, groups, routes, steps, u_channels = shape
    cfg = _checked_config(channels, routes, groups, state, config, fold)
    grad_out = grad_out.contiguous()
    programs = channels // (cfg.block_d * cfg.blocks_per_program)
    # a shared u gets one gradient per route, in float32, summed over the routes below in a fixed order
    du = torch.empty_like(delta, dtype=torch.float32) if shape.shared_u else torch.empty_like(u)
    ddelta = torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else None
    f32 = dict(dtype=torch.float32, device=u.device)
    dA, dD, dbias = (torch.empty(batch, channels, **f32) for _ in range(3))
    dB_part, dC_part = (torch.empty(programs, batch, length, **f32) for _ in range(2))
    if batch > 0:
        torch.library.wrap_triton(_state1_bwd_kernel)[(programs, batch)](
            grad_out, *scan, saved.contiguous(), du, ddelta, dz, dA, dB_part, dC_part, dD, dbias,
            batch, channels, u_channels, length, steps, groups, routes, saved.shape[2],
            BLOCKS_PER_PROGRAM=cfg.blocks_per_program, **_flags(scan, delta_softplus, cfg, fold),
        )
    per_group = programs // groups
    dB = dB_part.view(groups, per_group, batch, 1, length).sum(1).transpose(0, 1).to(B.dtype)
    dC = dC_part.view(groups, per_group, batch, 1, length).sum(1).transpose(0, 1).to(C.dtype)
    if shape.shared_u:
        du = du.view(batch, channels // u_channels, u_channels, length).sum(1).to(u.dtype)
    return (du, ddelta, dA.sum(0)[:, None], dB.contiguous(), dC.contiguous(), dD.sum(0) if D is not None else None,
            dz, dbias.sum(0) if delta_bias is not None else None)

"""The `triton` backend: chunked forward and backward kernels (kernel.md sections 2, 3, 5 and 7).

Each program owns BLOCK_D consecutive channels of one batch row; all of them share one route row and one B/C group
(BLOCK_D divides KD / lcm(K, G)), so B, C and the route are loaded once per program. Time runs in chunks of CHUNK
steps: a chunk's decays exp2(delta * A * log2 e) and inputs delta * u * B form a (CHUNK, N, BLOCK_D) tile that
`tl.associative_scan` combines, starting from the state carried over from the previous chunk.

* Layout: tiles are time-major with the channels last, so Triton's default layout puts one channel on each lane
  and every step and state of that channel inside the thread. The scan and the sums over N are register arithmetic;
  only the backward's sums over channels (dB, dC) cross lanes. With time on the lanes (the first design) the scan
  cost about 15 shuffles per element forward and 46 backward (benchmarks/triton_static.py counts them).
* Route addressing: the token read at step t is route[k, t] (-1: padding, read as zeros before the bias), y and the
  gradients of u/delta/z are written back at token positions; no permuted copies are made. A u shared by the K
  routes (KD/K channels) is read at channel d % (KD/K); its gradient is written per route (KD channels, float32)
  and summed over the routes by the wrapper.
* Steps past L' inside the last tile are the scan identity (delta = 0 after bias/softplus, mamba#368).
* Forward saves the state every CHUNK * CHUNKS_PER_SAVE steps but at the start: (batch, KD, saves, N) float32, so
  backward memory is O(batch·KD·N·L/save_every). Backward walks the saved spans in reverse: it replays a span
  forward from its saved state, writing each chunk's start state to a small per-program scratch buffer, then walks
  the span's chunks in reverse. The reverse scan lambda[t] = dy[t] C[t] + decay[t+1] lambda[t+1] runs forward over
  the flipped tile (no `reverse=True`: triton#4362) with a combine that carries each span's first decay, so
  decay[t+1] needs no second load or exponential.
* Deterministic: dB/dC are summed over a program's channels inside the program and accumulated over its
  BLOCKS_PER_PROGRAM channel blocks in a fixed order into per-program partials (n_programs, batch, N, L), which the
  wrapper sums over the programs of each group in a fixed order. No atomics.
* No autotuning: the save interval fixes the saved-state layout and BLOCK_D the reduction order, so both are fixed
  functions of the shapes (`triton_config`); under TRITON_INTERPRET=1 tiles are tiny because the interpreter runs
  every element of `tl.associative_scan` through Python.

fp32/fp16/bf16 inputs are upcast right after loading; state and arithmetic are fp32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.backends import triton_interpret

LOG2E = 1.4426950408889634


@dataclass(frozen=True)
class TritonConfig:
    """Tile sizes of one call: channels per backward block, blocks per backward program, steps per chunk (the
    scanned tile), warps, channels per forward program, and chunks per saved state (the saved layout is fixed by
    chunk * chunks_per_save alone)."""

    block_d: int
    blocks_per_program: int
    chunk: int
    num_warps: int
    forward_block_d: int
    chunks_per_save: int

    @property
    def save_every(self) -> int:
        return self.chunk * self.chunks_per_save


def chunk_size(state: int) -> int:
    """Steps per scanned tile: each thread holds CHUNK x N states of one channel, 64 floats per tile on a GPU."""
    if triton_interpret():
        return 4
    return 4 if triton.next_power_of_2(state) >= 8 else 8


def save_every() -> int:
    """Steps between the states the forward saves for the backward (a multiple of `chunk_size`)."""
    return 8 if triton_interpret() else 64


def _largest_power_of_two_dividing(n: int, cap: int) -> int:
    p = 1
    while p * 2 <= cap and n % (p * 2) == 0:
        p *= 2
    return p


def triton_config(channels: int, routes: int, groups: int, state: int) -> TritonConfig:
    per_segment = channels // math.lcm(routes, groups)
    chunk = chunk_size(state)
    per_save = save_every() // chunk
    if triton_interpret():
        block_d = _largest_power_of_two_dividing(per_segment, 4)
        return TritonConfig(block_d, _largest_power_of_two_dividing(per_segment // block_d, 2), chunk, 1, block_d,
                            per_save)
    # One warp per program, one channel per lane, time and N inside the thread: chosen on the instruction mix ptxas
    # makes for sm_90 (benchmarks/triton_static.py, benchmarks/triton_static.md), not yet timed on a GPU.
    block_d = _largest_power_of_two_dividing(per_segment, 32)
    return TritonConfig(block_d, 1, chunk, 1, block_d, per_save)


def candidate_configs(channels: int, routes: int, groups: int, state: int, warps: tuple[int, ...] = (1, 2, 4),
                      chunks: tuple[int, ...] = (2, 4, 8, 16)) -> list[TritonConfig]:
    """Tiles worth trying on a GPU: blocks of 32 lanes x `warps` x 1 or 2 channels per thread that divide a route's
    channels, every chunk of `chunks` with at most 256 states per thread, the state saved every 64 steps."""
    per_segment = channels // math.lcm(routes, groups)
    out = []
    for num_warps in warps:
        for per_thread in (1, 2):
            block_d = 32 * num_warps * per_thread
            if per_segment % block_d:
                continue
            out += [TritonConfig(block_d, 1, chunk, num_warps, block_d, max(1, 64 // chunk)) for chunk in chunks
                    if chunk * triton.next_power_of_2(state) * per_thread <= 256]
    return out


def saved_shape(batch: int, channels: int, steps: int, state: int, every: int | None = None) -> tuple[int, ...]:
    """The saved states: (batch, KD, saves, N), one every `every` steps (default `save_every`) but the first."""
    return (batch, channels, -(-steps // (every or save_every())) - 1, state)


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
        tok = tl.load(route_ptr + route_row * steps + t, mask=inside, other=-1)
    else:
        tok = tl.where(inside, t, -1)
    return tok, inside


@triton.jit
def _chunk_states(u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias,
                  A2, h0, HAS_ROUTE: tl.constexpr, SOFTPLUS: tl.constexpr, CHUNK: tl.constexpr):
    """Load one chunk along the route and scan it from state h0 (N, D).

    Tiles are time-major, (CHUNK, N, D) and (CHUNK, D): with D spread over the lanes, every thread holds whole
    columns of time, so the scan runs inside the thread (no shuffles) and sums over N are register adds.
    Returns the states of every step, their inputs delta * u * B (without h0), the decays, and the loaded tiles
    (u, pre-softplus x, delta, B, C) with their offsets in the (batch, KD, L) tensors (u's rows start at u_row)."""
    tok, inside = _load_steps(route_ptr, route_row, t, steps, HAS_ROUTE)
    valid = (tok >= 0)[:, None]
    off = tok[:, None] + row[None, :]
    u = tl.load(u_ptr + tok[:, None] + u_row[None, :], mask=valid, other=0.0).to(tl.float32)
    x = tl.load(delta_ptr + off, mask=valid, other=0.0).to(tl.float32) + bias[None, :]
    dt = _softplus(x) if SOFTPLUS else x
    dt = tl.where(inside[:, None], dt, 0.0)  # steps past the end are the identity (mamba#368)
    bc_off = tok[:, None] + bc_row[None, :]
    bc_ok = (tok >= 0)[:, None] & n_ok[None, :]
    Bv = tl.load(B_ptr + bc_off, mask=bc_ok, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + bc_off, mask=bc_ok, other=0.0).to(tl.float32)
    decay = tl.exp2(dt[:, None, :] * A2[None, :, :])
    drive = (dt * u)[:, None, :] * Bv[:, :, None]
    first = (tl.arange(0, CHUNK) == 0)[:, None, None]
    _, states = tl.associative_scan((decay, tl.where(first, drive + decay * h0[None, :, :], drive)), axis=0,
                                    combine_fn=_combine)
    return states, drive, decay, u, x, dt, Bv, Cv, tok, inside, off, valid, bc_ok


@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr,
    out_ptr, last_ptr, saved_ptr,
    channels, u_channels, length, steps, state, groups, routes,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
    CHUNKS_PER_SAVE: tl.constexpr,
):
    pid_d = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    d0 = pid_d * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    n_ok = n < state
    group = d0 // (channels // groups)
    route_row = d0 // (channels // routes)
    state_off = (b * channels + d[None, :]) * state + n[:, None]  # (N, D) tiles of (batch, KD, N)
    A2 = tl.load(A_ptr + d[None, :] * state + n[:, None], mask=n_ok[:, None], other=0.0) * 1.4426950408889634
    bias = tl.load(bias_ptr + d) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
    Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
    row = (b * channels + d) * length
    u_row = (b * u_channels + d % u_channels) * length
    bc_row = ((b * groups + group) * state + n) * length
    n_chunks = tl.cdiv(steps, CHUNK)
    n_saves = tl.cdiv(steps, CHUNK * CHUNKS_PER_SAVE) - 1
    h = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for c in range(0, n_chunks):
        save = c // CHUNKS_PER_SAVE
        saved_off = ((b * channels + d[None, :]) * n_saves + save - 1) * state + n[:, None]
        tl.store(saved_ptr + saved_off, h, mask=n_ok[:, None] & (c > 0) & (c % CHUNKS_PER_SAVE == 0))
        t = c * CHUNK + tl.arange(0, CHUNK)
        states, _, _, u, _, _, _, Cv, _, _, off, valid, _ = _chunk_states(
            u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias, A2, h,
            HAS_ROUTE, SOFTPLUS, CHUNK)
        y = tl.sum(states * Cv[:, :, None], axis=1) + Dv[None, :] * u
        h = _step(states, CHUNK - 1, CHUNK)
        if HAS_Z:
            zv = tl.load(z_ptr + off, mask=valid, other=0.0).to(tl.float32)
            y = y * zv * _sigmoid(zv)
        tl.store(out_ptr + off, y.to(out_ptr.dtype.element_ty), mask=valid)
    tl.store(last_ptr + state_off, h, mask=n_ok[:, None])


@triton.jit
def _combine_reverse(alpha1, beta1, decay1, alpha2, beta2, decay2):
    """Compose two spans of lambda[t] = dy[t] C[t] + decay[t+1] lambda[t+1], walking back in time: span 1 is the
    later one. A span maps the lambda just past its end to the lambda at its start, lambda = alpha + beta *
    decay_past_end * lambda_past_end, and keeps the decay of its first step for the span before it."""
    return alpha2 + beta2 * decay1 * alpha1, beta2 * decay1 * beta1, decay2


@triton.jit
def _selective_scan_bwd_kernel(
    grad_ptr, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr, saved_ptr, scratch_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    batch, channels, u_channels, length, steps, state, groups, routes,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
    CHUNKS_PER_SAVE: tl.constexpr, BLOCKS_PER_PROGRAM: tl.constexpr,
):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    n = tl.arange(0, BLOCK_N)
    n_ok = n < state
    first = pid * BLOCK_D * BLOCKS_PER_PROGRAM
    group = first // (channels // groups)
    route_row = first // (channels // routes)
    bc_row = ((b * groups + group) * state + n) * length
    partial_row = ((pid * batch + b) * state + n) * length
    # this program's chunk-start states of one saved span: (CHUNKS_PER_SAVE, N, BLOCK_D) float32
    lane = tl.arange(0, BLOCK_D)
    scratch_off = ((pid * batch + b) * CHUNKS_PER_SAVE * BLOCK_N + n[:, None]) * BLOCK_D + lane[None, :]
    n_chunks = tl.cdiv(steps, CHUNK)
    n_saves = tl.cdiv(n_chunks, CHUNKS_PER_SAVE) - 1
    last_step = (tl.arange(0, CHUNK) == CHUNK - 1)[:, None, None]
    for blk in range(0, BLOCKS_PER_PROGRAM):
        d = first + blk * BLOCK_D + tl.arange(0, BLOCK_D)
        A = tl.load(A_ptr + d[None, :] * state + n[:, None], mask=n_ok[:, None], other=0.0)
        A2 = A * 1.4426950408889634
        bias = tl.load(bias_ptr + d) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
        Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
        row = (b * channels + d) * length
        u_row = (b * u_channels + d % u_channels) * length
        carry = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)  # decay * lambda at the first step of the next chunk
        dA = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
        dD = tl.zeros([BLOCK_D], tl.float32)
        dbias = tl.zeros([BLOCK_D], tl.float32)
        for si in range(0, n_saves + 1):
            span = n_saves - si
            saved_off = ((b * channels + d[None, :]) * n_saves + span - 1) * state + n[:, None]
            h = tl.load(saved_ptr + saved_off, mask=n_ok[:, None] & (span > 0), other=0.0)
            span_chunks = tl.minimum(CHUNKS_PER_SAVE, n_chunks - span * CHUNKS_PER_SAVE)
            # replay the span forward, keeping each chunk's start state (saving them all would cost N floats per step)
            for j in range(0, span_chunks):
                tl.store(scratch_ptr + scratch_off + j * BLOCK_N * BLOCK_D, h)
                t = (span * CHUNKS_PER_SAVE + j) * CHUNK + tl.arange(0, CHUNK)
                states, _, _, _, _, _, _, _, _, _, _, _, _ = _chunk_states(
                    u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias,
                    A2, h, HAS_ROUTE, SOFTPLUS, CHUNK)
                h = _step(states, CHUNK - 1, CHUNK)
            tl.debug_barrier()
            for ji in range(0, span_chunks):
                j = span_chunks - 1 - ji
                h0 = tl.load(scratch_ptr + scratch_off + j * BLOCK_N * BLOCK_D)
                t = (span * CHUNKS_PER_SAVE + j) * CHUNK + tl.arange(0, CHUNK)
                states, drive, decay, u, x, dt, Bv, Cv, tok, inside, off, valid, bc_ok = _chunk_states(
                    u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias,
                    A2, h0, HAS_ROUTE, SOFTPLUS, CHUNK)
                g = tl.load(grad_ptr + off, mask=valid, other=0.0).to(tl.float32)
                if HAS_Z:
                    zv = tl.load(z_ptr + off, mask=valid, other=0.0).to(tl.float32)
                    s = _sigmoid(zv)
                    y = tl.sum(states * Cv[:, :, None], axis=1) + Dv[None, :] * u
                    dy = g * zv * s
                    dz = g * y * s * (1.0 + zv * (1.0 - s))
                    tl.store(dz_ptr + off, dz.to(dz_ptr.dtype.element_ty), mask=valid)
                else:
                    dy = g

                # the reverse scan walks the flipped tile forward (no `reverse=True`: triton#4362); flipping an axis
                # held inside the thread only renames registers
                source = dy[:, None, :] * Cv[:, :, None] + tl.where(last_step, carry[None, :, :], 0.0)
                lam, _, _ = tl.associative_scan(
                    (tl.flip(source, 0), tl.full(source.shape, 1.0, tl.float32), tl.flip(decay, 0)), axis=0,
                    combine_fn=_combine_reverse)
                lam = tl.flip(lam, 0)
                carry = _step(decay * lam, 0, CHUNK)

                prev = states - drive  # decay * previous state, without dividing by the decay
                sum_b = tl.sum(lam * Bv[:, :, None], axis=1)
                du = dt * sum_b + Dv[None, :] * dy
                ddt = tl.sum(lam * A[None, :, :] * prev, axis=1) + u * sum_b
                if SOFTPLUS:
                    ddt = tl.where(x <= 20.0, ddt * _sigmoid(x), ddt)
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
        state_off = (b * channels + d[None, :]) * state + n[:, None]
        tl.store(dA_ptr + state_off, dA, mask=n_ok[:, None])
        tl.store(dD_ptr + b * channels + d, dD)
        tl.store(dbias_ptr + b * channels + d, dbias)


def _prepare(u, delta, A, B, C, D, z, delta_bias, route):
    contiguous = [None if t is None else t.contiguous() for t in (u, delta, A, B, C, D, z, delta_bias)]
    route = None if route is None else route.to(torch.int32).contiguous()
    batch, channels, length = delta.shape  # u may have KD / K channels (shared by the routes)
    routes, steps = route.shape if route is not None else (1, length)
    return contiguous, route, batch, channels, length, routes, steps


def _flags(D, z, delta_bias, route, delta_softplus: bool, state: int, cfg: TritonConfig, block_d: int) -> dict:
    return dict(
        HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, HAS_ROUTE=route is not None,
        SOFTPLUS=delta_softplus, BLOCK_D=block_d, BLOCK_N=triton.next_power_of_2(state), CHUNK=cfg.chunk,
        CHUNKS_PER_SAVE=cfg.chunks_per_save, num_warps=cfg.num_warps,
    )


def selective_scan_triton_fwd(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus: bool, out_float32: bool,
                              config: TritonConfig | None = None):
    """Forward; B, C: (batch, G, N, L). Returns (out, last_state, saved states).

    `config` (default `triton_config`'s) is for tuning; backward must get one with the same `save_every`."""
    (u, delta, A, B, C, D, z, delta_bias), route, batch, channels, length, routes, steps = _prepare(
        u, delta, A, B, C, D, z, delta_bias, route)
    groups, state = B.shape[1], A.shape[1]
    cfg = config or triton_config(channels, routes, groups, state)
    out = torch.empty_like(delta, dtype=torch.float32 if out_float32 else u.dtype)
    last_state = u.new_empty(batch, channels, state, dtype=torch.float32)
    saved = u.new_empty(saved_shape(batch, channels, steps, state, cfg.save_every), dtype=torch.float32)
    if batch > 0:
        torch.library.wrap_triton(_selective_scan_fwd_kernel)[(channels // cfg.forward_block_d, batch)](
            u, delta, A, B, C, D, z, delta_bias, route, out, last_state, saved,
            channels, u.shape[1], length, steps, state, groups, routes,
            **_flags(D, z, delta_bias, route, delta_softplus, state, cfg, cfg.forward_block_d),
        )
    return out, last_state, saved


def selective_scan_triton_bwd(grad_out, u, delta, A, B, C, D, z, delta_bias, route, saved, delta_softplus: bool,
                              config: TritonConfig | None = None):
    """Backward; B, C: (batch, G, N, L). Returns du, ddelta, dA, dB, dC, dD, dz, ddelta_bias (None if absent)."""
    (u, delta, A, B, C, D, z, delta_bias), route, batch, channels, length, routes, steps = _prepare(
        u, delta, A, B, C, D, z, delta_bias, route)
    groups, state = B.shape[1], A.shape[1]
    cfg = config or triton_config(channels, routes, groups, state)
    programs = channels // (cfg.block_d * cfg.blocks_per_program)
    shared_u = u.shape[1] != channels
    # a shared u gets one gradient per route, in float32, summed over the routes below in a fixed order
    du = torch.empty_like(delta, dtype=torch.float32) if shared_u else torch.empty_like(u)
    ddelta = torch.empty_like(delta)
    dz = torch.empty_like(z) if z is not None else None
    f32 = dict(dtype=torch.float32, device=u.device)
    dA = torch.empty(batch, channels, state, **f32)
    dD, dbias = torch.empty(batch, channels, **f32), torch.empty(batch, channels, **f32)
    dB_part = torch.empty(programs, batch, state, length, **f32)
    dC_part = torch.empty(programs, batch, state, length, **f32)
    scratch = torch.empty(programs, batch, cfg.chunks_per_save, triton.next_power_of_2(state), cfg.block_d, **f32)
    if batch > 0:
        torch.library.wrap_triton(_selective_scan_bwd_kernel)[(programs, batch)](
            grad_out.contiguous(), u, delta, A, B, C, D, z, delta_bias, route, saved.contiguous(), scratch,
            du, ddelta, dz, dA, dB_part, dC_part, dD, dbias,
            batch, channels, u.shape[1], length, steps, state, groups, routes,
            BLOCKS_PER_PROGRAM=cfg.blocks_per_program,
            **_flags(D, z, delta_bias, route, delta_softplus, state, cfg, cfg.block_d),
        )
    per_group = programs // groups
    dB = dB_part.view(groups, per_group, batch, state, length).sum(1).transpose(0, 1).to(B.dtype)
    dC = dC_part.view(groups, per_group, batch, state, length).sum(1).transpose(0, 1).to(C.dtype)
    if shared_u:
        du = du.view(batch, routes, u.shape[1], length).sum(1).to(u.dtype)
    return (du, ddelta, dA.sum(0), dB.contiguous(), dC.contiguous(), dD.sum(0) if D is not None else None, dz,
            dbias.sum(0) if delta_bias is not None else None)

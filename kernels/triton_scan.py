"""The `triton` backend: chunked forward and backward kernels (kernel.md sections 2, 3, 5 and 7).

Each program owns BLOCK_D consecutive channels of one batch row; all of them share one route row and one B/C group
(BLOCK_D divides KD / lcm(K, G)), so B, C and the route are loaded once per program. Time runs in chunks of CHUNK
steps: a chunk's decays exp2(delta * A * log2 e) and inputs delta * u * B form a (BLOCK_D, N, CHUNK) tile that
`tl.associative_scan` combines, starting from the state carried over from the previous chunk.

* Route addressing: the token read at step t is route[k, t] (-1: padding, read as zeros before the bias), y and the
  gradients of u/delta/z are written back at token positions; no permuted copies are made. A u shared by the K
  routes (KD/K channels) is read at channel d % (KD/K); its gradient is written per route (KD channels, float32)
  and summed over the routes by the wrapper.
* Steps past L' inside the last tile are the scan identity (delta = 0 after bias/softplus, mamba#368).
* Forward saves the state at every chunk start but the first: (batch, KD, n_chunks - 1, N) float32, so backward
  memory is O(batch·KD·N·L/CHUNK). Backward walks chunks in reverse, recomputes the chunk's states from its saved
  start, and runs the reverse scan lambda[t] = dy[t] C[t] + decay[t+1] lambda[t+1] as a forward scan of flipped
  tiles (no `reverse=True`: triton#4362). decay[t+1] comes from delta at step t+1 (one extra exp per element).
* Deterministic: dB/dC are summed over a program's channels inside the program and accumulated over its
  BLOCKS_PER_PROGRAM channel blocks in a fixed order into per-program partials (n_programs, batch, N, L), which the
  wrapper sums over the programs of each group in a fixed order. No atomics.
* No autotuning: CHUNK fixes the saved-state layout and BLOCK_D the reduction order, so both are fixed functions of
  the shapes (`triton_config`); under TRITON_INTERPRET=1 tiles are tiny because the interpreter runs every element
  of `tl.associative_scan` through Python.

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
    """Tile sizes of one call: channels per backward block, blocks per backward program, steps per chunk, warps,
    and channels per forward program (the forward's tile may differ: only the chunk fixes the saved layout)."""

    block_d: int
    blocks_per_program: int
    chunk: int
    num_warps: int
    forward_block_d: int


def chunk_size(state: int) -> int:
    """Steps per chunk; keeps a (BLOCK_D, N, CHUNK) tile at about 4K elements on a GPU."""
    if triton_interpret():
        return 8
    return max(16, min(128, 512 // triton.next_power_of_2(state)))


def _largest_power_of_two_dividing(n: int, cap: int) -> int:
    p = 1
    while p * 2 <= cap and n % (p * 2) == 0:
        p *= 2
    return p


def triton_config(channels: int, routes: int, groups: int, state: int) -> TritonConfig:
    per_segment = channels // math.lcm(routes, groups)
    chunk = chunk_size(state)
    if triton_interpret():
        block_d = _largest_power_of_two_dividing(per_segment, 4)
        return TritonConfig(block_d, _largest_power_of_two_dividing(per_segment // block_d, 2), chunk, 1, block_d)
    # (BLOCK_D, N, CHUNK) tiles of 4K elements backward, 2K forward. Timed on an H100 by benchmarks/tune_triton.py
    # (benchmarks/triton_tiles.md): at N = 16, 4 channels per forward program instead of 8 run Vim-S 16 % and
    # LocalVMamba-T stage 1 8 % faster, while backward the 8 of 4K are the better choice for the long sequences.
    tile = triton.next_power_of_2(state) * chunk
    block_d = _largest_power_of_two_dividing(per_segment, min(16, max(1, 4096 // tile)))
    forward_block_d = _largest_power_of_two_dividing(per_segment, min(16, max(1, 2048 // tile)))
    blocks = _largest_power_of_two_dividing(per_segment // block_d, 8)
    return TritonConfig(block_d, blocks, chunk, 4, forward_block_d)


def saved_shape(batch: int, channels: int, steps: int, state: int, chunk: int | None = None) -> tuple[int, ...]:
    """The saved chunk states: (batch, KD, chunks - 1, N) for chunks of `chunk` steps (default `chunk_size`)."""
    return (batch, channels, -(-steps // (chunk or chunk_size(state))) - 1, state)


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
def _column(tile, index, CHUNK: tl.constexpr):
    """tile[:, :, index] of a (D, N, CHUNK) tile."""
    pick = (tl.arange(0, CHUNK) == index)[None, None, :]
    return tl.sum(tl.where(pick, tile, 0.0), axis=2)


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
                  A2, h0, HAS_ROUTE: tl.constexpr, SOFTPLUS: tl.constexpr):
    """Load one chunk along the route and scan it from state h0: the states of every step (D, N, CHUNK), the
    inputs delta * u * B that drove them, and the loaded tiles (u, pre-softplus x, delta, B, C) with their offsets
    in the (batch, KD, L) tensors (u's rows start at u_row)."""
    tok, inside = _load_steps(route_ptr, route_row, t, steps, HAS_ROUTE)
    valid = (tok >= 0)[None, :]
    off = row[:, None] + tok[None, :]
    u = tl.load(u_ptr + u_row[:, None] + tok[None, :], mask=valid, other=0.0).to(tl.float32)
    x = tl.load(delta_ptr + off, mask=valid, other=0.0).to(tl.float32) + bias[:, None]
    dt = _softplus(x) if SOFTPLUS else x
    dt = tl.where(inside[None, :], dt, 0.0)  # steps past the end are the identity (mamba#368)
    bc_off = bc_row[:, None] + tok[None, :]
    bc_ok = n_ok[:, None] & (tok >= 0)[None, :]
    Bv = tl.load(B_ptr + bc_off, mask=bc_ok, other=0.0).to(tl.float32)
    Cv = tl.load(C_ptr + bc_off, mask=bc_ok, other=0.0).to(tl.float32)
    decay = tl.exp2(dt[:, None, :] * A2[:, :, None])
    drive = (dt * u)[:, None, :] * Bv[None, :, :]
    decay_run, states = tl.associative_scan((decay, drive), axis=2, combine_fn=_combine)
    states = decay_run * h0[:, :, None] + states
    return states, drive, u, x, dt, Bv, Cv, tok, inside, off, valid, bc_ok


@triton.jit
def _selective_scan_fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr,
    out_ptr, last_ptr, saved_ptr,
    channels, u_channels, length, steps, state, groups, routes,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
):
    pid_d = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    d0 = pid_d * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    n_ok = n < state
    group = d0 // (channels // groups)
    route_row = d0 // (channels // routes)
    A2 = tl.load(A_ptr + d[:, None] * state + n[None, :], mask=n_ok[None, :], other=0.0) * 1.4426950408889634
    bias = tl.load(bias_ptr + d) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
    Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
    row = (b * channels + d) * length
    u_row = (b * u_channels + d % u_channels) * length
    bc_row = ((b * groups + group) * state + n) * length
    n_chunks = tl.cdiv(steps, CHUNK)
    h = tl.zeros([BLOCK_D, BLOCK_N], tl.float32)
    for c in range(0, n_chunks):
        saved_off = ((b * channels + d[:, None]) * (n_chunks - 1) + c - 1) * state + n[None, :]
        tl.store(saved_ptr + saved_off, h, mask=n_ok[None, :] & (c > 0))
        t = c * CHUNK + tl.arange(0, CHUNK)
        states, _, u, _, _, _, Cv, _, _, off, valid, _ = _chunk_states(
            u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias, A2, h,
            HAS_ROUTE, SOFTPLUS)
        y = tl.sum(states * Cv[None, :, :], axis=1) + Dv[:, None] * u
        h = _column(states, CHUNK - 1, CHUNK)
        if HAS_Z:
            zv = tl.load(z_ptr + off, mask=valid, other=0.0).to(tl.float32)
            y = y * zv * _sigmoid(zv)
        tl.store(out_ptr + off, y.to(out_ptr.dtype.element_ty), mask=valid)
    tl.store(last_ptr + (b * channels + d[:, None]) * state + n[None, :], h, mask=n_ok[None, :])


@triton.jit
def _selective_scan_bwd_kernel(
    grad_ptr, u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, route_ptr, saved_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr,
    batch, channels, u_channels, length, steps, state, groups, routes,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_ROUTE: tl.constexpr,
    SOFTPLUS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, CHUNK: tl.constexpr,
    BLOCKS_PER_PROGRAM: tl.constexpr,
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
    n_chunks = tl.cdiv(steps, CHUNK)
    for blk in range(0, BLOCKS_PER_PROGRAM):
        d = first + blk * BLOCK_D + tl.arange(0, BLOCK_D)
        A = tl.load(A_ptr + d[:, None] * state + n[None, :], mask=n_ok[None, :], other=0.0)
        A2 = A * 1.4426950408889634
        bias = tl.load(bias_ptr + d) if HAS_BIAS else tl.zeros([BLOCK_D], tl.float32)
        Dv = tl.load(D_ptr + d) if HAS_D else tl.zeros([BLOCK_D], tl.float32)
        row = (b * channels + d) * length
        u_row = (b * u_channels + d % u_channels) * length
        carry = tl.zeros([BLOCK_D, BLOCK_N], tl.float32)  # lambda at the first step of the next chunk
        dA = tl.zeros([BLOCK_D, BLOCK_N], tl.float32)
        dD = tl.zeros([BLOCK_D], tl.float32)
        dbias = tl.zeros([BLOCK_D], tl.float32)
        for ci in range(0, n_chunks):
            c = n_chunks - 1 - ci
            saved_off = ((b * channels + d[:, None]) * (n_chunks - 1) + c - 1) * state + n[None, :]
            h0 = tl.load(saved_ptr + saved_off, mask=n_ok[None, :] & (c > 0), other=0.0)
            t = c * CHUNK + tl.arange(0, CHUNK)
            states, drive, u, x, dt, Bv, Cv, tok, inside, off, valid, bc_ok = _chunk_states(
                u_ptr, delta_ptr, B_ptr, C_ptr, route_ptr, route_row, t, steps, row, u_row, bc_row, n_ok, bias, A2,
                h0, HAS_ROUTE, SOFTPLUS)
            tok_next, inside_next = _load_steps(route_ptr, route_row, t + 1, steps, HAS_ROUTE)
            x_next = tl.load(delta_ptr + row[:, None] + tok_next[None, :], mask=(tok_next >= 0)[None, :],
                             other=0.0).to(tl.float32) + bias[:, None]
            dt_next = _softplus(x_next) if SOFTPLUS else x_next
            g = tl.load(grad_ptr + off, mask=valid, other=0.0).to(tl.float32)
            if HAS_Z:
                zv = tl.load(z_ptr + off, mask=valid, other=0.0).to(tl.float32)
                s = _sigmoid(zv)
                y = tl.sum(states * Cv[None, :, :], axis=1) + Dv[:, None] * u
                dy = g * zv * s
                dz = g * y * s * (1.0 + zv * (1.0 - s))
                tl.store(dz_ptr + off, dz.to(dz_ptr.dtype.element_ty), mask=valid)
            else:
                dy = g

            # reverse scan as a forward scan of flipped tiles; the last step adds the carry from the next chunk
            decay_next = tl.where(inside_next[None, None, :], tl.exp2(dt_next[:, None, :] * A2[:, :, None]), 0.0)
            last = (tl.arange(0, CHUNK) == CHUNK - 1)[None, None, :]
            source = dy[:, None, :] * Cv[None, :, :] + tl.where(last, decay_next * carry[:, :, None], 0.0)
            _, lam = tl.associative_scan((tl.flip(decay_next, 2), tl.flip(source, 2)), axis=2, combine_fn=_combine)
            lam = tl.flip(lam, 2)
            carry = _column(lam, 0, CHUNK)

            prev = states - drive  # decay * previous state, without dividing by the decay
            sum_b = tl.sum(lam * Bv[None, :, :], axis=1)
            du = dt * sum_b + Dv[:, None] * dy
            ddt = tl.sum(lam * A[:, :, None] * prev, axis=1) + u * sum_b
            if SOFTPLUS:
                ddt = tl.where(x <= 20.0, ddt * _sigmoid(x), ddt)
            ddt = tl.where(inside[None, :], ddt, 0.0)
            dbias += tl.sum(ddt, axis=1)
            dD += tl.sum(dy * u, axis=1)
            dA += tl.sum(lam * dt[:, None, :] * prev, axis=2)
            tl.store(du_ptr + off, du.to(du_ptr.dtype.element_ty), mask=valid)
            tl.store(ddelta_ptr + off, ddt.to(ddelta_ptr.dtype.element_ty), mask=valid)

            part_off = partial_row[:, None] + tok[None, :]
            dB_blk = tl.sum(lam * (dt * u)[:, None, :], axis=0)
            dC_blk = tl.sum(dy[:, None, :] * states, axis=0)
            dB_prev = tl.load(dB_ptr + part_off, mask=bc_ok & (blk > 0), other=0.0)
            dC_prev = tl.load(dC_ptr + part_off, mask=bc_ok & (blk > 0), other=0.0)
            tl.store(dB_ptr + part_off, dB_prev + dB_blk, mask=bc_ok)
            tl.store(dC_ptr + part_off, dC_prev + dC_blk, mask=bc_ok)
        tl.store(dA_ptr + (b * channels + d[:, None]) * state + n[None, :], dA, mask=n_ok[None, :])
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
        num_warps=cfg.num_warps,
    )


def selective_scan_triton_fwd(u, delta, A, B, C, D, z, delta_bias, route, delta_softplus: bool, out_float32: bool,
                              config: TritonConfig | None = None):
    """Forward; B, C: (batch, G, N, L). Returns (out, last_state, saved chunk states).

    `config` (default `triton_config`'s) is for tuning; backward must get one with the same chunk."""
    (u, delta, A, B, C, D, z, delta_bias), route, batch, channels, length, routes, steps = _prepare(
        u, delta, A, B, C, D, z, delta_bias, route)
    groups, state = B.shape[1], A.shape[1]
    cfg = config or triton_config(channels, routes, groups, state)
    out = torch.empty_like(delta, dtype=torch.float32 if out_float32 else u.dtype)
    last_state = u.new_empty(batch, channels, state, dtype=torch.float32)
    saved = u.new_empty(saved_shape(batch, channels, steps, state, cfg.chunk), dtype=torch.float32)
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
    if batch > 0:
        torch.library.wrap_triton(_selective_scan_bwd_kernel)[(programs, batch)](
            grad_out.contiguous(), u, delta, A, B, C, D, z, delta_bias, route, saved.contiguous(),
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

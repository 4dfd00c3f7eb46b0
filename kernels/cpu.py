"""The `cpu` backend: a compiled C loop (kernels/csrc/selective_scan_cpu.c), built on first use, called via ctypes.

Why a small C file and not numba or PyTorch ops:
  * The work is 9·batch·L·KD·N flops and batch·L·KD·N exponentials (19.4 M per Vim-S call at batch 8), done
    step by step. PyTorch ops per step cost ~10 µs of dispatch each (273 ms per call for the vectorised sequential
    loop); a compiled loop does it at the speed of the exponentials.
  * The exponential decides the speed. numba/LLVM only vectorises `exp` with Intel's SVML runtime (x86 only, an
    extra binary dependency); with libm's scalar expf the loop is ~4x slower. The C file carries its own
    branch-free `vexp`, which GCC/Clang vectorise across 16 channels with plain -O3 -march=native.
  * A plain C file compiles in about a second with the system compiler and needs no Python headers, no torch
    headers and no new dependency (a torch C++ extension takes a minute to build against the torch headers).
    The library is cached per source, compiler and CPU under `$VSSM_CACHE_DIR` (default ~/.cache/vssm).
  * Disjoint item ranges run in parallel on torch's own OpenMP threads (the library is built with -fopenmp and so
    joins the libgomp torch has loaded), else, where the compiler has no OpenMP, on a small pool of Python threads
    (ctypes releases the GIL). Results do not depend on the thread count.

Memory stays bounded at any L: the forward keeps only chunk-start states (batch, KD, ceil(L'/T) - 1, N) for the
backward (none when L' <= T), the backward recomputes states inside a chunk.
Without a C compiler this backend reports itself unavailable and the automatic choice falls back to `reference`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .reference import fold_channels
from .scan_tensors import ScanShape, ScanTensors

SOURCE = Path(__file__).parent / "csrc" / "selective_scan_cpu.c"
LANES = 16  # channels per block, must match LANES in the C source
BLOCKS_PER_PART = 8  # dB/dC partials per 128 channels: 1/8 of the (batch, KD, L) input size at N = 16


class _Args(ctypes.Structure):
    _fields_ = [
        *[(name, ctypes.c_void_p) for name in (
            "u", "delta", "A", "B", "C", "D", "z", "delta_bias", "route", "out", "last_state", "chunk_states",
            "grad_out", "du", "ddelta", "dz", "dA", "dB", "dC", "dD", "ddelta_bias",
        )],
        *[(name, ctypes.c_int64) for name in (
            "batch", "channels", "u_channels", "length", "steps", "state", "groups", "routes", "segments", "chunk",
            "blocks_per_part",
        )],
        ("delta_softplus", ctypes.c_int32),
    ]


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _flags(openmp: bool) -> list[str]:
    machine = platform.machine().lower()
    arch = ["-march=native"] if machine in ("x86_64", "amd64") else ["-mcpu=native"]
    # No -ffast-math: it would reassociate the Cody-Waite reduction in vexp and, linked into a shared library,
    # may switch the whole process to flush-to-zero.
    openmp_flags = ["-fopenmp"] if openmp else []
    return ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", *arch, *openmp_flags]


def _cpu_identity() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return "".join(line for line in lines if line.startswith(("model name", "flags")))[:4096]


def _cache_dir() -> Path:
    root = os.environ.get("VSSM_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vssm"
    return Path(root) / "selective_scan_cpu"


@functools.cache
def _library() -> ctypes.CDLL | str:
    """The compiled library (with OpenMP where the compiler has it and the library loads), or why none was built."""
    cc = _compiler()
    if cc is None:
        return "backend 'cpu' needs a C compiler (set CC); none found"
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"backend 'cpu': C compiler {cc!r} does not run: {exc}"
    failure = ""
    for openmp in (True, False):
        built = _build(cc, version, openmp)
        if isinstance(built, str):
            failure = built
            continue
        try:
            lib = ctypes.CDLL(str(built))
        except OSError as exc:  # e.g. an OpenMP runtime older than the compiler's
            failure = f"backend 'cpu': cannot load {built}: {exc}"
            continue
        # (args, begin, end) for a range; (args, items, threads) for the OpenMP entries
        parallel = ["scan_forward_parallel", "scan_backward_parallel"] if openmp else []
        for name in ["scan_forward", "scan_backward", *parallel]:
            getattr(lib, name).argtypes = [ctypes.POINTER(_Args), ctypes.c_int64, ctypes.c_int64]
            getattr(lib, name).restype = ctypes.c_int
        return lib
    return failure


def _build(cc: str, version: str, openmp: bool) -> Path | str:
    """The library file for these flags (built once, cached), or why it could not be built."""
    flags = _flags(openmp)
    key = hashlib.sha256("\0".join([SOURCE.read_text(), *flags, version, _cpu_identity()]).encode()).hexdigest()
    target = _cache_dir() / f"selective_scan_cpu_{key[:16]}.so"
    if target.exists():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            result = subprocess.run([cc, *flags, str(SOURCE), "-o", str(built)], capture_output=True, text=True)
            if result.returncode != 0:
                return f"backend 'cpu': compiling {SOURCE.name} with {cc} failed:\n{result.stderr[-2000:]}"
            os.replace(built, target)  # atomic: parallel first uses never load a half-written file
    except OSError as exc:
        return f"backend 'cpu': cannot build in {target.parent} (set VSSM_CACHE_DIR): {exc}"
    return target


def uses_openmp() -> bool:
    """Whether the ranges run on torch's OpenMP threads (else on a pool of Python threads)."""
    lib = _library()
    return not isinstance(lib, str) and hasattr(lib, "scan_forward_parallel")


def _loaded() -> ctypes.CDLL:
    lib = _library()
    if isinstance(lib, str):
        raise RuntimeError(lib)
    return lib


def unavailable_reason() -> str | None:
    """None when the compiled library is ready, else why the `cpu` backend cannot run."""
    lib = _library()
    return lib if isinstance(lib, str) else None


def refusal(device: torch.device) -> str | None:
    """None when the `cpu` backend can run tensors on `device` (building the library on first use), else why not."""
    if device.type != "cpu":
        return f"backend 'cpu' needs CPU tensors, got device {device}"
    return unavailable_reason()


_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _run(name: str, args: _Args, items: int, work_per_item: int) -> None:
    """Run C function `name` over [0, items) split into contiguous ranges on torch.get_num_threads() threads."""
    global _pool
    lib = _loaded()
    fn = getattr(lib, name)
    threads = max(1, min(torch.get_num_threads(), items, work_per_item * items // 200_000 or 1))
    bounds = [items * i // threads for i in range(threads + 1)]
    if threads == 1:
        codes = [fn(ctypes.byref(args), 0, items)]
    elif uses_openmp():
        codes = [getattr(lib, f"{name}_parallel")(ctypes.byref(args), items, threads)]
    else:
        with _pool_lock:
            if _pool is None or _pool._max_workers < threads:
                _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vssm-scan")
            pool = _pool
        futures = [pool.submit(fn, ctypes.byref(args), bounds[i], bounds[i + 1]) for i in range(threads)]
        codes = [f.result() for f in futures]
    if any(codes):
        raise MemoryError("selective_scan (cpu): out of memory for per-thread chunk buffers")


def chunk_size(state: int) -> int:
    """Steps per chunk: the backward keeps 2·T·N·16 floats per thread, about 256 KiB, in cache."""
    return max(16, min(256, 2048 // state))


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.to(torch.float32).contiguous()


def _args(scan: ScanTensors, shape: ScanShape, delta_softplus: bool) -> tuple[_Args, list[torch.Tensor | None]]:
    keep = [_f32(t) for t in scan[:-1]]
    keep.append(None if scan.route is None else scan.route.to(torch.int64).contiguous())
    args = _Args(
        *[_ptr(t) for t in keep],
        *[None] * 12,
        shape.batch, shape.channels, shape.u_channels, shape.length, shape.steps, shape.state, shape.groups,
        shape.routes, math.lcm(shape.routes, shape.groups), chunk_size(shape.state), BLOCKS_PER_PART,
        int(delta_softplus),
    )
    return args, keep


def _items_per_row(args: _Args, per_item_blocks: int) -> int:
    """Work items per batch row: segments x ceil(blocks per segment / blocks per item)."""
    blocks = -(-(args.channels // args.segments) // LANES)
    return args.segments * -(-blocks // per_item_blocks)


def saved_shape(shape: ScanShape) -> tuple[int, ...]:
    """The chunk-start states the forward keeps for the backward: (batch, KD, ceil(L' / T) - 1, N)."""
    return (shape.batch, shape.channels, -(-shape.steps // chunk_size(shape.state)) - 1, shape.state)


def selective_scan_cpu_fwd(scan: ScanTensors, delta_softplus: bool, out_float32: bool,
                           fold: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward (`ScanTensors` order and shapes). Returns y (batch, KD/fold, L), last_state (batch, KD, N) float32 and
    the chunk-start states (`saved_shape`) float32 for `selective_scan_cpu_bwd`. The C loop writes every channel's
    float32 output; a fold sums them here, before the one rounding to u's dtype."""
    shape = scan.sizes()
    args, keep = _args(scan, shape, delta_softplus)
    out = torch.empty(shape.batch, shape.channels, shape.length, dtype=torch.float32)
    last_state = torch.empty(shape.batch, shape.channels, shape.state, dtype=torch.float32)
    chunk_states = torch.empty(saved_shape(shape), dtype=torch.float32)
    args.out, args.last_state, args.chunk_states = out.data_ptr(), last_state.data_ptr(), chunk_states.data_ptr()
    _run("scan_forward", args, shape.batch * _items_per_row(args, BLOCKS_PER_PART),
         BLOCKS_PER_PART * LANES * shape.steps * shape.state)
    del keep
    return fold_channels(out, fold).to(torch.float32 if out_float32 else scan.u.dtype), last_state, chunk_states


def selective_scan_cpu_bwd(grad_out: torch.Tensor, scan: ScanTensors, chunk_states: torch.Tensor,
                           delta_softplus: bool, fold: int = 1) -> tuple[torch.Tensor | None, ...]:
    """Backward. Returns du, ddelta, dA, dB, dC, dD, dz, ddelta_bias (None if absent); du has u's shape (for a
    shared u, the K routes' contributions summed in a fixed order). With a fold, grad_out (batch, KD/fold, L) is
    repeated to every channel that folded into it."""
    shape = scan.sizes()
    args, keep = _args(scan, shape, delta_softplus)
    u, delta, _, B, C, D, z, delta_bias, _ = scan
    batch, channels, length, state, groups = shape.batch, shape.channels, shape.length, shape.state, shape.groups
    parts = _items_per_row(args, BLOCKS_PER_PART)
    f32 = dict(dtype=torch.float32)
    g = grad_out.to(torch.float32).repeat(1, fold, 1) if fold > 1 else grad_out.to(torch.float32).contiguous()
    du, ddelta = torch.empty(batch, channels, length, **f32), torch.empty(batch, channels, length, **f32)
    dz = torch.empty(batch, channels, length, **f32) if z is not None else None
    dA, dD, dbias = (torch.empty(batch, channels, state, **f32), torch.empty(batch, channels, **f32),
                     torch.empty(batch, channels, **f32))
    dB, dC = torch.zeros(batch, parts, state, length, **f32), torch.zeros(batch, parts, state, length, **f32)
    chunk_states = chunk_states.contiguous()
    args.chunk_states, args.grad_out = chunk_states.data_ptr(), g.data_ptr()
    args.du, args.ddelta, args.dz = du.data_ptr(), ddelta.data_ptr(), _ptr(dz)
    args.dA, args.dB, args.dC, args.dD, args.ddelta_bias = (t.data_ptr() for t in (dA, dB, dC, dD, dbias))
    _run("scan_backward", args, batch * parts, BLOCKS_PER_PART * LANES * shape.steps * state)
    del keep
    dB = dB.view(batch, groups, parts // groups, state, length).sum(2).to(B.dtype)
    dC = dC.view(batch, groups, parts // groups, state, length).sum(2).to(C.dtype)
    if shape.shared_u:
        du = du.view(batch, channels // shape.u_channels, shape.u_channels, length).sum(1)
    return (
        du.to(u.dtype),
        ddelta.to(delta.dtype),
        dA.sum(0),
        dB,
        dC,
        dD.sum(0) if D is not None else None,
        dz.to(z.dtype) if z is not None else None,
        dbias.sum(0) if delta_bias is not None else None,
    )

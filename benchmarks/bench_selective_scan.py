"""Benchmark of `kernels.selective_scan` over the zoo's real shapes: every backend, the vectorised sequential loop
baseline, and mamba_ssm's CUDA `selective_scan_fn` when it is importable.

    python benchmarks/bench_selective_scan.py --machine "2-core CPU container, no GPU"            # CPU
    python benchmarks/bench_selective_scan.py --device cuda --machine "1x H100 SXM"                 # GPU-ready

Reports forward and forward+backward ms, achieved GB/s of the fused forward, and % of the binding floor from the
roofline of `Roofline` below (bytes, flops and exponentials against the device's peaks: the assumed `H100` peaks on
an H100, otherwise peaks measured here by torch copy / exp / matmul). For shapes with K routes it also
times the forward with u shared by the routes ((batch, KD/K, L), as SS2D passes it) instead of (batch, KD, L).
On CPU it also reports the peak memory of the cpu backend and of the loop at the Vim-S target shape, as extra bytes
over the inputs' size.
Targets (issue 3): cpu >= 10x the loop at Vim-S (batch 8, KD 768, L 197, N 16, fp32), forward and forward+backward,
peak memory within 2x of the inputs; on an H100, triton forward+backward >= mamba_ssm's and >= 70 % of the binding
floor for L >= 784. Writes selective_scan_<device>.csv and .md under --output (default runs/selective_scan/); only
--update-repo writes the committed benchmarks/ files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from vssm import kernels
from vssm.engine import resolve_device
from vssm.kernels.backends import Backend, supports
from vssm.kernels.testing import random_scan_inputs

COMMITTED = Path(__file__).resolve().parent
OUTPUT = Path("runs") / "selective_scan"
# An H100 SXM's peaks, assumed a little below NVIDIA's datasheet (3.35 TB/s HBM3, 67 TFLOP/s fp32); exponentials: the
# CUDA C++ Programming Guide's 16 per clock per SM (compute capability 9.0) on 132 SMs at about 1.78 GHz.
H100 = dict(bandwidth=3.0e12, fp32=60e12, exp=3.75e12)
CPU_TARGET = "vim_s_cpu_target"
LOOP_MAX_BYTES = 2e9  # the loop materialises (batch, KD, L, N) twice; skip it beyond this
REFERENCE_MAX_LENGTH = 1024  # the reference's backward is a Python loop over L through torch.func.vjp


@dataclass(frozen=True)
class Shape:
    """One call of the zoo. `grid` (H, W) gives K cross/bidirectional routes over H*W tokens (K = routes)."""

    name: str
    batch: int
    channels: int
    grid: tuple[int, int]
    state: int
    groups: int
    routes: int = 1
    has_z: bool = True
    out_float32: bool = False
    gpu_dtype: torch.dtype = torch.bfloat16

    @property
    def length(self) -> int:
        return self.grid[0] * self.grid[1]


ZOO = [
    Shape(CPU_TARGET, 8, 768, (1, 197), 16, 1, gpu_dtype=torch.float32),
    Shape("vim_s (2 routes, one call)", 64, 1536, (1, 197), 16, 2, routes=2),
    *[Shape(f"vmamba_t stage {i + 1} (N 1, K 4)", 64, 4 * dim, (side, side), 1, 4, routes=4, has_z=False,
            out_float32=True) for i, (dim, side) in enumerate([(96, 56), (192, 28), (384, 14), (768, 7)])],
    Shape("mambavision_t stage 3 (N 8)", 64, 160, (14, 14), 8, 1, has_z=False),
    Shape("mambavision_t stage 4 (N 8)", 64, 320, (7, 7), 8, 1, has_z=False),
    Shape("localvmamba_t stage 1 (N 16, K 4)", 64, 768, (56, 56), 16, 4, routes=4, has_z=False, out_float32=True),
    Shape("umamba 2d L 16384 (N 16)", 2, 128, (128, 128), 16, 1, gpu_dtype=torch.float32),
]


def cross_routes(shape: Shape, device: torch.device) -> torch.Tensor | None:
    """Raster (+ flip) for K = 1/2; raster, column-major and both flipped for K = 4 (VMamba's cross scan)."""
    if shape.routes == 1:
        return None
    height, width = shape.grid
    raster = torch.arange(shape.length, device=device)
    if shape.routes == 2:
        return torch.stack([raster, raster.flip(0)])
    columns = raster.view(height, width).t().flatten()
    return torch.stack([raster, columns, raster.flip(0), columns.flip(0)])


def sequential_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, route=None,
                    out_float32=False, return_last_state=False):
    """The baseline: exp(delta A) and delta B u precomputed for all L, then one multiply-add and one contraction
    with C per step (Python loop over L; (batch, KD, L, N) tensors)."""
    if route is not None:
        raise ValueError("the loop baseline has no route; it runs on unrouted shapes")
    batch, channels, _ = u.shape
    groups = B.shape[1]
    dt = delta.float() + (delta_bias[:, None] if delta_bias is not None else 0)
    dt = F.softplus(dt) if delta_softplus else dt
    Bx = B.float().repeat_interleave(channels // groups, dim=1)  # (batch, KD, N, L)
    Cx = C.float().repeat_interleave(channels // groups, dim=1)
    decay = torch.exp(dt.unsqueeze(-1) * A[:, None, :])  # (batch, KD, L, N)
    drive = (dt * u.float()).unsqueeze(-1) * Bx.transpose(2, 3)
    h = u.new_zeros(batch, channels, A.shape[1], dtype=torch.float32)
    ys = []
    for a_t, b_t, c_t in zip(decay.unbind(2), drive.unbind(2), Cx.unbind(3), strict=True):
        h = a_t * h + b_t
        ys.append((h * c_t).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[:, None] * u.float()
    if z is not None:
        y = y * F.silu(z.float())
    y = y if out_float32 else y.to(u.dtype)
    return (y, h) if return_last_state else y


def mamba_ssm_fn() -> Callable | None:
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        return None
    return selective_scan_fn


@dataclass
class Roofline:
    bytes_fwd: float
    flops_fwd: float
    exps_fwd: float
    bytes_bwd: float
    flops_bwd: float
    exps_bwd: float

    @classmethod
    def of(cls, s: Shape, batch: int, dtype: torch.dtype) -> Roofline:
        """Bytes moved, flops and exponentials of one forward and of a minimal backward (D = KD, L' = L: cross routes
        have no padding): the forward's 9·B·L·D·N flops are albertgu's count (state-spaces/mamba#110); exponentials
        are exp(Δ·A) per state element, the softplus of Δ and the gate's sigmoid."""
        size = torch.finfo(dtype).bits // 8
        out = 4 if s.out_float32 else size
        bl, d, gn = batch * s.length, s.channels, s.groups * s.state
        return cls(
            bytes_fwd=bl * (d * (3 * size + out - (0 if s.has_z else size)) + gn * 2 * size) + d * (4 * s.state + 8),
            flops_fwd=9 * bl * d * s.state + 6 * bl * d,
            exps_fwd=bl * d * s.state + 2 * bl * d + (bl * d if s.has_z else 0),
            bytes_bwd=bl * (d * (5 * size + (3 * size if s.has_z else 0)) + gn * (2 * size + 8)),
            flops_bwd=25 * bl * d * s.state,
            exps_bwd=bl * d * s.state,
        )

    def floor_s(self, peaks: dict[str, float], backward: bool) -> float:
        fwd = max(self.bytes_fwd / peaks["bandwidth"], self.flops_fwd / peaks["fp32"], self.exps_fwd / peaks["exp"])
        if not backward:
            return fwd
        return fwd + max(self.bytes_bwd / peaks["bandwidth"], self.flops_bwd / peaks["fp32"],
                         self.exps_bwd / peaks["exp"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn: Callable[[], object], device: torch.device, repeats: int, budget_s: float = 20.0) -> float:
    """Median wall time of `fn` after one warm-up call; fewer repeats when one call is slow."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - start
    repeats = max(1, min(repeats, int(budget_s / max(first, 1e-6))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def measured_peaks(device: torch.device) -> dict[str, float] | None:
    """Device peaks for the floor: `H100` on an H100; on another GPU copy bandwidth, torch.exp rate and matmul
    rate measured here; none on CPU, where torch.exp is slower than the cpu backend's own exp2 and a shared VM's
    peaks are unknown (the floor columns stay empty)."""
    if device.type == "cpu":
        return None
    if "H100" in torch.cuda.get_device_name(device):
        return dict(H100)
    n = 1 << 25
    x = torch.randn(n, device=device)
    y = torch.empty_like(x)
    copy = time_ms(lambda: y.copy_(x), device, 10) / 1e3
    exp = time_ms(lambda: torch.exp(x, out=y), device, 10) / 1e3
    m = torch.randn(2048, 2048, device=device)
    mm = time_ms(lambda: m @ m, device, 5) / 1e3
    return dict(bandwidth=8 * n / copy, exp=n / exp, fp32=2 * 2048**3 / mm)


@dataclass
class Row:
    shape: str
    backend: str
    dtype: str
    batch: int
    channels: int
    length: int
    state: int
    groups: int
    routes: int
    fwd_ms: float | None = None
    fwd_shared_u_ms: float | None = None
    fwd_bwd_ms: float | None = None
    fwd_bwd_route_order_ms: float | None = None
    fwd_gb_s: float | None = None
    fwd_floor_pct: float | None = None
    fwd_bwd_floor_pct: float | None = None
    speedup_fwd: float | None = None
    speedup_fwd_bwd: float | None = None
    peak_extra_over_inputs: float | None = None
    note: str = field(default="")


def run_case(s: Shape, backend: str, device: torch.device, dtype: torch.dtype, batch: int, repeats: int,
             peaks: dict[str, float] | None) -> Row:
    row = Row(s.name, backend, str(dtype).replace("torch.", ""), batch, s.channels, s.length, s.state, s.groups,
              s.routes)
    route = cross_routes(s, device)
    inputs = random_scan_inputs(batch, s.channels, s.length, s.state, s.groups, dtype=dtype, has_z=s.has_z,
                                device=device)
    args = (inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias)
    grad = torch.randn(batch, s.channels, s.length, device=device,
                       dtype=torch.float32 if s.out_float32 else dtype)
    if backend == "loop":
        if route is not None or 2 * batch * s.channels * s.length * s.state * 4 > LOOP_MAX_BYTES:
            row.note = "loop skipped (route or > 2 GB of (batch, KD, L, N) tensors)"
            return row
        fn, kw = sequential_loop, {}
    elif backend == "mamba_ssm":
        fn, kw = mamba_ssm_fn(), {}
        if route is not None:
            # the originals gather K permuted copies first; timing the kernel on them alone favours mamba_ssm
            row.note = "mamba_ssm: on inputs already in route order (the K permuted copies not timed)"
    else:
        fn, kw = kernels.selective_scan, dict(route=route, out_float32=s.out_float32)
        reason = supports(Backend(backend), device, dtype)
        if reason is not None:
            row.note = reason
            return row
    ours = backend in {b.value for b in Backend}

    def forward() -> torch.Tensor:
        with kernels.use_backend(backend) if ours else contextlib.nullcontext():
            return fn(*args, delta_softplus=True, **kw)

    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in args]

    def forward_backward() -> None:
        with kernels.use_backend(backend) if ours else contextlib.nullcontext():
            y = fn(*leaves, delta_softplus=True, **kw)
        y.backward(grad)

    with torch.no_grad():
        row.fwd_ms = time_ms(forward, device, repeats)
        if ours and route is not None:
            shared = (inputs.u[:, : s.channels // s.routes].contiguous(), *args[1:])

            def forward_shared_u() -> torch.Tensor:
                with kernels.use_backend(backend):
                    return fn(*shared, delta_softplus=True, **kw)

            row.fwd_shared_u_ms = time_ms(forward_shared_u, device, repeats)
    row.fwd_bwd_ms = time_ms(forward_backward, device, repeats)
    if ours and route is not None:
        # the same kernels on inputs already in route order (what permuted copies would cost, without the copies)
        def forward_backward_route_order() -> None:
            with kernels.use_backend(backend):
                y = fn(*leaves, delta_softplus=True, out_float32=s.out_float32)
            y.backward(grad)

        row.fwd_bwd_route_order_ms = time_ms(forward_backward_route_order, device, repeats)
    roof = Roofline.of(s, batch, dtype)
    row.fwd_gb_s = roof.bytes_fwd / (row.fwd_ms / 1e3) / 1e9
    if peaks is not None:
        row.fwd_floor_pct = 100 * roof.floor_s(peaks, False) / (row.fwd_ms / 1e3)
        row.fwd_bwd_floor_pct = 100 * roof.floor_s(peaks, True) / (row.fwd_bwd_ms / 1e3)
    return row


def peak_memory_ratio(backend: str) -> float:
    """Extra peak memory of one forward+backward at the Vim-S CPU target over the inputs' size, in a fresh process:
    resident memory sampled every 0.2 ms (large tensors are mmapped, so freeing returns them to the OS) minus the
    resident memory once the inputs exist and the libraries are loaded."""
    code = f"""
import os, sys, threading, time, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
from bench_selective_scan import ZOO, CPU_TARGET, sequential_loop
from vssm import kernels
from vssm.kernels.testing import random_scan_inputs
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
s = next(s for s in ZOO if s.name == CPU_TARGET)
i = random_scan_inputs(s.batch, s.channels, s.length, s.state, s.groups)
args = [t.requires_grad_() for t in (i.u, i.delta, i.A, i.B, i.C, i.D, i.z, i.delta_bias)]
inputs = sum(t.numel() * t.element_size() for t in args)
grad = torch.randn_like(i.u)
fn = sequential_loop if {backend!r} == "loop" else kernels.selective_scan
tiny = random_scan_inputs(1, 16, 4, s.state, s.groups)
fn(tiny.u, tiny.delta, tiny.A, tiny.B, tiny.C, tiny.D, tiny.z, tiny.delta_bias, delta_softplus=True)
base, peak, done = rss(), [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.0002)
sampler = threading.Thread(target=sample)
sampler.start()
fn(*args, delta_softplus=True).backward(grad)
done.set()
sampler.join()
print((peak[0] - base) / inputs)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def machine_description(device: torch.device, label: str | None) -> str:
    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        cpu = platform.processor() or platform.machine()
        try:
            cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                       if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        hw = f"{cpu}, {os.cpu_count()} logical CPUs"
    prefix = f"{label}; " if label else ""
    if hasattr(os, "getloadavg"):
        prefix += f"load average {os.getloadavg()[0]:.1f} at the end of the run; "
    runtime = f"torch {torch.__version__}, {torch.get_num_threads()} threads, Python {platform.python_version()}"
    return f"{prefix}{hw}; {runtime}"


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_results(rows: list[Row], out_dir: Path, device: torch.device, machine: str,
                  peaks: dict[str, float] | None, command: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"selective_scan_{device.type}"
    names = list(Row.__dataclass_fields__)
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["machine", *names])
        for r in rows:
            writer.writerow([machine, *(getattr(r, n) for n in names)])
    headers = ["shape", "backend", "dtype", "batch", "KD", "L", "N", "G", "K", "fwd ms", "fwd ms shared u",
               "fwd+bwd ms", "fwd+bwd ms in route order", "fwd GB/s",
               "% floor fwd", "% floor fwd+bwd", "x loop fwd", "x loop fwd+bwd", "note"]
    lines = [
        f"# selective_scan benchmark ({device.type})", "",
        f"Machine: {machine}.",
        "Peaks used for the floor: " + (
            f"{peaks['bandwidth'] / 1e9:.1f} GB/s, {peaks['exp'] / 1e9:.2f} G exp/s, {peaks['fp32'] / 1e9:.1f} "
            f"GFLOP/s fp32 ({'assumed H100 peaks, `H100` in' if peaks == H100 else 'measured here by'} "
            "benchmarks/bench_selective_scan.py)." if peaks else
            "none on CPU (floor columns empty). GB/s counts the fused forward's bytes (`Roofline` in "
            "benchmarks/bench_selective_scan.py)."),
        "x loop: speed-up over the vectorised sequential loop (the baseline of issue 3) on the same shape.",
        f"Command: `{command}`", "",
        "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
    ]
    for r in rows:
        cells = [r.shape, r.backend, r.dtype, r.batch, r.channels, r.length, r.state, r.groups, r.routes,
                 fmt(r.fwd_ms), fmt(r.fwd_shared_u_ms), fmt(r.fwd_bwd_ms), fmt(r.fwd_bwd_route_order_ms),
                 fmt(r.fwd_gb_s), fmt(r.fwd_floor_pct, 1), fmt(r.fwd_bwd_floor_pct, 1), fmt(r.speedup_fwd, 1),
                 fmt(r.speedup_fwd_bwd, 1), r.note]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    memory = [r for r in rows if r.peak_extra_over_inputs is not None]
    if memory:
        lines += ["", "Peak memory of one forward+backward at the Vim-S CPU target (fresh process, resident memory "
                  "sampled), extra over the inputs' size:", ""]
        lines += [f"- {r.backend}: {r.peak_extra_over_inputs:.2f}x the inputs (target for cpu: within 2x)"
                  for r in memory]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem.with_suffix(".csv"), stem.with_suffix(".md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--backends", nargs="+", help="default: cpu reference loop (CPU), triton mamba_ssm loop (GPU)")
    parser.add_argument("--shapes", nargs="+", help="substrings of shape names to keep (default: all)")
    parser.add_argument("--cpu-batch", type=int, default=8, help="batch cap on CPU (the zoo's GPU batch is 64)")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], help="default: fp32 CPU, per shape GPU")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (the cpu backend uses as many)")
    parser.add_argument("--machine", help='how to name the machine, e.g. "2-core CPU container, no GPU"')
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true", help="refresh the committed files in benchmarks/ instead")
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends or (["loop", "cpu", "reference"] if device.type == "cpu" else
                                 ["loop", "triton", "mamba_ssm", "reference"])
    shapes = [s for s in ZOO if not args.shapes or any(k in s.name for k in args.shapes)]
    peaks = measured_peaks(device)
    rows: list[Row] = []
    cases = [(s, b) for s in shapes for b in backends]
    for s, backend in tqdm(cases, desc="selective_scan", unit="case"):
        batch = s.batch if device.type == "cuda" else min(s.batch, args.cpu_batch)
        dtype = getattr(torch, args.dtype) if args.dtype else (s.gpu_dtype if device.type == "cuda" else torch.float32)
        if backend == "mamba_ssm" and (device.type != "cuda" or mamba_ssm_fn() is None):
            continue
        if backend == "reference" and s.length > REFERENCE_MAX_LENGTH:
            rows.append(Row(s.name, backend, str(dtype).replace("torch.", ""), batch, s.channels, s.length, s.state,
                            s.groups, s.routes, note="reference skipped: Python loop over L"))
            continue
        rows.append(run_case(s, backend, device, dtype, batch, args.repeats, peaks))
    loops = {r.shape: r for r in rows if r.backend == "loop" and r.fwd_ms is not None}
    for r in rows:
        base = loops.get(r.shape)
        if base is not None and r.fwd_ms is not None and r.backend != "loop":
            r.speedup_fwd, r.speedup_fwd_bwd = base.fwd_ms / r.fwd_ms, base.fwd_bwd_ms / r.fwd_bwd_ms
        if device.type == "cpu" and r.shape == CPU_TARGET and r.backend in ("cpu", "loop") and r.fwd_ms is not None:
            r.peak_extra_over_inputs = peak_memory_ratio(r.backend)
    machine = machine_description(device, args.machine)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    csv_path, md_path = write_results(rows, COMMITTED if args.update_repo else args.output, device, machine, peaks,
                                      command)
    print(md_path.read_text())
    print(f"wrote {csv_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Host-side cost of one `kernels.selective_scan` call on the triton backend: Python, dispatcher, allocations and
launches, with the kernels themselves left out.

    python benchmarks/bench_host_overhead.py [--rounds 30] [--output runs/host_overhead]
    python benchmarks/bench_host_overhead.py --device cuda --launch --output runs/host_overhead_cuda   # real launches
    python benchmarks/bench_host_overhead.py --update-repo      # refresh the committed benchmarks/host_overhead.*

At the zoo's small shapes (MambaVision's stages 3 and 4) the kernels run for well under a millisecond, so what the
host spends per call shows in every step. Each shape is timed three ways, taking turns:

* `selective_scan`: the public entry as models call it (eagerly: kernels.eager's autograd.Function);
* `custom op`: the same entry made to call `torch.ops.vssm.selective_scan` and its registered autograd (what it did
  before kernels.eager; what torch.compile, FlopCounterMode and fvcore see);
* `launchers`: the Triton launchers of kernels.triton_scan alone, forward then backward (the route read in the
  kernels, never gathered).

By default the kernel launches are replaced by no-ops (the grid and arguments still built), so this runs on any
machine: on CPU tensors under TRITON_INTERPRET=1, which the script sets. `--launch` (CUDA only) launches the real
kernels and synchronises after each round. Shapes keep the zoo's channels, N and routes at L = 8 tokens (a 2 x 4
grid), where the interpreter's tiles make one sequence segment as the GPU's do at the real lengths. Also counts
the ATen ops (torch.profiler, top level) and kernel launches of one forward + backward. Writes host_overhead.md
and .csv under --output (default runs/host_overhead/); only --update-repo writes the committed benchmarks/ files.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

if "--launch" not in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"  # lets the triton backend take CPU tensors; read when kernels is imported

import torch
from torch.profiler import profile
from tqdm import tqdm

from vssm import kernels, scans
from vssm.analysis.benchmark import time_alternately
from vssm.analysis.tables import machine_description, markdown_table, write_csv
from vssm.engine import resolve_device
from vssm.kernels.scan_tensors import ScanTensors
from vssm.kernels.testing import ScanInputs, random_scan_inputs
from vssm.kernels.triton_scan import selective_scan_triton_bwd, selective_scan_triton_fwd

COMMITTED = Path(__file__).resolve().parent
OUTPUT = Path("runs") / "host_overhead"
GRID = (2, 4)
CALLS_PER_RUN = 20  # one timed run makes this many calls (a call is ~0.1 ms)
PATHS = ("selective_scan", "custom op", "launchers")


@dataclass(frozen=True)
class Shape:
    name: str
    channels: int
    state: int
    groups: int
    order: str | None = None  # scans registry name of the routes (K = groups)
    has_z: bool = False


SHAPES = (
    Shape("mambavision_t stage 3 (N 8)", 160, 8, 1),
    Shape("vim_s (2 routes, N 16)", 1536, 16, 2, "bidirectional", has_z=True),
    Shape("vmamba_t stage 1 (cross, N 1, gathered)", 4 * 96, 1, 4, "cross"),
    Shape("localvmamba_t stage 1 (windows, N 16, gathered)", 4 * 192, 16, 4, "windowed"),
)


class _NoLaunch:
    """Stands for `wrap_triton(kernel)`: `[grid](...)` counts the launch and runs nothing."""

    launches = 0

    def __init__(self, kernel: object) -> None:
        self.kernel = kernel

    def __getitem__(self, grid: tuple[int, ...]) -> Callable[..., None]:
        def launch(*args: object, **kwargs: object) -> None:
            _NoLaunch.launches += 1

        return launch


@contextlib.contextmanager
def launches_replaced(enabled: bool) -> Iterator[None]:
    original = torch.library.wrap_triton
    if enabled:
        torch.library.wrap_triton = _NoLaunch
    try:
        yield
    finally:
        torch.library.wrap_triton = original


def inputs(shape: Shape, device: torch.device) -> ScanInputs:
    route = None if shape.order is None else scans.get(shape.order).route(*GRID, device=device)
    return random_scan_inputs(1, shape.channels, GRID[0] * GRID[1], shape.state, shape.groups, dtype=torch.bfloat16,
                              has_z=shape.has_z, route=route, device=device,
                              generator=torch.Generator().manual_seed(0)).requires_grad_()


def paths(x: ScanInputs) -> dict[str, Callable[[], None]]:
    grad = torch.randn_like(x.delta)

    def public() -> None:
        kernels.selective_scan(**vars(x)).backward(grad)

    def custom_op() -> None:
        with kernels.use_custom_op():
            public()

    # B, C: (batch, G, N, L) as the launchers take them
    plain = ScanTensors(*(None if t is None else t.detach() for t in x.tensors()), x.route)

    def launchers() -> None:
        _, _, saved = selective_scan_triton_fwd(plain, True, False)
        selective_scan_triton_bwd(grad, plain, saved, True)

    return dict(zip(PATHS, (public, custom_op, launchers), strict=True))


def repeated(step: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        for _ in range(CALLS_PER_RUN):
            step()

    return run


def ops_and_launches(step: Callable[[], None]) -> tuple[int, int]:
    """Top-level ATen ops (those not called by another ATen op) and kernel launches of one call."""
    before = _NoLaunch.launches
    with profile() as prof:
        step()
    ops = sum(1 for e in prof.events()
              if e.name.startswith("aten::") and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::")))
    return ops, _NoLaunch.launches - before


def measure(shape: Shape, device: torch.device, rounds: int, launch: bool, progress: tqdm) -> list[dict]:
    steps = paths(inputs(shape, device))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = time_alternately({k: repeated(v) for k, v in steps.items()}, warmup=2, repeats=rounds, sync=sync,
                             progress=progress)
    rows = []
    for name, step in steps.items():
        ops, launches = ops_and_launches(step)
        rows.append({"shape": shape.name, "path": name,
                     "us_fwd_bwd": round(1e3 * statistics.median(times[name]) / CALLS_PER_RUN, 1),
                     "aten_ops": ops, "launches": launches if not launch else ""})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--launch", action="store_true", help="launch the real kernels (CUDA only)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--machine", default=None, help="how to name the machine in the results")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true", help="refresh the committed files in benchmarks/ instead")
    args = parser.parse_args(argv)
    output = COMMITTED if args.update_repo else args.output
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.launch and device.type != "cuda":
        parser.error("--launch needs --device cuda")
    rows = []
    with launches_replaced(not args.launch), kernels.use_backend("triton"), \
            tqdm(total=len(SHAPES) * len(PATHS) * args.rounds, desc="host overhead", file=sys.stderr) as bar:
        for shape in SHAPES:
            rows.extend(measure(shape, device, args.rounds, args.launch, bar))
    headers = ["shape", "path", "µs per forward + backward", "ATen ops", "kernel launches"]
    table = markdown_table(headers, [list(r.values()) for r in rows], [False, False, True, True, True])
    command = "python " + shlex.join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])
    kernels_run = "real kernel launches" if args.launch else "kernel launches replaced by no-ops"
    text = (f"# Host overhead of one selective scan (forward + backward)\n\nMachine: "
            f"{machine_description(device, args.machine)}\n\nCommand: `{command}`\n\nTriton backend, {kernels_run}, "
            f"batch 1, bf16, L = {GRID[0] * GRID[1]} tokens, median of {args.rounds} rounds of {CALLS_PER_RUN} "
            f"calls; ATen ops counted by torch.profiler at the top level (views included).\n\n{table}\n")
    output.mkdir(parents=True, exist_ok=True)
    (output / "host_overhead.md").write_text(text)
    write_csv(output / "host_overhead.csv", rows)
    print(table)
    print(f"wrote {output / 'host_overhead.md'} and .csv", file=sys.stderr)


if __name__ == "__main__":
    main()

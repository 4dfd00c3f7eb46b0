"""What the compiler makes of the Triton selective scan, without a GPU: registers, spills and the instruction mix of
each kernel's chunk loop, compiled for an H100 (sm_90) by the ptxas that ships in Triton's wheel.

    python benchmarks/triton_static.py                  # runs/triton_static/
    python benchmarks/triton_static.py --update-repo    # refresh the committed benchmarks/triton_static.*

For each of the zoo's scan shapes and each kernel (forward, backward) with `triton_config`'s tiles (or every tile
of `--grid`), it compiles the kernel ahead of time, disassembles the cubin (cuobjdump) and counts the instructions of
the innermost loop, per element of the loop's (CHUNK, N, BLOCK_D) tile; at N = 1 also the d_state 1 kernels that the
backend runs there (kernels/triton_scan_state1.py, rule "state 1"), per element of their (CHUNK, BLOCK_D) tile. The
issue-slot estimate divides the counts by what one H100 SM retires per clock (the CUDA programming guide's
throughput table for compute capability 9.0) and compares the slowest pipe with the exponentials alone: it ranks
designs and tiles on a machine with no GPU and is no substitute for timing (`bench_selective_scan.py`,
`tune_triton.py`). Writes triton_static.md and .csv under --output (default runs/triton_static/); only --update-repo
writes the committed benchmarks/ files.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import triton
from tqdm import tqdm
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from vssm.kernels import triton_scan, triton_scan_state1
from vssm.kernels.triton_scan import TritonConfig, candidate_configs, save_every, triton_config
from vssm.kernels.triton_scan_state1 import State1Config, state1_config

COMMITTED = Path(__file__).resolve().parent
OUTPUT = Path("runs") / "triton_static"
TARGET = GPUTarget("cuda", 90, 32)
BIN = Path(triton.__file__).parent / "backends" / "nvidia" / "bin"
# warp instructions one SM retires per clock (4 schedulers; MUFU 16 lanes, shuffles and shared memory 32 lanes)
ISSUE_PER_CLOCK = 4.0
PIPES = {"MUFU": 0.5, "SHFL": 1.0, "LDS/STS": 1.0}
# name: (KD, N, K routes = G groups), the zoo's shapes of benchmarks/bench_selective_scan.py
SHAPES = {
    "vim_s (K 2, N 16)": (1536, 16, 2),
    "vmamba_t stage 1 (K 4, N 1)": (384, 1, 4),
    "mambavision_t stage 3 (N 8)": (160, 8, 1),
    "localvmamba_t stage 1 (K 4, N 16)": (768, 16, 4),
}
# segments are a runtime argument: any batch and length compile to the same kernels
SEGMENTS_OF = dict(batch=64, steps=196)
HALF_POINTERS = ("u_ptr", "delta_ptr", "B_ptr", "C_ptr", "z_ptr", "out_ptr", "grad_ptr", "du_ptr", "ddelta_ptr",
                 "dz_ptr")


@dataclass
class LoopMix:
    """Static counts of one kernel: registers, spill bytes, and the innermost loop's instructions per element."""

    registers: int
    spill_bytes: int
    instructions: float
    mufu: float
    shfl: float
    shared: float
    barriers: float
    spill_ops: float

    def clocks_per_element(self, threads: int) -> dict[str, float]:
        """SM clocks per tile element by pipe, with `threads` tile elements handled per warp instruction."""
        warps = 1.0 / threads
        return {"issue": self.instructions * warps / ISSUE_PER_CLOCK, "MUFU": self.mufu * warps / PIPES["MUFU"],
                "SHFL": self.shfl * warps / PIPES["SHFL"], "LDS/STS": self.shared * warps / PIPES["LDS/STS"]}


def _signature(fn, constexprs: dict) -> dict[str, str]:
    sig = {}
    for name in inspect.signature(fn.fn).parameters:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name == "route_ptr":
            sig[name] = "*i32"
        elif name.endswith("_ptr"):
            sig[name] = "*bf16" if name in HALF_POINTERS else "*fp32"
        else:
            sig[name] = "i32"
    return sig


def innermost_loops(sass: str) -> list[str]:
    """The instructions of every loop that contains no other loop (a backward branch's body) and stores to global
    memory: the forward's chunk loop; the backward's replay of a saved span and its walk back over the span's
    chunks, each run once a chunk. The loops that combine the other segments' summaries only load, and run once a
    program."""
    lines = re.findall(r"/\*([0-9a-f]{4,})\*/\s+([^;]*?)\s*;", sass)
    address = [int(a, 16) for a, _ in lines]
    loops = []
    for i, (_, text) in enumerate(lines):
        jump = re.search(r"\bBRA\s+0x([0-9a-f]+)", text)
        if jump and int(jump.group(1), 16) < address[i]:
            start = next(j for j, a in enumerate(address) if a >= int(jump.group(1), 16))
            loops.append((start, i))
    innermost = [(s, e) for s, e in loops if not any(s < s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in loops)]
    storing = [(s, e) for s, e in innermost if any(re.search(r"\bSTG\b", text) for _, text in lines[s:e + 1])]
    if not storing:
        return [text for _, text in lines]
    return [text for s, e in storing for _, text in lines[s:e + 1]]


def compile_mix(fn, constexprs: dict, num_warps: int, elements_per_thread: float) -> LoopMix:
    kernel = triton.compile(ASTSource(fn, _signature(fn, constexprs), constexprs=constexprs), target=TARGET,
                            options={"num_warps": num_warps})
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        usage = subprocess.run([BIN / "cuobjdump", "--dump-resource-usage", f.name], capture_output=True, text=True,
                               check=True).stdout
        sass = subprocess.run([BIN / "cuobjdump", "-sass", f.name], capture_output=True, text=True, check=True).stdout
    body = innermost_loops(sass)
    ops = [line.split()[0] if not line.startswith("@") else line.split()[1] for line in body if line.strip()]

    def count(*prefixes: str) -> float:
        return sum(op.startswith(prefixes) for op in ops) / elements_per_thread

    return LoopMix(
        registers=int(re.search(r"REG:(\d+)", usage).group(1)),
        spill_bytes=sum(int(re.search(rf"{kind}:(\d+)", usage).group(1)) for kind in ("STACK", "LOCAL")),
        instructions=len(ops) / elements_per_thread, mufu=count("MUFU"), shfl=count("SHFL"),
        shared=count("LDS", "STS"), barriers=count("BAR"), spill_ops=count("LDL", "STL"))


def kernel_mixes(channels: int, state: int, routes: int, cfg: TritonConfig) -> dict[str, tuple[LoopMix, int]]:
    """Forward and backward loop mixes, each with the tile elements per warp instruction (threads of the tile)."""
    flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, HAS_ROUTE=routes > 1, SOFTPLUS=True,
                 BLOCK_N=triton.next_power_of_2(state), CHUNK=cfg.chunk, CHUNKS_PER_SAVE=cfg.chunks_per_save, FOLD=1)
    out = {}
    for name, fn, block_d, extra in (
            ("forward", triton_scan._selective_scan_fwd_kernel, cfg.forward_block_d, {"SEPARATE_ACC": False}),
            ("backward", triton_scan._selective_scan_bwd_kernel, cfg.block_d,
             {"BLOCKS_PER_PROGRAM": cfg.blocks_per_program})):
        threads = 32 * cfg.num_warps
        elements = cfg.chunk * flags["BLOCK_N"] * block_d / threads
        out[name] = (compile_mix(fn, dict(flags, BLOCK_D=block_d, **extra), cfg.num_warps, elements), threads)
    return out


def state1_mixes(channels: int, routes: int) -> tuple[State1Config, dict[str, tuple[LoopMix, int]]]:
    """The d_state 1 kernels' (kernels/triton_scan_state1.py) forward and backward loop mixes with their rule's
    tiles, each with the tile elements per warp instruction."""
    cfg = state1_config(channels, routes, routes)
    flags = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, HAS_ROUTE=routes > 1, SOFTPLUS=True, BLOCK_D=cfg.block_d,
                 PER_LANE=cfg.per_lane, LANES=cfg.lanes, SAVE_EVERY=save_every(), FOLD=1)
    threads = 32 * cfg.num_warps
    elements = cfg.chunk * cfg.block_d / threads
    return cfg, {name: (compile_mix(fn, dict(flags, **extra), cfg.num_warps, elements), threads)
                 for name, fn, extra in (("forward", triton_scan_state1._state1_fwd_kernel, {"SEPARATE_ACC": False}),
                                         ("backward", triton_scan_state1._state1_bwd_kernel,
                                          {"BLOCKS_PER_PROGRAM": cfg.blocks_per_program}))}


def floor_exps(kernel: str, state: int, has_z: bool = True) -> float:
    """Exponentials per (step, channel, state) element in the roofline's floor (`Roofline` of bench_selective_scan.py):
    the forward's decay, softplus and gate (the last two once per step and channel), the backward's one decay."""
    return 1.0 + (2.0 + has_z) / state if kernel == "forward" else 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true", help="refresh the committed files in benchmarks/ instead")
    parser.add_argument("--shapes", nargs="*", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--grid", action="store_true", help="every tile of `candidate_configs`, not only the rule's")
    args = parser.parse_args(argv)
    jobs = []
    for shape in args.shapes:
        channels, state, routes = SHAPES[shape]
        rule = triton_config(channels, routes, routes, state, **SEGMENTS_OF)
        for cfg in (candidate_configs(channels, routes, routes, state, **SEGMENTS_OF) if args.grid else [rule]):
            jobs.append((shape, channels, state, routes, cfg, cfg == rule))
    rows = []
    for shape, channels, state, routes, cfg, is_rule in tqdm(jobs, desc="compiling for sm_90"):
        tiles = [(kernel, mix, threads, cfg.chunk, cfg.forward_block_d if kernel == "forward" else cfg.block_d,
                  cfg.num_warps, "yes" if is_rule else "")
                 for kernel, (mix, threads) in kernel_mixes(channels, state, routes, cfg).items()]
        if state == 1 and is_rule:  # what the triton backend runs at N = 1
            cfg1, mixes = state1_mixes(channels, routes)
            tiles += [(kernel, mix, threads, cfg1.chunk, cfg1.block_d, cfg1.num_warps, "state 1")
                      for kernel, (mix, threads) in mixes.items()]
        for kernel, mix, threads, chunk, block_d, warps, mark in tiles:
            clocks = mix.clocks_per_element(threads)
            slowest = max(clocks, key=clocks.get)
            rows.append({
                "shape": shape, "kernel": kernel, "chunk": chunk, "block_d": block_d, "warps": warps,
                "rule": mark, "registers": mix.registers, "spill bytes": mix.spill_bytes,
                "instr/elt": round(mix.instructions, 2), "MUFU/elt": round(mix.mufu, 3),
                "SHFL/elt": round(mix.shfl, 3), "LDS+STS/elt": round(mix.shared, 3),
                "BAR/elt": round(mix.barriers, 3), "spill ops/elt": round(mix.spill_ops, 3), "bound": slowest,
                "exp share %": round(100 * clocks["MUFU"] / clocks[slowest], 1),
                "exp floor %": round(100 * floor_exps(kernel, state) / threads / PIPES["MUFU"] / clocks[slowest], 1),
            })
    write(rows, COMMITTED if args.update_repo else args.output, argv if argv is not None else sys.argv[1:])
    return 0


def write(rows: list[dict], out: Path, argv: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    with open(out / "triton_static.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    table = header + "".join("| " + " | ".join(str(r[c]) for c in columns) + " |\n" for r in rows)
    command = shlex.join(["python", "benchmarks/triton_static.py", *argv])
    text = (
        "# Triton selective scan, compiled for an H100 (sm_90) without one\n\n"
        f"Triton {triton.__version__}, its bundled ptxas and cuobjdump. Generated by `{command}`.\n"
        "Counts are of the innermost loops of each kernel (the forward's chunk loop; the backward's span replay and "
        "reverse walk, summed), per element of their (CHUNK, N, BLOCK_D) "
        "tile. `bound` is the pipe with the most SM clocks per element (issue: 4 warp instructions per clock; MUFU "
        "16 lanes; SHFL and shared memory 32 lanes), `exp share %` the loop's own exponentials' clocks as a share of "
        "it, and `exp floor %` the roofline's exponentials (bench_selective_scan.py: the forward's decay, softplus and "
        "gate; the backward's one decay) as a share of it: the most of the exp-bound floor the loop's instruction mix "
        "allows, before memory and latency. At N = 1 the binding floor is memory, which this does not model.\n\n"
        + table)
    (out / "triton_static.md").write_text(text)
    print(table)


if __name__ == "__main__":
    raise SystemExit(main())

"""Tile sizes of the Triton selective scan, measured: every (chunk, channels per block, warps) on the zoo's shapes.

    python benchmarks/tune_triton.py --output runs/tune_triton --machine "NVIDIA H100 80GB HBM3"

The kernels are not autotuned (the save interval fixes the saved-state layout, the block the reduction order: see
kernels/triton_scan.py), so `triton_config` is a fixed rule of the shapes; this script is where its numbers come
from. For each shape it times the forward and the backward kernel launch (triton.testing.do_bench, median) for every
candidate tile (`candidate_configs`) and prints them fastest first, marking the current rule's choice. Writes
triton_tiles.csv and .md under --output (default runs/tune_triton/) with the GPU named.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import shlex
import sys
from pathlib import Path

import torch
import triton
from tqdm import tqdm

from vssm.kernels.scan_tensors import ScanTensors
from vssm.kernels.testing import random_scan_inputs
from vssm.kernels.triton_scan import (
    TritonConfig,
    candidate_configs,
    selective_scan_triton_bwd,
    selective_scan_triton_fwd,
    triton_config,
)

OUTPUT = Path("runs") / "tune_triton"
# name: (batch, KD, L, N, G = K routes, has_z, out_float32, dtype)
SHAPES = {
    "vim_s (K 2, N 16, L 197)": (64, 1536, 197, 16, 2, True, False, torch.bfloat16),
    "vmamba_t stage 1 (K 4, N 1, L 3136)": (64, 384, 3136, 1, 4, False, True, torch.bfloat16),
    "localvmamba_t stage 1 (K 4, N 16, L 3136)": (32, 768, 3136, 16, 4, False, True, torch.bfloat16),
    "mambavision_t stage 3 (N 8, L 196)": (64, 160, 196, 8, 1, False, False, torch.bfloat16),
    "umamba 2d (N 16, L 16384)": (2, 128, 16384, 16, 1, True, False, torch.float32),
}


def candidates(shape: tuple, tiles: list[tuple[int, int]] | None = None, warps: tuple[int, ...] = (1, 2, 4),
               chunks: tuple[int, ...] = (2, 4, 8, 16), spans: tuple[int, ...] = (),
               blocks: tuple[int, ...] = ()) -> list[TritonConfig]:
    """`candidate_configs` with `warps` and `chunks`, kept to the (chunk, block_d) pairs of `tiles` when given, then
    the rule's tile with each number of saved spans per segment of `spans` (the sequence-parallel sweep) and with
    each number of channel blocks per backward program of `blocks` that fits a route's channels (fewer programs,
    so fewer dB/dC partials to write and sum)."""
    batch, channels, length, state, groups = shape[:5]
    rule = triton_config(channels, groups, groups, state, batch=batch, steps=length)
    tried = [cfg for cfg in candidate_configs(channels, groups, groups, state, warps, chunks, batch=batch, steps=length)
             if tiles is None or (cfg.chunk, cfg.block_d) in tiles]
    tried += [dataclasses.replace(rule, spans_per_segment=n) for n in spans]
    tried += [dataclasses.replace(rule, blocks_per_program=n) for n in blocks
              if (channels // groups) % (rule.block_d * n) == 0]
    return list(dict.fromkeys([*tried, rule]))


def routes_for(groups: int, length: int, device: str) -> torch.Tensor | None:
    if groups == 1:
        return None
    raster = torch.arange(length, device=device)
    side = math.isqrt(length)
    if groups == 2 or side * side != length:
        return torch.stack([raster, raster.flip(0)] * (groups // 2))
    columns = raster.view(side, side).t().flatten()
    return torch.stack([raster, columns, raster.flip(0), columns.flip(0)])


def measure(shape: tuple, cfg: TritonConfig) -> tuple[float, float, list[torch.Tensor]]:
    """Forward and backward ms of one tile on fresh inputs (seeded, so every tile of a shape sees the same ones),
    with the output and gradients to compare tiles by."""
    batch, channels, length, state, groups, has_z, out_float32, dtype = shape
    torch.manual_seed(0)
    s = random_scan_inputs(batch, channels, length, state, groups, has_z=has_z).cast(dtype).to_device("cuda")
    route = routes_for(groups, length, "cuda")
    scan = ScanTensors(*s.tensors(), route)
    out, _, saved = selective_scan_triton_fwd(scan, True, out_float32, config=cfg)
    grad = torch.randn_like(out)
    grads = selective_scan_triton_bwd(grad, scan, saved, True, config=cfg)
    fwd = triton.testing.do_bench(lambda: selective_scan_triton_fwd(scan, True, out_float32, config=cfg))
    bwd = triton.testing.do_bench(lambda: selective_scan_triton_bwd(grad, scan, saved, True, config=cfg))
    return fwd, bwd, [t.float() for t in (out, *grads) if t is not None]


def largest_difference(results: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """max |a - b| / max |b| over the output and every gradient: tiles differ only in rounding order."""
    return max(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(results, reference))


def _tile(text: str) -> tuple[int, int]:
    chunk, _, block_d = text.partition("x")
    if not (chunk.isdigit() and block_d.isdigit()):
        raise argparse.ArgumentTypeError(f"expected CHUNKxBLOCK_D such as 32x8, got {text!r}")
    return int(chunk), int(block_d)


def write_results(rows: list[dict], out: Path, machine: str, argv: list[str] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "triton_tiles.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["machine", *rows[0]])
        writer.writeheader()
        writer.writerows({"machine": machine, **r} for r in rows)
    command = " ".join(["python benchmarks/tune_triton.py", *map(shlex.quote, argv or sys.argv[1:])])
    lines = [f"# Triton selective-scan tiles\n\nMachine: {machine}. Generated by `{command}`. For each shape, the "
             "fastest 8 tiles by forward + backward, then every row of the rule's tile (the segments and "
             "blocks-per-program sweeps); `rule` "
             "marks `triton_config`'s choice.\n"]
    tile = ("chunk", "block_d", "forward_block_d", "num_warps")
    for name in dict.fromkeys(r["shape"] for r in rows):
        mine = sorted((r for r in rows if r["shape"] == name), key=lambda r: r["fwd_ms"] + r["bwd_ms"])
        rule = next((r for r in mine if r["rule"]), mine[0])
        same_tile = [r for r in mine[8:] if all(r[k] == rule[k] for k in tile)]
        lines += [f"\n## {name}\n",
                  "| chunk | block_d | forward block_d | blocks/program | warps | chunks/save | segments | fwd ms "
                  "| bwd ms | max rel. difference from the rule's results | rule |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in mine[:8] + same_tile:
            lines.append(f"| {r['chunk']} | {r['block_d']} | {r['forward_block_d']} | {r['blocks_per_program']} | "
                         f"{r['num_warps']} | {r['chunks_per_save']} | {r['segments']} | "
                         f"{r['fwd_ms']:.3f} | {r['bwd_ms']:.3f} | {r['difference']} | {r['rule']} |")
    (out / "triton_tiles.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", help="substrings of shape names to keep (default: all)")
    parser.add_argument("--tiles", nargs="+", type=_tile, help="CHUNKxBLOCK_D pairs to try (default: all)")
    parser.add_argument("--warps", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--chunks", nargs="+", type=int, default=[2, 4, 8, 16], help="steps per scanned tile")
    parser.add_argument("--spans-per-segment", nargs="+", type=int, default=[1, 2, 4, 8, 10**6],
                        help="saved spans per segment to try with the rule's tile (10**6: one segment)")
    parser.add_argument("--blocks-per-program", nargs="+", type=int, default=[2, 4, 8],
                        help="channel blocks per backward program to try with the rule's tile")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    parser.add_argument("--machine", help="how to name the GPU (default: torch's device name)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("needs a CUDA device")
    machine = args.machine or torch.cuda.get_device_name()
    shapes = {k: v for k, v in SHAPES.items() if not args.shapes or any(p in k for p in args.shapes)}
    rows: list[dict] = []
    for name, shape in shapes.items():
        batch, channels, length, state, groups = shape[:5]
        rule = triton_config(channels, groups, groups, state, batch=batch, steps=length)
        tried = candidates(shape, args.tiles, tuple(args.warps), tuple(args.chunks), tuple(args.spans_per_segment),
                           tuple(args.blocks_per_program))
        reference = measure(shape, rule)[2]
        for cfg in tqdm(tried, desc=name, unit="tile", file=sys.stderr):
            fwd, bwd, results = measure(shape, cfg)
            rows.append(dict(shape=name, chunk=cfg.chunk, block_d=cfg.block_d, forward_block_d=cfg.forward_block_d,
                             blocks_per_program=cfg.blocks_per_program, num_warps=cfg.num_warps,
                             chunks_per_save=cfg.chunks_per_save, segments=cfg.segments(length),
                             fwd_ms=round(fwd, 4), bwd_ms=round(bwd, 4),
                             difference=f"{largest_difference(results, reference):.1e}",
                             rule="yes" if cfg == rule else ""))
            del results
        write_results(rows, args.output, machine, argv)  # after every shape: a run cut short keeps what it measured
    print((args.output / "triton_tiles.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CPU inference throughput of LocalVim / LocalVMamba against timm's DeiT-T / Swin-T, measured in the same run.

    python benchmarks/bench_localmamba.py [--machine "2-core CPU container, no GPU"] [--rounds 7] [--threads 2 1]

Targets (issue 10): at batch 8, 224², float32, `local_vim_tiny` reaches >= 0.5x the images/s of
`deit_tiny_patch16_224` and `local_vssm_tiny` >= 0.5x those of `swin_tiny_patch4_window7_224`. Also timed: the
middle-class-token LocalVim-T against the same DeiT-T batches. For each `--threads` setting all models are timed
alternately (drifting machine load hits them alike), in `torch.inference_mode`, eval mode, random weights; the median
of `--rounds` batches is reported. The selective-scan backend is the automatic choice (or `--backend`), checked
against the reference backend on one image. Writes `localmamba_cpu.md` and `localmamba_cpu.csv` under `--out`.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import timm
import torch
from bench_vim import Row, _median_ms, check_backend, default_machine, gflops, table
from tqdm import tqdm

import kernels
import vssm  # noqa: F401  (registers the LocalMamba models)
from kernels.backends import select_backend

# (label, timm name, baseline, carries a target)
ROWS = (
    ("local_vim_tiny", "local_vim_tiny", "deit_tiny_patch16_224", True),
    ("local_vssm_tiny", "local_vssm_tiny", "swin_tiny_patch4_window7_224", True),
    ("local_vim_tiny_midcls", "local_vim_tiny_midcls", "deit_tiny_patch16_224", False),
)
TARGET = 0.5  # ours / baseline images per second


def bench(batch: int, rounds: int, backend: str, threads: int) -> list[Row]:
    torch.set_num_threads(threads)
    names = dict.fromkeys([name for _, name, _, _ in ROWS] + [baseline for _, _, baseline, _ in ROWS])
    models = {name: timm.create_model(name).eval() for name in names}
    x = torch.randn(batch, 3, 224, 224)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), kernels.use_backend(backend):
        for model in models.values():  # warm-up: allocator, route tables, compiled scan library
            model(x)
        for _ in tqdm(range(rounds), desc=f"{threads} thread(s)", leave=False):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    flops = {name: gflops(model) for name, model in models.items()}
    rows = []
    for label, name, baseline, has_target in ROWS:
        row = Row(f"{label} ({threads} thread{'s' if threads > 1 else ''})", baseline, _median_ms(times[name]),
                  _median_ms(times[baseline]), batch, flops[name], flops[baseline],
                  f">= {TARGET}x {baseline}" if has_target else "-", None)  # fmt: skip
        if has_target:
            row.passed = row.ratio >= TARGET
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machine", default=default_machine(), help="machine description written with the results")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder for localmamba_cpu.md / .csv")
    parser.add_argument("--rounds", type=int, default=7, help="timed batches per model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backend", default=None, help="selective-scan backend (default: the automatic choice)")
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()],
                        help="torch.set_num_threads settings, each timed separately (default: torch's)")  # fmt: skip
    args = parser.parse_args(argv)
    backend = args.backend or select_backend(torch.device("cpu"), torch.float32).value

    errors = {name: check_backend(name, backend) if backend != "reference" else 0.0
              for name in ("local_vim_tiny", "local_vssm_tiny")}  # fmt: skip
    rows = [row for threads in args.threads for row in bench(args.batch, args.rounds, backend, threads)]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    command = shlex.join(["python", "benchmarks/bench_localmamba.py", *(sys.argv[1:] if argv is None else argv)])
    checked = ", ".join(f"{name} {error:.1e}" for name, error in errors.items())
    header = (
        f"Machine: {args.machine}; torch {torch.__version__}, timm {timm.__version__}, Python "
        f"{platform.python_version()}. Selective-scan backend: `{backend}` (max |logit| difference to the reference "
        f"backend on one image: {checked}). Batch {args.batch}, 224², float32, eval, inference_mode, random weights; "
        f"median of {args.rounds} batches, all models of one thread setting timed alternately (the baseline columns "
        f"are the same DeiT-T / Swin-T batches in every row of that setting). GFLOPs: fvcore per 224² image "
        f"(1 multiply-add = 1 FLOP; selective scan 9·L·KD·N + L·KD by the kernels' handle). Load average after the "
        f"run (1, 5, 15 min): {load}.\n"
        f"Command: `{command}`"
    )
    text = f"# LocalMamba CPU throughput\n\n{header}\n\n{table(rows)}\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "localmamba_cpu.md").write_text(text)
    with open(args.out / "localmamba_cpu.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["machine", "backend", "model", "gflops", "ms_per_batch", "images_per_s", "baseline",
                         "baseline_gflops", "baseline_ms_per_batch", "baseline_images_per_s", "ratio", "batch",
                         "target", "met"])  # fmt: skip
        for r in rows:
            writer.writerow([args.machine, backend, r.model, f"{r.ours_gflops:.3f}", f"{r.ours_ms:.2f}",
                             f"{r.ours_ips:.3f}", r.baseline, f"{r.baseline_gflops:.3f}", f"{r.baseline_ms:.2f}",
                             f"{r.baseline_ips:.3f}", f"{r.ratio:.3f}", r.batch, r.target,
                             "" if r.passed is None else r.passed])  # fmt: skip
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""CPU inference throughput of VMamba against timm's Swin-T, measured in the same run.

    python benchmarks/bench_vmamba.py [--machine "2-core CPU container, no GPU"] [--rounds 7] [--out benchmarks]

Target (issue 6): `vmamba_tiny` (T[s1l8]) at batch 8, 224², float32 reaches >= 0.5x the images/s of
`swin_tiny_patch4_window7_224`. Also timed, against the same Swin batches: `vmamba_tiny` in the channel-last layout
(same weights), `vmamba_tiny_s2l5` and the vanilla `vmamba_tiny_v0`. All models are timed alternately (drifting
machine load hits them alike), in `torch.inference_mode`, eval mode, random weights; the median of `--rounds` batches
is reported. The selective-scan backend is the automatic choice (or `--backend`), checked against the reference
backend on one image, and written with the results. Writes `vmamba_cpu.md` and `vmamba_cpu.csv` under `--out`.
"""

from __future__ import annotations

import argparse
import csv
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
import vssm  # noqa: F401  (registers the VMamba models)
from kernels.backends import select_backend

BASELINE = "swin_tiny_patch4_window7_224"
# (label, timm name, kwargs); the first carries the target.
OURS = (
    ("vmamba_tiny", "vmamba_tiny", {}),
    ("vmamba_tiny (channels_last layout)", "vmamba_tiny", {"layout": "channels_last"}),
    ("vmamba_tiny_s2l5", "vmamba_tiny_s2l5", {}),
    ("vmamba_tiny_v0", "vmamba_tiny_v0", {}),
)
TARGET = 0.5  # ours / baseline images per second


def bench(batch: int, rounds: int, backend: str) -> list[Row]:
    models = {label: timm.create_model(name, **kwargs).eval() for label, name, kwargs in OURS}
    models[BASELINE] = timm.create_model(BASELINE).eval()
    x = torch.randn(batch, 3, 224, 224)
    times: dict[str, list[float]] = {label: [] for label in models}
    with torch.inference_mode(), kernels.use_backend(backend):
        for model in models.values():  # warm-up: allocator, route tables, compiled scan library
            model(x)
        for _ in tqdm(range(rounds), desc="rounds", leave=False):
            for label, model in models.items():
                start = time.perf_counter()
                model(x)
                times[label].append(time.perf_counter() - start)
    baseline_ms, baseline_gflops = _median_ms(times[BASELINE]), gflops(models[BASELINE])
    rows = []
    for i, (label, _, _) in enumerate(OURS):
        row = Row(label, BASELINE, _median_ms(times[label]), baseline_ms, batch, gflops(models[label]),
                  baseline_gflops, f">= {TARGET}x {BASELINE}" if i == 0 else "-", None)  # fmt: skip
        if i == 0:
            row.passed = row.ratio >= TARGET
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machine", default=default_machine(), help="machine description written with the results")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder for vmamba_cpu.md / .csv")
    parser.add_argument("--rounds", type=int, default=7, help="timed batches per model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backend", default=None, help="selective-scan backend (default: the automatic choice)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = args.backend or select_backend(torch.device("cpu"), torch.float32).value

    error = check_backend(OURS[0][1], backend) if backend != "reference" else 0.0
    rows = bench(args.batch, args.rounds, backend)
    command = shlex.join(["python", "benchmarks/bench_vmamba.py", *(sys.argv[1:] if argv is None else argv)])
    header = (
        f"Machine: {args.machine}; torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} "
        f"threads, Python {platform.python_version()}. Selective-scan backend: `{backend}` (max |logit| difference "
        f"to the reference backend on one image: {error:.1e}). Batch {args.batch}, 224², float32, eval, "
        f"inference_mode, random weights; median of {args.rounds} batches, all models timed alternately in one run "
        f"(the baseline columns are the same Swin-T batches in every row). GFLOPs: fvcore per 224² image "
        f"(1 multiply-add = 1 FLOP; selective scan 9·L·KD·N + L·KD by the kernels' handle).\n"
        f"Command: `{command}`"
    )
    text = f"# VMamba CPU throughput\n\n{header}\n\n{table(rows)}\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vmamba_cpu.md").write_text(text)
    with open(args.out / "vmamba_cpu.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["machine", "backend", "threads", "model", "gflops", "ms_per_batch", "images_per_s",
                         "baseline", "baseline_gflops", "baseline_ms_per_batch", "baseline_images_per_s", "ratio",
                         "batch", "target", "met"])
        for r in rows:
            writer.writerow([args.machine, backend, torch.get_num_threads(), r.model, f"{r.ours_gflops:.3f}",
                             f"{r.ours_ms:.2f}", f"{r.ours_ips:.3f}", r.baseline, f"{r.baseline_gflops:.3f}",
                             f"{r.baseline_ms:.2f}", f"{r.baseline_ips:.3f}", f"{r.ratio:.3f}", r.batch, r.target,
                             "" if r.passed is None else r.passed])  # fmt: skip
    return 0 if all(r.passed is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""CPU inference throughput of Vim against timm's DeiT of similar FLOPs, measured in the same run.

    python benchmarks/bench_vim.py [--machine "2-core CPU container, no GPU"] [--rounds 10] [--out benchmarks]

Target (issue 5): `vim_small` at batch 8, 224², float32 reaches >= 0.5x the images/s of `deit_small_patch16_224`.
Models are timed alternately (so drifting machine load hits both alike), in `torch.inference_mode`, eval mode,
randomly initialised weights; the median of `--rounds` batches is reported. The selective-scan backend is the
automatic choice (or `--backend`) and is written with the results. Before timing, the fast backend's logits are
checked against the reference backend on one image. Writes `NAME.md` and `NAME.csv` (`--name`, default
`vim_cpu`) under `--out`.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from fvcore.nn import FlopCountAnalysis
from tqdm import tqdm

import kernels
import vssm  # noqa: F401  (registers the Vim models)
from kernels.backends import select_backend
from kernels.op import fvcore_handles

# (ours, timm baseline of similar FLOPs); the first pair carries the target.
PAIRS = (("vim_small", "deit_small_patch16_224"), ("vim_tiny", "deit_tiny_patch16_224"))
TARGET = 0.5  # ours / baseline images per second


@dataclass
class Row:
    model: str
    baseline: str
    ours_ms: float
    baseline_ms: float
    batch: int
    ours_gflops: float
    baseline_gflops: float
    target: str
    passed: bool | None

    @property
    def ours_ips(self) -> float:
        return self.batch / self.ours_ms * 1e3

    @property
    def baseline_ips(self) -> float:
        return self.batch / self.baseline_ms * 1e3

    @property
    def ratio(self) -> float:
        return self.ours_ips / self.baseline_ips


def _median_ms(times: list[float]) -> float:
    return sorted(times)[len(times) // 2] * 1e3


def gflops(model: torch.nn.Module) -> float:
    """fvcore GFLOPs of one 224² image (one multiply-add = 1 FLOP; the scan counted by the kernels' handle)."""
    analysis = FlopCountAnalysis(model, torch.randn(1, 3, 224, 224)).set_op_handle(**fvcore_handles())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        return analysis.total() / 1e9


def check_backend(name: str, backend: str) -> float:
    """Max |logit| difference of `backend` against the reference backend on one image (a fast wrong answer is not a
    result)."""
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        with kernels.use_backend(backend):
            fast = model(x)
        with kernels.use_backend("reference"):
            ref = model(x)
    return float((fast - ref).abs().max())


def bench_pair(ours: str, baseline: str, batch: int, rounds: int, backend: str) -> Row:
    models = {name: timm.create_model(name).eval() for name in (ours, baseline)}
    x = torch.randn(batch, 3, 224, 224)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), kernels.use_backend(backend):
        for model in models.values():  # warm-up: allocator, route tables, compiled scan library
            model(x)
        for _ in tqdm(range(rounds), desc=f"{ours} vs {baseline}", leave=False):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    is_target = (ours, baseline) == PAIRS[0]
    row = Row(ours, baseline, _median_ms(times[ours]), _median_ms(times[baseline]), batch,
              gflops(models[ours]), gflops(models[baseline]), f">= {TARGET}x {baseline}" if is_target else "-",
              None)  # fmt: skip
    if is_target:
        row.passed = row.ratio >= TARGET
    return row


def table(rows: list[Row]) -> str:
    lines = [
        "| model | GFLOPs | ms / batch | images/s | baseline | GFLOPs | ms / batch | images/s | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "-" if r.passed is None else ("yes" if r.passed else "NO")
        lines.append(
            f"| {r.model} | {r.ours_gflops:.2f} | {r.ours_ms:.1f} | {r.ours_ips:.2f} | {r.baseline} | "
            f"{r.baseline_gflops:.2f} | {r.baseline_ms:.1f} | {r.baseline_ips:.2f} | {r.ratio:.2f}x | {r.target} | "
            f"{met} |"
        )
    return "\n".join(lines)


def default_machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core CPU container, {gpu}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machine", default=default_machine(), help="machine description written with the results")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder for the results")
    parser.add_argument("--name", default="vim_cpu", help="results file stem: NAME.md, NAME.csv")
    parser.add_argument("--rounds", type=int, default=10, help="timed batches per model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backend", default=None, help="selective-scan backend (default: the automatic choice)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = args.backend or select_backend(torch.device("cpu"), torch.float32).value

    error = check_backend(PAIRS[0][0], backend) if backend != "reference" else 0.0
    rows = [bench_pair(ours, baseline, args.batch, args.rounds, backend) for ours, baseline in PAIRS]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    command = shlex.join(["python", "benchmarks/bench_vim.py", *(sys.argv[1:] if argv is None else argv)])
    header = (
        f"Machine: {args.machine}; torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} "
        f"threads, Python {platform.python_version()}. Selective-scan backend: `{backend}` (max |logit| difference "
        f"to the reference backend on one image: {error:.1e}). Batch {args.batch}, 224², float32, eval, "
        f"inference_mode, random weights; median of {args.rounds} batches, models timed alternately. GFLOPs: fvcore "
        f"per 224² image (1 multiply-add = 1 FLOP; selective scan 9·L·KD·N + L·KD by the kernels' handle). "
        f"Load average after the run (1, 5, 15 min): {load}. OMP_WAIT_POLICY={wait_policy} "
        f"(on a shared, loaded machine OpenMP's spin-waiting slows every model, Vim's many small ops the most).\n"
        f"Command: `{command}`"
    )
    text = f"# Vim CPU throughput\n\n{header}\n\n{table(rows)}\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(text)
    with open(args.out / f"{args.name}.csv", "w", newline="") as handle:
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

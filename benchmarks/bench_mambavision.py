"""MambaVision: CPU inference throughput against timm's ConvNeXt-T in the same run, and FLOPs of every variant.

    python benchmarks/bench_mambavision.py [--machine "2-core CPU container, no GPU"] [--rounds 10] [--out benchmarks]

Throughput target (issue 11): `mambavision_tiny` at batch 8, 224², float32 reaches >= 0.7x the images/s of
`convnext_tiny` (28.6M parameters, 4.5 GMACs). Both models are timed alternately (drifting machine load hits both
alike) in `torch.inference_mode`, eval mode, random weights; the median of `--rounds` batches is reported. The
selective-scan backend is the automatic choice (or `--backend`) and is written with the results; before timing, its
logits are checked against the reference backend on one image.

FLOPs (every registered variant at its pretrained input size, counted on the meta device with torch's
FlopCounterMode, per image):
* `paper` GMACs: the Conv2d and Linear layers, one multiply-add = 1, padded window tokens included. This is the
  convention of the original README: ptflops hooks modules, so it does not see what the original computes
  functionally (the selective scan, SDPA, and the mixer's depthwise conv1d, called as `F.conv1d` on the modules'
  weights).
* `full` G: `paper` plus the attention products (Q·Kᵀ and A·V, MACs), the mixers' depthwise conv1d (MACs) and the
  selective scan (9·L·E·N + L·E operations, the kernels' formula).
Writes `mambavision_cpu.{md,csv}` and `mambavision_flops.{md,csv}` under `--out`.
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
from timm.layers import Attention
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

import kernels
import vssm
from kernels.backends import select_backend
from vssm.layers.mambavision_mixer import MambaVisionMixer

OURS, BASELINE = "mambavision_tiny", "convnext_tiny"
TARGET = 0.7  # ours / baseline images per second
SCAN_OP = "vssm.selective_scan"


@dataclass(frozen=True)
class Flops:
    model: str
    input_size: int
    params: int
    paper_gmacs: float
    attention_gmacs: float
    mixer_conv_gmacs: float
    scan_gops: float

    @property
    def full(self) -> float:
        return self.paper_gmacs + self.attention_gmacs + self.mixer_conv_gmacs + self.scan_gops


def count_flops(name: str) -> Flops:
    """Per-image counts of `name` at its pretrained input size (see the module docstring)."""
    model = timm.create_model(name, device="meta").eval()
    size = model.pretrained_cfg["input_size"]
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, *size, device="meta"))
    counts = counter.get_flop_counts()
    total = sum(counts["Global"].values())
    scan = sum(v for op, v in counts["Global"].items() if str(op) == SCAN_OP)
    modules = dict(model.named_modules(prefix=type(model).__name__))

    def inside(kind: type[nn.Module], op_names: tuple[str, ...]) -> int:
        return sum(
            v
            for path, module in modules.items()
            if isinstance(module, kind)
            for op, v in counts.get(path, {}).items()
            if any(name in str(op) for name in op_names)
        )

    attention = inside(Attention, ("bmm", "attention"))  # SDPA; its linear layers run as addmm
    mixer_conv = inside(MambaVisionMixer, ("convolution",))
    # FlopCounterMode counts 2 per multiply-add for products and the kernels' operation count for the scan.
    paper = (total - scan - attention - mixer_conv) / 2e9
    return Flops(name, size[-1], sum(p.numel() for p in model.parameters()), paper, attention / 2e9,
                 mixer_conv / 2e9, scan / 1e9)  # fmt: skip


def flops_table(rows: list[Flops]) -> str:
    lines = [
        "| model | input | params | paper GMACs (Conv2d + Linear) | attention GMACs | mixer conv1d GMACs | scan G "
        "| full G |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.model} | {r.input_size}² | {r.params / 1e6:.2f}M | {r.paper_gmacs:.2f} | {r.attention_gmacs:.2f} | "
            f"{r.mixer_conv_gmacs:.3f} | {r.scan_gops:.3f} | {r.full:.2f} |"
        )
    return "\n".join(lines)


def check_backend(backend: str) -> float:
    """Max |logit| difference of `backend` against the reference backend on one image."""
    model = timm.create_model(OURS).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        with kernels.use_backend(backend):
            fast = model(x)
        with kernels.use_backend("reference"):
            ref = model(x)
    return float((fast - ref).abs().max())


def time_models(batch: int, rounds: int, backend: str) -> dict[str, float]:
    """Median ms per batch of OURS and BASELINE, timed alternately."""
    models = {name: timm.create_model(name).eval() for name in (OURS, BASELINE)}
    x = torch.randn(batch, 3, 224, 224)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode(), kernels.use_backend(backend):
        for model in models.values():  # warm-up: allocator, compiled scan library
            model(x)
        for _ in tqdm(range(rounds), desc=f"{OURS} vs {BASELINE}", leave=False):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] * 1e3 for name, t in times.items()}


def default_machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core CPU container, {gpu}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machine", default=default_machine(), help="machine description written with the results")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder for the result files")
    parser.add_argument("--rounds", type=int, default=10, help="timed batches per model")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--backend", default=None, help="selective-scan backend (default: the automatic choice)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = args.backend or select_backend(torch.device("cpu"), torch.float32).value
    command = shlex.join(["python", "benchmarks/bench_mambavision.py", *(sys.argv[1:] if argv is None else argv)])
    args.out.mkdir(parents=True, exist_ok=True)

    flops = [count_flops(name) for name in tqdm(vssm.list_models("mambavision_*"), desc="FLOPs", leave=False)]
    flops.sort(key=lambda r: (r.params, r.input_size, r.model))
    flops_text = (
        "# MambaVision FLOPs\n\n"
        "Per image at each model's pretrained input size, counted with torch's FlopCounterMode on the meta device. "
        "`paper`: Conv2d + Linear layers in multiply-adds, padded window tokens included -- the original README's "
        "ptflops convention, which does not see what the original computes functionally (selective scan, SDPA, the "
        "mixers' depthwise conv1d). `full`: `paper` + attention products Q·Kᵀ, A·V + mixer conv1d (multiply-adds) "
        "+ selective scan (9·L·E·N + L·E operations).\n"
        f"Command: `{command}`\n\n{flops_table(flops)}\n"
    )
    (args.out / "mambavision_flops.md").write_text(flops_text)
    with open(args.out / "mambavision_flops.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "input_size", "params", "paper_gmacs", "attention_gmacs", "mixer_conv_gmacs",
                         "scan_gops", "full_g"])  # fmt: skip
        for r in flops:
            writer.writerow([r.model, r.input_size, r.params, f"{r.paper_gmacs:.4f}", f"{r.attention_gmacs:.4f}",
                             f"{r.mixer_conv_gmacs:.4f}", f"{r.scan_gops:.4f}", f"{r.full:.4f}"])  # fmt: skip
    print(flops_text)

    error = check_backend(backend) if backend != "reference" else 0.0
    ms = time_models(args.batch, args.rounds, backend)
    ips = {name: args.batch / t * 1e3 for name, t in ms.items()}
    ratio = ips[OURS] / ips[BASELINE]
    met = ratio >= TARGET
    header = (
        f"Machine: {args.machine}; torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} "
        f"threads, Python {platform.python_version()}. Selective-scan backend: `{backend}` (max |logit| difference "
        f"to the reference backend on one image: {error:.1e}). Batch {args.batch}, 224², float32, eval, "
        f"inference_mode, random weights; median of {args.rounds} batches, the two models timed alternately.\n"
        f"Command: `{command}`"
    )
    table = "\n".join([
        "| model | ms / batch | images/s | baseline | ms / batch | images/s | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {OURS} | {ms[OURS]:.1f} | {ips[OURS]:.2f} | {BASELINE} | {ms[BASELINE]:.1f} | {ips[BASELINE]:.2f} | "
        f"{ratio:.2f}x | >= {TARGET}x | {'yes' if met else 'NO'} |",
    ])  # fmt: skip
    text = f"# MambaVision CPU throughput\n\n{header}\n\n{table}\n"
    print(text)
    (args.out / "mambavision_cpu.md").write_text(text)
    with open(args.out / "mambavision_cpu.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["machine", "backend", "threads", "batch", "model", "ms_per_batch", "images_per_s", "baseline",
                         "baseline_ms_per_batch", "baseline_images_per_s", "ratio", "target", "met"])  # fmt: skip
        writer.writerow([args.machine, backend, torch.get_num_threads(), args.batch, OURS, f"{ms[OURS]:.2f}",
                         f"{ips[OURS]:.3f}", BASELINE, f"{ms[BASELINE]:.2f}", f"{ips[BASELINE]:.3f}", f"{ratio:.3f}",
                         TARGET, met])  # fmt: skip
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())

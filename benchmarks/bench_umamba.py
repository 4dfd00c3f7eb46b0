"""CPU forward time of U-Mamba (2D Bot and Enc) against the same plan's plain residual U-Net, in the same run.

    python benchmarks/bench_umamba.py [--machine "2-core CPU container, no GPU"] [--rounds 10] [--out benchmarks]

Target (issue 12): a 2D UMambaBot forward on 1 × 1 × 256 × 256 within 1.5x the time of the same plan's plain U-Net
(the network with its Mamba layer replaced by identity). The plan is nnU-Net's 2D plan for a 256 × 256 patch
(7 stages, 32..512 features: `umamba_bot_2d`'s default), 1 input channel, 4 classes, no deep supervision. Also timed
for reference: UMambaEnc on the same plan (Mamba after stages 0, 2, 4, 6; full-resolution Mamba on 65,536 tokens).
All networks are timed alternately in `torch.inference_mode`, eval mode, random weights; the median of `--rounds`
forwards is reported, with fvcore GFLOPs, the Mamba layers' sequence sizes and the activation memory training keeps
(whole network and per Mamba layer). Writes `umamba_cpu.md` and
`umamba_cpu.csv` under `--out`.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn
from tqdm import tqdm

import kernels
from kernels.backends import select_backend
from kernels.op import fvcore_handles
from vssm.layers.map_mamba import MapMamba, MapTokens
from vssm.models.umamba import MambaPlacement, UMamba, UMambaPlan

PLAN = UMambaPlan(
    features_per_stage=(32, 64, 128, 256, 512, 512, 512),
    kernel_sizes=((3, 3),) * 7,
    strides=((1, 1),) + ((2, 2),) * 6,
    n_conv_per_stage=(2,) * 7,
    n_conv_per_stage_decoder=(2,) * 6,
    patch_size=(256, 256),
)
TARGET = 1.5  # UMambaBot time / plain U-Net time
BASELINE = "plain residual U-Net (same plan, no Mamba)"


@dataclass
class Row:
    network: str
    gflops: float
    saved_mib: float
    mamba_saved_mib: str
    ms: float
    ratio: float
    target: str
    met: bool | None


def plain(network: UMamba) -> UMamba:
    """The same network (same weights) with every Mamba layer replaced by identity."""
    encoder = network.encoder
    encoder.mamba_layers = nn.ModuleList(nn.Identity() for _ in encoder.mamba_layers)
    encoder.mamba_tokens = [None] * len(encoder.mamba_layers)
    return network


def gflops(network: nn.Module, x: torch.Tensor) -> float:
    analysis = FlopCountAnalysis(network, x).set_op_handle(**fvcore_handles())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        return analysis.total() / 1e9


def mamba_sizes(network: UMamba) -> str:
    """Per Mamba layer: stage, tokens, sequence length L and width d_model (inner width 2·d_model)."""
    sizes = network.plan.feature_map_sizes(network.plan.patch_size)
    parts = []
    for s, layer in enumerate(network.encoder.mamba_layers):
        if isinstance(layer, MapMamba):
            patch = layer.tokens is MapTokens.PATCH
            length = math.prod(sizes[s]) if patch else network.plan.features_per_stage[s]
            parts.append(f"s{s} {layer.tokens.value} L={length} d={layer.d_model}")
    return "; ".join(parts)


def saved_mib(fn: Callable[[], object]) -> float:
    """MiB of the tensors autograd saves for the backward of `fn()` (each storage counted once)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values()) / 2**20


def memory(network: UMamba, x: torch.Tensor) -> tuple[float, str]:
    """Training activations saved for the backward (batch 1): the whole network, and each Mamba layer on its map."""
    network.train()
    total = saved_mib(lambda: network(x))
    parts = []
    with torch.no_grad():
        h = network.encoder.stem(x)
    for s, (stage, layer) in enumerate(zip(network.encoder.stages, network.encoder.mamba_layers)):
        with torch.no_grad():
            h = stage(h)
        if isinstance(layer, MapMamba):
            parts.append(f"s{s} {saved_mib(lambda layer=layer, h=h: layer(h)):.1f}")
        with torch.no_grad():
            h = layer(h)
    network.eval()
    return total, "; ".join(parts)


def bench(rounds: int, backend: str) -> tuple[list[Row], dict[str, str]]:
    torch.manual_seed(0)
    networks = {
        "UMambaBot 2D": UMamba(PLAN, num_classes=4, in_chans=1, placement=MambaPlacement.BOT).eval(),
        "UMambaEnc 2D": UMamba(PLAN, num_classes=4, in_chans=1, placement=MambaPlacement.ENC).eval(),
        BASELINE: plain(UMamba(PLAN, num_classes=4, in_chans=1, placement=MambaPlacement.BOT)).eval(),
    }
    layers = {label: mamba_sizes(net) for label, net in networks.items()}
    x = torch.randn(1, 1, *PLAN.patch_size)
    with kernels.use_backend(backend):
        saved = {label: memory(net, x) for label, net in networks.items()}
    times: dict[str, list[float]] = {label: [] for label in networks}
    with torch.inference_mode(), kernels.use_backend(backend):
        for network in networks.values():  # warm-up: allocator, route tables, compiled scan library
            network(x)
        for _ in tqdm(range(rounds), desc="rounds", leave=False):
            for label, network in networks.items():
                start = time.perf_counter()
                network(x)
                times[label].append(time.perf_counter() - start)
    base_ms = statistics.median(times[BASELINE]) * 1e3
    rows = []
    for label, network in networks.items():
        ms = statistics.median(times[label]) * 1e3
        target = label == "UMambaBot 2D"
        rows.append(Row(label, gflops(network, x), *saved[label], ms, ms / base_ms,
                        f"<= {TARGET}x baseline" if target else "-", ms / base_ms <= TARGET if target else None))
    return rows, layers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core CPU container, {gpu}")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="folder for umamba_cpu.md / .csv")
    parser.add_argument("--rounds", type=int, default=10, help="timed forwards per network")
    parser.add_argument("--backend", default=None, help="selective-scan backend (default: the automatic choice)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = args.backend or select_backend(torch.device("cpu"), torch.float32).value
    rows, layers = bench(args.rounds, backend)
    command = shlex.join(["python", "benchmarks/bench_umamba.py", *(sys.argv[1:] if argv is None else argv)])
    header = (
        f"Machine: {args.machine}; torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} "
        f"threads, Python {platform.python_version()}. Selective-scan backend: `{backend}`. Input 1 × 1 × 256 × 256, "
        f"float32, eval, inference_mode, random weights, no deep supervision; median of {args.rounds} forwards, the "
        f"networks timed alternately in one run. Plan: nnU-Net's 2D plan for 256² (features "
        f"{list(PLAN.features_per_stage)}, 3 × 3 kernels, stride 2 below stage 0, 2 blocks per stage before U-Mamba's "
        f"surgery). GFLOPs: fvcore (1 multiply-add = 1 FLOP; the scan by the kernels' handle). Saved MiB: the "
        f"training activations autograd keeps for the backward at batch 1 (each storage once), for the whole "
        f"network and for each Mamba layer alone (stage: MiB).\n"
        f"Command: `{command}`"
    )
    lines = ["| network | GFLOPs | ms / forward | ratio to baseline | target | met | saved MiB | Mamba layers | "
             "Mamba saved MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        met = "-" if r.met is None else ("yes" if r.met else "no")
        lines.append(f"| {r.network} | {r.gflops:.2f} | {r.ms:.1f} | {r.ratio:.2f}x | {r.target} | {met} | "
                     f"{r.saved_mib:.0f} | {layers[r.network] or '-'} | {r.mamba_saved_mib or '-'} |")  # fmt: skip
    text = f"# U-Mamba CPU forward\n\n{header}\n\n" + "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "umamba_cpu.md").write_text(text)
    with open(args.out / "umamba_cpu.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["machine", "backend", "threads", "network", "gflops", "ms_per_forward", "ratio_to_baseline",
                         "baseline", "target", "met", "saved_mib", "mamba_layers", "mamba_saved_mib"])
        for r in rows:
            writer.writerow([args.machine, backend, torch.get_num_threads(), r.network, f"{r.gflops:.3f}",
                             f"{r.ms:.2f}", f"{r.ratio:.3f}", BASELINE, r.target, "" if r.met is None else r.met,
                             f"{r.saved_mib:.1f}", layers[r.network], r.mamba_saved_mib])  # fmt: skip
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Inference and training-step throughput (images/s) and peak memory of vssm models, with timm baselines.

    python tools/benchmark.py                                   # headline variants, CPU, batch 1, 224², inference
    python tools/benchmark.py vim_small vmamba_tiny --batch 1 8 --resolution 160 224 --mode inference train
    python tools/benchmark.py vmamba_tiny --device cuda --amp bf16 --channels-last --compile --batch 64
    python tools/benchmark.py vim_small --compare deit_small_patch16_224 --repeats 20 --output runs/vim_vs_deit

Each configuration gets `--warmup` untimed steps, then `--repeats` timed steps between device synchronisations;
the median step is reported with the fastest and slowest as the spread (vssm/analysis/benchmark.py). The models and
the `--compare` baselines (built through timm in the same process) are timed at the same settings in turn, one step
each per round, so drifting machine load hits them alike; the load average before and after the run is recorded,
and a one-line warning says when the machine was busy (load above the threads the run uses). Writes
`<output>/<name>.csv`, `.md` (machine, load and command named) and `.png` (throughput against resolution per model),
by default under runs/benchmark/.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vssm.analysis.benchmark import Measurement

# torch, timm and the models take 5-50 s to import (more on a loaded machine): they are imported in `run`, after the
# arguments are parsed, so that --help and argument errors answer at once. Hence the literal choices below; the
# tests check them against vssm.analysis.benchmark.Mode and vssm.engine.add_amp_argument.
MODES = ("inference", "train")
AMP_CHOICES = ("bf16", "fp16")
OUTPUT = Path("runs") / "benchmark"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model names (default: the headline variant of every family)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes (default 1)")
    parser.add_argument("--resolution", nargs="+", default=["224"], help="input sizes 'S' or 'HxW' (default 224)")
    parser.add_argument("--mode", nargs="+", default=["inference"], choices=MODES)
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--amp", choices=AMP_CHOICES, help="autocast to bf16 or fp16 (default: fp32, no autocast)")
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (compiled during warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per configuration (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (default 5)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="TIMM_MODEL",
                        help="timm baselines timed at the same settings; ratios are ours / the first baseline")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    parser.add_argument("--name", help="output file stem (default throughput_<device>)")
    parser.add_argument("--machine", help="how to name the machine in the outputs (default: detected)")
    args = parser.parse_args(argv)
    for option in ("batch", "repeats"):
        values = getattr(args, option)
        if min(values if isinstance(values, list) else [values]) < 1:
            parser.error(f"--{option}: expected positive integers, got {values}")
    if args.warmup < 0:
        parser.error(f"--warmup: expected >= 0, got {args.warmup}")
    return args


def _ratio(row: Measurement, baseline: Measurement | None) -> str:
    return f"{row.images_per_s / baseline.images_per_s:.2f}x" if baseline else "-"


def csv_rows(results: list[tuple[Measurement, Measurement | None]], machine: str,
             load: tuple[str, str]) -> list[dict[str, object]]:
    rows = []
    for m, baseline in results:
        slow, fast = m.images_per_s_range
        rows.append({
            "machine": machine, "model": m.model, "mode": m.mode, "device": m.device, "precision": m.precision,
            "channels_last": m.channels_last, "compiled": m.compiled, "batch": m.batch, "height": m.height,
            "width": m.width, "repeats": m.repeats, "images_per_s": round(m.images_per_s, 4),
            "images_per_s_min": round(slow, 4), "images_per_s_max": round(fast, 4),
            "ms_median": round(m.ms_median, 3), "ms_min": round(m.ms_min, 3), "ms_max": round(m.ms_max, 3),
            "spread_pct": round(m.spread_pct, 1),
            "peak_memory_mb": None if m.peak_memory_mb is None else round(m.peak_memory_mb, 1),
            "params": m.params, "baseline": baseline.model if baseline else "",
            "baseline_images_per_s": round(baseline.images_per_s, 4) if baseline else "",
            "ratio": round(m.images_per_s / baseline.images_per_s, 4) if baseline else "",
            "load_average_start": load[0], "load_average_end": load[1],
        })
    return rows


def markdown(results: list[tuple[Measurement, Measurement | None]], machine: str, command: str,
             settings_text: str, load: tuple[str, str]) -> str:
    from vssm.analysis.tables import markdown_table

    headers = ["model", "mode", "batch", "input", "precision", "images/s", "slowest-fastest", "spread",
               "ms / step", "peak MB", "vs baseline"]
    rows = []
    for m, baseline in results:
        slow, fast = m.images_per_s_range
        peak = "-" if m.peak_memory_mb is None else f"{m.peak_memory_mb:.0f}"
        rows.append([m.model, m.mode, m.batch, f"{m.height}x{m.width}", m.precision, f"{m.images_per_s:.3g}",
                     f"{slow:.3g}-{fast:.3g}", f"{m.spread_pct:.0f} %", f"{m.ms_median:.1f}", peak,
                     _ratio(m, baseline)])
    right = [False, False, True, True, False, True, True, True, True, True, True]
    return (f"# Throughput\n\nMachine: {machine}. Load average (1, 5, 15 min): {load[0]} at the start, {load[1]} "
            f"at the end.\n{settings_text}\nCommand: `{command}`\n\n" + markdown_table(headers, rows, right) + "\n")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv), argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    import torch
    from tqdm import tqdm

    import vssm  # noqa: F401  (registers the models)
    from vssm import zoo
    from vssm.analysis.benchmark import BenchSettings, Mode, measure_alternately
    from vssm.analysis.plots import plot_throughput
    from vssm.analysis.tables import busy_warning, load_average, machine_description, write_csv
    from vssm.engine import Precision, resolve_device

    try:
        device = resolve_device(args.device)
        names = zoo.resolve_names(args.models, allow_timm=True) if args.models else zoo.headline_variants()
        baselines = zoo.resolve_names(args.compare, allow_timm=True)
        sizes = [zoo.parse_input_size(r)[1:] for r in args.resolution]
        for name, size in product([*names, *baselines], sizes):  # every bad size is reported before building
            zoo.check_input_size(name, (3, *size))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    precision = Precision.from_flag(args.amp)
    amp = None if precision is Precision.FP32 else precision.dtype
    warning = busy_warning(torch.get_num_threads())
    if warning:
        print(warning, file=sys.stderr)
    load_start = load_average()
    configs = list(product([Mode(m) for m in args.mode], args.batch))
    ours: list[tuple[Measurement, Measurement | None]] = []
    theirs: list[tuple[Measurement, Measurement | None]] = []
    progress = tqdm(total=len(sizes) * len(configs) * (len(names) + len(baselines)) * args.repeats,
                    desc="benchmark", unit="step", file=sys.stderr)
    for size in sizes:
        models = {n: zoo.create(n, (3, *size)) for n in [*names, *baselines]}
        for mode, batch in configs:
            settings = BenchSettings(mode=mode, batch=batch, image_size=size, amp_dtype=amp,
                                     channels_last=args.channels_last, compile=args.compile, warmup=args.warmup,
                                     repeats=args.repeats, device=str(device))
            progress.set_postfix_str(f"{mode.value} b{batch} {size[0]}x{size[1]}")
            measured = measure_alternately(models, settings, progress)
            first = measured[baselines[0]] if baselines else None
            ours += [(measured[name], first) for name in names]
            theirs += [(measured[baseline], None) for baseline in baselines]
    progress.close()
    load = (load_start, load_average())
    all_rows = ours + theirs
    machine = machine_description(device, args.machine)
    command = " ".join(["python tools/benchmark.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    settings_text = (f"Device {device}, {'amp ' + args.amp if args.amp else 'float32'}"
                     f"{', channels_last' if args.channels_last else ''}{', torch.compile' if args.compile else ''}; "
                     f"{args.warmup} warm-up + {args.repeats} timed steps per row (median; slowest-fastest step as "
                     f"spread); training step = forward + backward + SGD. Random weights and inputs.")
    text = markdown(all_rows, machine, command, settings_text, load)
    print(text)
    stem = args.name or f"throughput_{device.type}"
    write_csv(args.output / f"{stem}.csv", csv_rows(all_rows, machine, load))
    (args.output / f"{stem}.md").write_text(text)
    plot_throughput([m for m, _ in all_rows], args.output / f"{stem}.png", f"{machine}\n{settings_text}",
                    baselines=baselines)
    print(f"wrote {args.output / stem}.csv, .md, .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Inference and training-step throughput (images/s) and peak memory of vssm models, with timm baselines.

    python tools/benchmark.py                                   # headline variants, CPU, batch 1, 224², inference
    python tools/benchmark.py vim_small vmamba_tiny --batch 1 8 --resolution 160 224 --mode inference train
    python tools/benchmark.py vmamba_tiny --device cuda --amp bfloat16 --channels-last --compile --batch 64
    python tools/benchmark.py vim_small --compare deit_small_patch16_224 --repeats 20

Each configuration gets `--warmup` untimed steps, then `--repeats` timed steps between device synchronisations;
the median step is reported with the fastest and slowest as the spread (vssm/analysis/benchmark.py). The models and
the `--compare` baselines (built through timm in the same process) are timed at the same settings in turn, one step
each per round, so drifting machine load hits them alike. Writes `<out>/<name>.csv`, `.md` (machine and command named)
and `.png` (throughput against resolution per model).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from itertools import product
from pathlib import Path

import torch
from tqdm import tqdm

import vssm  # noqa: F401  (registers the models)
from vssm.analysis import zoo
from vssm.analysis.benchmark import AMP_DTYPES, BenchSettings, Measurement, Mode, measure_alternately
from vssm.analysis.plots import plot_throughput
from vssm.analysis.tables import machine_description, markdown_table, write_csv


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model names (default: the headline variant of every family)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes (default 1)")
    parser.add_argument("--resolution", nargs="+", default=["224"], help="input sizes 'S' or 'HxW' (default 224)")
    parser.add_argument("--mode", nargs="+", default=["inference"], choices=[m.value for m in Mode])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", choices=sorted(AMP_DTYPES), help="autocast dtype (default: float32, no autocast)")
    parser.add_argument("--channels-last", action="store_true", help="model and input in channels_last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (compiled during warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per configuration (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration (default 5)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="TIMM_MODEL",
                        help="timm baselines timed at the same settings; ratios are ours / the first baseline")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"), help="output directory (default benchmarks/)")
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


def csv_rows(results: list[tuple[Measurement, Measurement | None]], machine: str) -> list[dict[str, object]]:
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
        })
    return rows


def markdown(results: list[tuple[Measurement, Measurement | None]], machine: str, command: str,
             settings_text: str) -> str:
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
    return (f"# Throughput\n\nMachine: {machine}.\n{settings_text}\nCommand: `{command}`\n\n"
            + markdown_table(headers, rows, right) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = zoo.resolve_names(args.models, allow_timm=True) if args.models else zoo.headline_variants()
        baselines = zoo.resolve_names(args.compare, allow_timm=True)
        sizes = [zoo.parse_input_size(r)[1:] for r in args.resolution]
        for name, size in product([*names, *baselines], sizes):  # every bad size is reported before building
            zoo.check_input_size(name, (3, *size))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    amp = AMP_DTYPES[args.amp] if args.amp else None
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
                                     repeats=args.repeats, device=args.device)
            progress.set_postfix_str(f"{mode.value} b{batch} {size[0]}x{size[1]}")
            measured = measure_alternately(models, settings, progress)
            first = measured[baselines[0]] if baselines else None
            ours += [(measured[name], first) for name in names]
            theirs += [(measured[baseline], None) for baseline in baselines]
    progress.close()
    all_rows = ours + theirs
    machine = machine_description(args.device, args.machine)
    command = " ".join(["python tools/benchmark.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    settings_text = (f"Device {args.device}, {'amp ' + args.amp if args.amp else 'float32'}"
                     f"{', channels_last' if args.channels_last else ''}{', torch.compile' if args.compile else ''}; "
                     f"{args.warmup} warm-up + {args.repeats} timed steps per row (median; slowest-fastest step as "
                     f"spread); training step = forward + backward + SGD. Random weights and inputs.")
    text = markdown(all_rows, machine, command, settings_text)
    print(text)
    stem = args.name or f"throughput_{torch.device(args.device).type}"
    write_csv(args.out / f"{stem}.csv", csv_rows(all_rows, machine))
    (args.out / f"{stem}.md").write_text(text)
    plot_throughput([m for m, _ in all_rows], args.out / f"{stem}.png", f"{machine}\n{settings_text}",
                    baselines=baselines)
    print(f"wrote {args.out / stem}.csv, .md, .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

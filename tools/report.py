"""The main job (`make report`): the zoo report a user chooses a backbone from.

    python tools/report.py                   # every family: all variants counted, the headline variant measured
    python tools/report.py --all             # measure every variant too (long: the largest take minutes each)
    python tools/report.py vim_small vmamba_tiny --batch 8 --repeats 10
    python tools/report.py --test-variants --output /tmp/zoo           # the tiny test models (tests)
    python tools/report.py --update-repo     # refresh the committed reports/ and model cards (`make refresh`)

For every registered family (found through `vssm.list_models()`, so families that land later join by themselves):
count parameters and FLOPs of every variant (`macs`, `full`, and the family's original counter against the
published count), and for the measured variants build the model, check its fast path against the reference path
on a small input, and time CPU inference. Measure every golden fixture found under `--fixtures` against the
original code's outputs (tools/upkeep/faithfulness.py) and read the speed targets' results (`--targets`, written
by `python benchmarks/targets.py`, which `make report` runs first) and the compile and export status
(`--export-status`, written by `python benchmarks/export_status.py`). Writes `<output>/zoo.md` (machine and load
named), `zoo.csv` and `zoo.png`, and copies of the model cards, `<output>/model_cards/*.md`, with the generated tables
between their markers refreshed (tools/upkeep/cards.py); the output folder is runs/report/ unless named. Only
`--update-repo` writes into the repository: reports/ and the cards of model_cards/ in place.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upkeep.zoo_report import Entry

# torch, timm and the models take 5-50 s to import (more on a loaded machine): they are imported where they are used,
# after the arguments are parsed, so that --help and argument errors answer at once.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tools") not in sys.path:  # tools/upkeep, the report's code (not installed), also when loaded by path
    sys.path.append(str(ROOT / "tools"))
OUTPUT = Path("runs") / "report"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="report only these models (counted and measured)")
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument("--all", action="store_true", help="measure every variant, not only the headline ones")
    selection.add_argument("--test-variants", action="store_true", help="report the tiny test_* variants only")
    parser.add_argument("--batch", type=int, default=1, help="inference batch for throughput (default 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps (default 3)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT,
                       help=f"output folder: the report and refreshed copies of the cards (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true",
                       help="refresh the committed files instead: reports/ and the cards of --cards in place")
    parser.add_argument("--cards", type=Path, default=ROOT / "model_cards",
                        help="model cards whose generated tables to refresh (default model_cards/)")
    parser.add_argument("--no-cards", action="store_true", help="leave the model cards out")
    parser.add_argument("--machine", help="how to name the machine (default: detected)")
    parser.add_argument("--targets", type=Path, default=ROOT / "benchmarks" / "targets.csv",
                        help="speed-targets results to show (default benchmarks/targets.csv)")
    parser.add_argument("--export-status", type=Path, default=ROOT / "benchmarks" / "export_status.csv",
                        help="compile and export status for the cards (default benchmarks/export_status.csv, written "
                             "by python benchmarks/export_status.py)")
    parser.add_argument("--fixtures", type=Path, default=ROOT / "tests" / "fixtures",
                        help="golden fixtures to measure our models on (default tests/fixtures)")
    args = parser.parse_args(argv)
    for option in ("batch", "repeats"):
        if getattr(args, option) < 1:
            parser.error(f"--{option}: expected a positive integer, got {getattr(args, option)}")
    if args.warmup < 0:
        parser.error(f"--warmup: expected >= 0, got {args.warmup}")
    if args.update_repo:
        args.output = ROOT / "reports"
    return args


def selection(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(variants to count, variants to measure)."""
    from vssm import zoo

    if args.models:
        names = zoo.resolve_names(args.models)
        return names, names
    if args.test_variants:
        names = zoo.test_variants()
        return names, names
    counted = [name for variants in zoo.families().values() for name in variants]
    return counted, counted if args.all else zoo.headline_variants()


def shown(path: Path) -> str:
    """A path as the report names it: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def cards_to_refresh(args: argparse.Namespace) -> Path | None:
    """The folder whose cards get their tables refreshed: --cards itself with --update-repo, else copies of its cards
    in `<output>/model_cards` (None without cards)."""
    if args.no_cards or not args.cards.is_dir():
        return None
    if args.update_repo:
        return args.cards
    copies = args.output / "model_cards"
    copies.mkdir(parents=True, exist_ok=True)
    for card in args.cards.glob("*.md"):
        shutil.copyfile(card, copies / card.name)
    return copies


def report_markdown(entries: list[Entry], failures: dict[str, str], machine: str, command: str, settings_text: str,
                    elapsed: float, load: tuple[str, str], targets_text: str, faithfulness_text: str) -> str:
    from upkeep.zoo_report import choose_table, published_table
    from vssm.analysis.flops import CONVENTION_TEXT, Convention
    from vssm.analysis.published import PUBLISHED_COUNTERS

    measured = sum(e.speed is not None for e in entries)
    counters = "\n".join(f"  - {key}: {c.name}: {c.description}." for key, c in PUBLISHED_COUNTERS.items())
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    errors = "".join(f"\n- {name}: {message}" for name, message in failures.items())
    errors = f"\n## Errors\n{errors}\n" if errors else ""
    return f"""# vssm model zoo

Generated by `make report` (`{command}`) on {date} in {elapsed / 60:.1f} min.
Every number on this page is computed by the tools from the registered models; nothing is typed by hand.

Machine: {machine}. Load average (1, 5, 15 min): {load[0]} at the start, {load[1]} at the end. Measured: {measured}
variants, {settings_text}.

## Choosing a backbone

Parameters and FLOPs per image at each model's input size. `GMACs` is what the papers print as "GFLOPs"
(conventions below). The fast-path check runs one small input through the automatic scan backend, the reference
backend and the reference in float64, and applies `kernels.tolerances`' rule to the logits: error <= 2 x the float32
reference's own error + 1e-5 x scale.

{choose_table(entries)}

![params, GMACs and CPU throughput](zoo.png)

## Against the published counts

Ours under each family's original counter (rebuilt on our counter, `vssm/analysis/published.py`) against the
authors' numbers: "exact" is the integer printed in the original code, "N digits" agreement to the N significant
digits of the most precise published value (where the authors printed a rounded number only, their counter's rule
worked through the network layer by layer; sources below the table).

{published_table(entries)}

## Speed targets

{targets_text}

## Faithfulness to the original code

{faithfulness_text}

## Conventions

- `macs` (GMACs): {CONVENTION_TEXT[Convention.MACS]}. A depthwise convolution written as shifted multiply-adds
  (the Vim and MambaVision mixers, for CPU speed) is element-wise work here, as it would be for fvcore.
- `full` (GFLOPs): {CONVENTION_TEXT[Convention.FULL]}.
- Original counters:
{counters}

Recount any model at any size with `python tools/flops.py MODEL --input-size S [--by-module]`; benchmark with
`python tools/benchmark.py MODEL --batch ... --resolution ... [--compare TIMM_MODEL]`.
{errors}"""


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv), argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    import torch
    from tqdm import tqdm

    from upkeep import faithfulness
    from upkeep.cards import refresh_cards
    from upkeep.exports import read_status, with_export_tables
    from upkeep.targets import read_results
    from upkeep.zoo_plot import plot_zoo
    from upkeep.zoo_report import card_tables, count_entry, measure_entry, targets_markdown
    from vssm import zoo
    from vssm.analysis.benchmark import BenchSettings
    from vssm.analysis.tables import load_average, machine_description, write_csv

    started = time.perf_counter()
    load_start = load_average()
    try:
        counted, measured = selection(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not counted:
        print("no vssm model families are registered yet", file=sys.stderr)
        return 0
    # One model's failure is reported (in the page and the exit status), not allowed to stop the others.
    cache: dict = {}
    entries: dict[str, Entry] = {}
    failures: dict[str, str] = {}
    for name in tqdm(counted, desc="counting FLOPs", unit="model", file=sys.stderr):
        try:
            entries[name] = count_entry(name, cache)
        except Exception as exc:
            failures[name] = f"counting: {type(exc).__name__}: {exc}"
    settings = BenchSettings(batch=args.batch, warmup=args.warmup, repeats=args.repeats, device="cpu")
    for name in tqdm([n for n in measured if n in entries], desc="checking and timing", unit="model",
                     file=sys.stderr):
        try:
            entries[name] = measure_entry(entries[name], settings)
        except Exception as exc:
            entries[name] = replace(entries[name], error=f"{type(exc).__name__}: {exc}")
            failures[name] = f"checking and timing: {entries[name].error}"
    rows = sorted(entries.values(), key=lambda e: (e.family, e.macs, e.name))
    golden: list[faithfulness.Faithfulness] = []
    for folder, ours in tqdm(faithfulness.fixtures_in(args.fixtures, {e.family for e in rows}),
                             desc="golden fixtures", unit="fixture", file=sys.stderr):
        try:
            golden.append(faithfulness.measure_fixture(faithfulness.load_fixture(folder), ours))
        except Exception as exc:
            failures[folder.name] = f"golden fixture: {type(exc).__name__}: {exc}"
            continue
        if not golden[-1].ok:
            failures[folder.name] = "differs from the original code's outputs beyond the golden fixtures' rule"
    try:
        targets = read_results(args.targets)
    except ValueError as exc:
        targets, failures["speed targets"] = [], str(exc)
    try:
        export_status = read_status(args.export_status)
    except ValueError as exc:
        export_status, failures["export status"] = [], str(exc)

    machine = machine_description("cpu", args.machine)
    command = " ".join(["python tools/report.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    settings_text = (f"CPU inference, float32, batch {args.batch}, {args.warmup} warm-up + {args.repeats} timed "
                     f"steps, median (range: slowest-fastest step), {torch.get_num_threads()} threads, random weights")
    args.output.mkdir(parents=True, exist_ok=True)
    plot_zoo([e.name for e in rows], [e.family for e in rows], [e.params / 1e6 for e in rows],
             [e.macs / 1e9 for e in rows], [e.speed.images_per_s if e.speed else None for e in rows],
             args.output / "zoo.png", f"vssm zoo at each model's input size; CPU images/s on {machine}")
    write_csv(args.output / "zoo.csv", [{
        "family": e.family, "model": e.name, "input": "x".join(map(str, e.input_size)), "params": e.params,
        "macs": e.macs, "full_flops": e.full, "original_counter_macs": e.original,
        "published_g": e.reference.reference if e.reference else None, "agreement": e.agreement,
        "images_per_s": round(e.speed.images_per_s, 4) if e.speed else None,
        "ms_per_image": round(e.speed.ms_median / e.speed.batch, 2) if e.speed else None,
        "peak_memory_mb": e.speed.peak_memory_mb if e.speed else None,
        "fast_path_ok": e.check.ok if e.check else None, "fast_path_error": e.check.error if e.check else None,
        "machine": machine if e.speed else None,
    } for e in rows])
    cards = cards_to_refresh(args)
    if cards is not None:
        tables = with_export_tables(card_tables(rows, machine, settings_text, targets, shown(args.targets), golden),
                                    export_status, zoo.families(), shown(args.export_status))
        for update in refresh_cards(cards, tables, set(zoo.families())):
            if update.changed or update.skipped:
                print(f"{shown(update.path)}: refreshed {', '.join(update.refreshed) or 'nothing'}"
                      + (f"; left alone {', '.join(update.skipped)}" if update.skipped else "")
                      + ("; appended the generated section" if update.appended else ""), file=sys.stderr)
    for entry in rows:
        if entry.check is not None and not entry.check.ok:
            failures[entry.name] = (f"fast path ({entry.check.backend}) differs from the reference beyond tolerance: "
                                    f"{entry.check.error:.2e} > {entry.check.bound:.2e}")
    load = (load_start, load_average())
    targets_text = targets_markdown(targets, shown(args.targets)) or (
        f"No results at `{shown(args.targets)}`: run `python benchmarks/targets.py` (`make report` does).")
    faithfulness_text = (faithfulness.faithfulness_markdown(golden)
                         or f"No golden fixtures found under `{shown(args.fixtures)}`.")
    text = report_markdown(rows, failures, machine, command, settings_text, time.perf_counter() - started, load,
                           targets_text, faithfulness_text)
    (args.output / "zoo.md").write_text(text)
    print(text)
    print(f"wrote {shown(args.output)}/zoo.md, zoo.csv, zoo.png"
          + (f" and the cards in {shown(cards)}/" if cards is not None else ""), file=sys.stderr)
    for name, message in failures.items():
        print(f"error: {name}: {message}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Parameters and FLOPs of vssm models (or any timm model) at any input size, under named conventions.

    python tools/flops.py                                  # the headline variant of every family, 224² (or native)
    python tools/flops.py vim_small vmamba_tiny --input-size 160x224 --convention macs full
    python tools/flops.py vmamba_tiny --by-module --depth 2
    python tools/flops.py --all --fvcore --csv flops.csv --markdown flops.md

Conventions (printed with every table): `macs` is fvcore's rule, one per multiply-add, what the papers print as
"FLOPs" (with the selective scan as 9·B·L·D·N + B·D·L); `full` counts every op in FLOPs (2 per multiply-add);
`published` is the family's original counter (`vssm.analysis.published.PUBLISHED_COUNTERS`: VMamba's fvcore rule for
VMamba, MSVMamba and GroupMamba, LocalVMamba's fvcore rule, VMamba's analyze_for_vim for Vim, ptflops for MambaVision,
mmcv's module hooks plus its get_flops.py's SSM term for PlainMamba). Counts are per image; `--backward` adds the
backward pass. `--fvcore` recounts `macs` with fvcore.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vssm.analysis.flops import Convention, ModelFlops

# torch, timm and the models take 5-50 s to import (more on a loaded machine): they are imported in `run`, after the
# arguments are parsed, so that --help and argument errors answer at once. Hence the literal choices (the tests check
# them against vssm.analysis.flops.Convention).
CONVENTIONS = ("macs", "full", "published")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model names (default: the headline variant of every family)")
    parser.add_argument("--all", action="store_true", help="every registered vssm variant (test variants excluded)")
    parser.add_argument("--input-size", help="'S', 'HxW' or 'CxHxW' (default: each model's own)")
    parser.add_argument("--batch", type=int, default=1, help="batch of the traced input (counts are per image)")
    parser.add_argument("--convention", nargs="+", default=list(CONVENTIONS), choices=CONVENTIONS,
                        help="conventions to count (default: all)")
    parser.add_argument("--backward", action="store_true", help="count forward + backward (macs and full only)")
    parser.add_argument("--by-module", action="store_true", help="print a per-module breakdown for each model")
    parser.add_argument("--depth", type=int, default=2, help="module depth of --by-module (default 2)")
    parser.add_argument("--fvcore", action="store_true", help="cross-check `macs` with fvcore (real forward)")
    parser.add_argument("--csv", type=Path, help="also write the table as CSV")
    parser.add_argument("--markdown", type=Path, help="also write the table (and conventions) as markdown")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch: expected a positive integer, got {args.batch}")
    if args.depth < 0:
        parser.error(f"--depth: expected >= 0, got {args.depth}")
    return args


def _giga(counts: ModelFlops, convention: Convention, batch: int) -> str:
    result = counts.results.get(convention)
    return f"{result.total / batch / 1e9:.4f}" if result else "-"


def summary_rows(all_counts: list[ModelFlops], conventions: list[Convention], batch: int) -> list[dict[str, str]]:
    from vssm.analysis.flops import Convention

    rows = []
    for counts in all_counts:
        row = {"model": counts.name, "input": "x".join(map(str, counts.input_size)),
               "params (M)": f"{counts.params / 1e6:.2f}"}
        for convention in conventions:
            row[f"G{convention.unit} ({convention.value})"] = _giga(counts, convention, batch)
        if Convention.PUBLISHED in conventions:
            row["published (G)"] = counts.reference.reference if counts.reference else "-"
            row["agreement"] = counts.agreement or "-"
        if counts.fvcore is not None:
            row["fvcore GMACs"] = f"{counts.fvcore / batch / 1e9:.4f}"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vssm import zoo
    from vssm.analysis.flops import CONVENTION_TEXT, Convention, count_model, format_count, module_rows
    from vssm.analysis.tables import markdown_table, write_csv

    try:
        names = zoo.resolve_names(args.models, allow_timm=True) if args.models else (
            [n for variants in zoo.families().values() for n in variants] if args.all else zoo.headline_variants())
        sizes = {n: zoo.parse_input_size(args.input_size) if args.input_size else zoo.default_input_size(n)
                 for n in names}
        for name, size in sizes.items():  # every bad size is reported before anything is built
            zoo.check_input_size(name, size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    conventions = [Convention(c) for c in args.convention]
    all_counts = []
    for name in tqdm(names, desc="counting", unit="model", file=sys.stderr):
        all_counts.append(count_model(name, sizes[name], tuple(conventions), batch=args.batch,
                                      backward=args.backward, with_fvcore=args.fvcore))

    rows = summary_rows(all_counts, conventions, args.batch)
    headers = list(rows[0]) if rows else []
    table = markdown_table(headers, [list(r.values()) for r in rows], right=[h != "model" for h in headers])
    notes = [f"Per image, batch {args.batch}" + (", forward + backward." if args.backward else ", forward."),
             *(f"- `{c.value}` ({c.unit}): {CONVENTION_TEXT[c]}" for c in conventions)]
    if Convention.PUBLISHED in conventions:
        for counts in all_counts:
            result = counts.results.get(Convention.PUBLISHED)
            notes.append(f"- {counts.name}, published convention: "
                         + (result.description if result else "none (no original counter for this family)"))
    print(table)
    print("\n".join(notes))
    if args.by_module:
        for counts in all_counts:
            macs = counts.results.get(Convention.MACS) or next(iter(counts.results.values()))
            print(f"\n{counts.name} by module ({macs.convention.value}, {macs.unit}, batch {args.batch}):")
            module_table = [("  " * path.count(".") + (path or "(model)"), format_count(n / args.batch),
                             f"{100 * n / max(macs.total, 1):.1f} %") for path, n in module_rows(macs, args.depth)]
            print(markdown_table(["module", macs.unit, "share"], module_table, right=[False, True, True]))
    if args.csv:
        write_csv(args.csv, rows)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table + "\n\n" + "\n".join(notes) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

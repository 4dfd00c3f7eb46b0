"""Every issue's CPU speed target in one run, written as one results table.

    python benchmarks/targets.py                        # all families: runs/targets/targets.md + targets.csv
    python benchmarks/targets.py --family vim vmamba    # some families (written as targets_<families>.*)
    OMP_WAIT_POLICY=PASSIVE python benchmarks/targets.py --threads 1 --name targets_1thread
    MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000 python benchmarks/targets.py \
        --name targets_glibc_keeps_memory                 # large blocks kept by glibc instead of unmapped
    python benchmarks/targets.py --test-variants --output /tmp/targets        # the tiny test variants (tests)
    python benchmarks/targets.py --update-repo          # refresh the committed benchmarks/targets.* (`make refresh`)

The targets (each family's `SPEED_TARGETS` in vssm/models/<family>.py; tools/upkeep/targets.py times them):
vim_small >= 0.5x deit_small_patch16_224, vmamba_tiny >= 0.5x swin_tiny_patch4_window7_224, local_vim_tiny >= 0.5x
deit_tiny_patch16_224, local_vssm_tiny >= 0.5x Swin-T, mambavision_tiny >= 0.7x convnext_tiny (images/s; batch 8,
224², float32), and a UMambaBot 2D forward on 1 × 1 × 256² within 1.5x the time of the same plan's plain U-Net; plus
the reference rows the model cards discuss.
Each batch and input size's networks are timed in turn, round after round. Rows name the machine, the load average
around the run, the selective-scan backend and the threads. `tools/report.py` puts each family's rows into its model
card. The exit status is 0 whether or not the targets are met (`--fail-unmet`: 1 when one is not). Results go to
runs/targets/ unless `--output` names another folder; only `--update-repo` writes the committed benchmarks/ files.
A one-line warning says when the machine is busy (load average above the threads the run uses).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

# torch, timm and the models take 5-50 s to import (more on a loaded machine): they are imported in `run`, after the
# arguments are parsed, so that --help and argument errors answer at once.
COMMITTED = Path(__file__).resolve().parent
OUTPUT = Path("runs") / "targets"
TOOLS = COMMITTED.parent / "tools"
if str(TOOLS) not in sys.path:  # tools/upkeep, the targets' code (not installed)
    sys.path.append(str(TOOLS))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", nargs="+", help="only these families' targets")
    parser.add_argument("--test-variants", action="store_true", help="the tiny test variants instead (seconds)")
    parser.add_argument("--rounds", type=int, default=7, help="timed forwards per network (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards per network first (default 1)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true", help="refresh the committed files in benchmarks/ instead")
    parser.add_argument("--name", help="output file stem (default targets, or targets_<families>)")
    parser.add_argument("--machine", help="how to name the machine (default: detected)")
    parser.add_argument("--fail-unmet", action="store_true", help="exit with status 1 when a target is not met")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error(f"expected --rounds >= 1, --warmup >= 0, --threads >= 1; got {args.rounds}, {args.warmup}, "
                     f"{args.threads}")
    if args.update_repo:
        args.output = COMMITTED
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv), argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    import torch

    from upkeep.targets import family_targets, results_markdown, run_targets, write_results
    from vssm.analysis.tables import busy_warning

    targets = family_targets(args.test_variants)
    if args.family:
        known = sorted({t.family for t in targets})
        unknown = sorted(set(args.family) - set(known))
        if unknown:
            print(f"error: --family: expected some of {', '.join(known)}, got {', '.join(unknown)}", file=sys.stderr)
            return 2
        targets = tuple(t for t in targets if t.family in args.family)
    if args.threads:
        torch.set_num_threads(args.threads)
    warning = busy_warning(torch.get_num_threads())
    if warning:
        print(warning, file=sys.stderr)
    results = run_targets(targets, rounds=args.rounds, warmup=args.warmup, machine=args.machine)
    stem = args.name or ("targets" if not args.family else "targets_" + "_".join(sorted(args.family)))
    command = shlex.join(["python", "benchmarks/targets.py", *(sys.argv[1:] if argv is None else argv)])
    markdown, table = write_results(results, args.output, command, stem)
    print(results_markdown(results, command))
    print(f"wrote {markdown} and {table}", file=sys.stderr)
    return 1 if args.fail_unmet and any(r.met is False for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())

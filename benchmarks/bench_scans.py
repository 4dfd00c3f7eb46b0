"""Benchmark of `scans`: cross scan + merge against the hand-written VMamba copies, and route construction.

    python benchmarks/bench_scans.py [--rounds 15] [--output runs/scans]
    python benchmarks/bench_scans.py --update-repo      # refresh the committed benchmarks/scans.*

Targets (issue 4): `Cross().scan` + `merge` on (8, 192, 56, 56) fp32 CPU within 1.5x of the hand-written
flatten/transpose/flip implementation; building the routes of a 256 x 256 grid under 50 ms for every order.
Writes `scans.md` (the table) and `scans.csv` under `--output` (default runs/scans/); only `--update-repo` writes the
committed benchmarks/ files.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch and vssm take 5-50 s to import (more on a loaded machine): they are imported where they are used, after the
# arguments are parsed, so that --help and argument errors answer at once.
COMMITTED = Path(__file__).resolve().parent
OUTPUT = Path("runs") / "scans"
SCAN_SHAPE = (8, 192, 56, 56)
ROUTE_GRID = (256, 256)
SCAN_TARGET = 1.5  # ours / hand-written
ROUTE_TARGET_MS = 50.0


def hand_cross_scan(x: torch.Tensor) -> torch.Tensor:
    """VMamba's CrossScan: (B, C, H, W) -> (B, 4, C, L), row-major, column-major and both flipped."""
    import torch

    pair = torch.stack([x.flatten(2), x.transpose(2, 3).flatten(2)], dim=1)
    return torch.cat([pair, pair.flip(-1)], dim=1)


def hand_cross_merge(ys: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """VMamba's CrossMerge: (B, 4, C, L) -> (B, C, H, W), the adjoint of `hand_cross_scan`."""
    batch, _, channels, length = ys.shape
    pair = ys[:, 0:2] + ys[:, 2:4].flip(-1)
    columns = pair[:, 1].view(batch, channels, width, height).transpose(2, 3).reshape(batch, channels, length)
    return (pair[:, 0] + columns).view(batch, channels, height, width)


@dataclass
class Row:
    case: str
    ours_ms: float
    reference_ms: float | None
    target: str
    passed: bool | None

    @property
    def ratio(self) -> float | None:
        return None if self.reference_ms is None else self.ours_ms / self.reference_ms


def _interleaved(ours: Callable[[], object], reference: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median ms of each, timed in turn so that drifting machine load hits both alike (warm-up: allocator, caches,
    route tables)."""
    from vssm.analysis.benchmark import time_alternately

    times = time_alternately({"ours": ours, "reference": reference}, warmup=2, repeats=rounds)
    return statistics.median(times["ours"]), statistics.median(times["reference"])


def bench_cross(rounds: int) -> list[Row]:
    import torch
    from tqdm import tqdm

    from vssm import scans

    x = torch.randn(SCAN_SHAPE)
    height, width = SCAN_SHAPE[2:]
    order = scans.Cross()
    ys = torch.randn(SCAN_SHAPE[0], 4, SCAN_SHAPE[1], height * width)
    # Same numbers first: a fast wrong answer is not a result.
    assert torch.equal(order.scan(x), hand_cross_scan(x))
    torch.testing.assert_close(order.merge(ys, height, width), hand_cross_merge(ys, height, width))
    cases = [
        ("cross scan + merge", lambda: order.merge(order.scan(x), height, width),
         lambda: hand_cross_merge(hand_cross_scan(x), height, width)),
        ("cross scan", lambda: order.scan(x), lambda: hand_cross_scan(x)),
        ("cross merge", lambda: order.merge(ys, height, width), lambda: hand_cross_merge(ys, height, width)),
    ]  # fmt: skip
    rows = []
    for case, ours, reference in tqdm(cases, desc="cross (8, 192, 56, 56) fp32", leave=False):
        ours_ms, reference_ms = _interleaved(ours, reference, rounds)
        is_target = case == "cross scan + merge"
        rows.append(
            Row(case, ours_ms, reference_ms, f"<= {SCAN_TARGET}x hand-written" if is_target else "-",
                ours_ms / reference_ms <= SCAN_TARGET if is_target else None)
        )  # fmt: skip
    return rows


def bench_other_orders(rounds: int) -> list[Row]:
    """Scan + merge of the other orders on the same tensor, for comparison (no target)."""
    import torch
    from tqdm import tqdm

    from vssm import scans
    from vssm.analysis.benchmark import time_alternately

    x = torch.randn(SCAN_SHAPE)
    height, width = SCAN_SHAPE[2:]
    orders = {
        "windowed h, h_flip, w2, w2_flip": scans.Windowed(),
        "windowed h, v_flip, w7, w7_flip": scans.Windowed(directions=("h", "v_flip", "w7", "w7_flip")),
        "hilbert (1 route)": scans.Hilbert(),
        "zigzag paths 0-3": scans.Zigzag(paths=(0, 1, 2, 3)),
        "atrous": scans.Atrous(),
    }
    rows = []
    for label, order in tqdm(orders.items(), desc="other orders", leave=False):
        ms = statistics.median(time_alternately({label: lambda order=order: order.merge(order.scan(x), height, width)},
                                                warmup=2, repeats=rounds)[label])
        rows.append(Row(f"{label} scan + merge", ms, None, "-", None))
    return rows


def bench_routes(repeats: int) -> list[Row]:
    """Cold route construction (cache cleared every time) on 256 x 256, route moved to the CPU device."""
    from tqdm import tqdm

    from vssm import scans

    height, width = ROUTE_GRID
    orders = {f"{name} (default)": scans.get(name) for name in scans.list_orders()}
    orders["hilbert, all 8 variants"] = scans.Hilbert.all_variants()
    orders["windowed, all 8 LocalMamba directions"] = scans.Windowed(
        directions=("h", "h_flip", "v", "v_flip", "w2", "w2_flip", "w7", "w7_flip")
    )
    rows = []
    for label, order in tqdm(orders.items(), desc="routes 256 x 256", leave=False):
        times = []
        for _ in range(repeats):
            scans.clear_route_cache()
            start = time.perf_counter()
            order.route(height, width)
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1e3
        rows.append(Row(f"build route: {label}, {height} x {width}", ms, None, f"< {ROUTE_TARGET_MS:g} ms",
                        ms < ROUTE_TARGET_MS))  # fmt: skip
    return rows


def _format(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def _met(row: Row) -> str:
    return "-" if row.passed is None else ("yes" if row.passed else "NO")


def table(rows: list[Row]) -> str:
    from vssm.analysis.tables import markdown_table

    return markdown_table(["case", "ours (ms)", "hand-written (ms)", "ratio", "target", "met"],
                          [[r.case, _format(r.ours_ms), _format(r.reference_ms), _format(r.ratio, "x"), r.target,
                            _met(r)] for r in rows], right=[False, True, True, True, False, False])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machine", help="how to name the machine (default: detected)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true", help="refresh the committed files in benchmarks/ instead")
    parser.add_argument("--rounds", type=int, default=15, help="timed calls per measured case")
    parser.add_argument("--route-repeats", type=int, default=7, help="cold builds per order")
    args = parser.parse_args(argv)
    if args.update_repo:
        args.output = COMMITTED
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from vssm.analysis.tables import busy_warning, load_average, machine_description, write_csv

    warning = busy_warning(torch.get_num_threads())
    if warning:
        print(warning, file=sys.stderr)
    load_before = load_average()
    rows = bench_cross(args.rounds) + bench_other_orders(args.rounds) + bench_routes(args.route_repeats)
    load_after = load_average()
    machine = machine_description("cpu", args.machine)
    command = shlex.join(["python", "benchmarks/bench_scans.py", *(sys.argv[1:] if argv is None else argv)])
    header = (
        f"Machine: {machine}. Medians of {args.rounds} calls (ours and hand-written timed in turn), fp32, CPU, "
        f"forward only; route builds are cold (cache cleared), median of {args.route_repeats}. Load average "
        f"(1, 5, 15 min) {load_before} before and {load_after} after the run.\nCommand: `{command}`"
    )
    text = f"# scans benchmark\n\n{header}\n\n{table(rows)}\n"
    print(text)
    write_csv(args.output / "scans.csv", [
        {"machine": machine, "case": r.case, "ours_ms": round(r.ours_ms, 3),
         "hand_written_ms": None if r.reference_ms is None else round(r.reference_ms, 3),
         "ratio": None if r.ratio is None else round(r.ratio, 3), "target": r.target, "met": r.passed}
        for r in rows
    ])
    (args.output / "scans.md").write_text(text)
    return 0 if all(row.passed is not False for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

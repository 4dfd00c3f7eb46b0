"""CPU images/s of each model in torch eager (our C scan), `torch.compile`d (inductor) and ONNX Runtime (CPU execution
provider, the `export` extra), at batch 1 and 8, with the ratios to eager measured in the same run.

    python benchmarks/bench_export.py                      # the five headline models + deit_small / swin_tiny
    python benchmarks/bench_export.py --update-repo        # the same, written over the committed benchmarks/export.*
    python benchmarks/bench_export.py test_vim test_vmamba --batch 1 2 --rounds 3 --output /tmp/export

Writes OUTPUT.md and OUTPUT.csv (default runs/export/export.*; `--update-repo`: benchmarks/export.*). The timm
transformers are the reference for what ONNX Runtime gives a model without a scan. The compile column is
`torch.compile(model, fullgraph=True)` with inductor's default options and static shapes, as the README shows it.
Each runner gets one untimed warm-up (compilation and session creation are not timed); then every round times one
forward of each runner in turn, so that drifting load from other work hits the three columns alike, each forward
started once the previous runner's worker threads have gone idle, and the median of `--rounds` is reported. The
table names the machine, the thread count and the load average before and after.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

COMMITTED = Path(__file__).resolve().parent / "export"
OUTPUT = Path("runs") / "export" / "export"
DEFAULT_MODELS = ("vim_small", "vmamba_tiny", "local_vssm_tiny", "mambavision_tiny", "umamba_bot_2d",
                  "deit_small_patch16_224", "swin_tiny_patch4_window7_224")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), help="model names (vssm or timm)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed forwards per measurement (default 5)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile column")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT,
                       help=f"writes OUTPUT.md and OUTPUT.csv (default {OUTPUT})")
    where.add_argument("--update-repo", action="store_true", help="write the committed benchmarks/export.* instead")
    args = parser.parse_args(argv)
    if min(args.batch) < 1 or args.rounds < 1:
        parser.error("--batch and --rounds: expected positive integers")
    if args.update_repo:
        args.output = COMMITTED
    return args


def _wait_until_idle(step: float = 0.05, limit: float = 2.0) -> None:
    """Sleep until this process's threads use under 10 % of a core over `step` s (at most `limit` s).

    After a run, ONNX Runtime's intra-op workers spin, waiting for the next one (its default `allow_spinning`):
    25-30 ms of CPU after each deit_small forward on the 2-core container; torch's OpenMP workers ~10 ms. A runner
    timed at once shares the cores with them: vmamba_tiny at batch 1 took 100 ms right after an ONNX Runtime run and
    67 ms after the wait, eager and compiled alike. In the round order eager, ORT, compile that runner was always
    torch.compile (compile / eager 0.62-0.93 at batch 1 in the first table, DeiT-S and Swin-T too)."""
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        busy = time.process_time()
        time.sleep(step)
        if time.process_time() - busy < step / 10:
            return


def _images_per_second(runners: dict[str, Callable], x, rounds: int) -> dict[str, float]:
    """Images/s of each runner: one warm-up each (compilation, session start, first-touch allocations), then
    `rounds` rounds of one timed forward per runner in turn, each started once the previous runner's worker threads
    are idle (`_wait_until_idle`); the median per runner."""
    for run in runners.values():
        run(x)
    times: dict[str, list[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            _wait_until_idle()
            start = time.perf_counter()
            run(x)
            times[key].append(time.perf_counter() - start)
    return {key: x.shape[0] / statistics.median(values) for key, values in times.items()}


def measure(name: str, batch: int, rounds: int, with_compile: bool, workdir: Path) -> dict[str, str]:
    import onnxruntime
    import torch

    from vssm import zoo
    from vssm.kernels.onnx import export_onnx

    size = zoo.default_input_size(name)
    model = zoo.create(name, size)
    x = torch.randn(batch, *size)
    path = workdir / f"{name}_b{batch}.onnx"
    export_onnx(model, (x,)).save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    runners = {"eager": model, "ORT": lambda t: session.run(None, {feed: t.numpy()})}
    if with_compile:
        # Without the reset, the second batch size of a model would recompile its frames with a dynamic batch
        # (dynamo's automatic dynamic shapes after a shape change) and time that program instead of a static one.
        torch._dynamo.reset()
        runners["compile"] = torch.compile(model, fullgraph=True)
    with torch.no_grad():
        speed = _images_per_second(runners, x, rounds)
    eager, ort, compiled = speed["eager"], speed["ORT"], speed.get("compile", float("nan"))
    return {"model": name, "batch": str(batch), "eager img/s": f"{eager:.2f}",
            "compile img/s": f"{compiled:.2f}", "compile / eager": f"{compiled / eager:.2f}",
            "ORT img/s": f"{ort:.2f}", "ORT / eager": f"{ort / eager:.2f}"}


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import torch
    from tqdm import tqdm

    from vssm import zoo
    from vssm.analysis.tables import busy_warning, load_average, machine_description, markdown_table, write_csv

    args = parse_args(argv)
    load_before = load_average()
    warning = busy_warning(torch.get_num_threads())
    if warning:
        print(warning, file=sys.stderr)
    try:
        names = zoo.resolve_names(args.models, allow_timm=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        jobs = [(n, b) for n in names for b in args.batch]
        for name, batch in tqdm(jobs, desc="timing", unit="run", file=sys.stderr):
            rows.append(measure(name, batch, args.rounds, not args.no_compile, Path(workdir)))
    headers = list(rows[0])
    table = markdown_table(headers, [list(r.values()) for r in rows], right=[h != "model" for h in headers])
    load_after = load_average()
    command = " ".join(["python benchmarks/bench_export.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    text = (f"# CPU images/s: torch eager, torch.compile and ONNX Runtime\n\nWritten by `{command}`. Random weights, "
            f"float32, each model's default input size; median of {args.rounds} rounds after a warm-up, one forward "
            f"of each runner in turn per round (so a ratio is measured in one run), each started once the previous "
            f"runner's worker threads are idle; torch.compile: inductor, "
            f"`fullgraph=True`, static shapes; ONNX Runtime: CPU execution provider, its default threads.\n\n"
            f"{table}\n\nMachine: {machine_description('cpu')}; {torch.get_num_threads()} torch threads; load average "
            f"(1, 5, 15 min) {load_before} before, {load_after} after.\n")
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    machine, load = machine_description("cpu"), f"{load_before} before, {load_after} after"
    write_csv(args.output.with_suffix(".csv"), [row | {"machine": machine, "load": load} for row in rows])
    args.output.with_suffix(".md").write_text(text)
    print(f"wrote {args.output.with_suffix('.md')} and .csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU images/s of each model in torch eager (our C scan), `torch.compile`d (inductor) and ONNX Runtime (CPU execution
provider, the `export` extra), at batch 1 and 8, with the ratios to eager measured in the same run.

    python benchmarks/bench_export.py                      # the five headline models + deit_small / swin_tiny
    python benchmarks/bench_export.py test_vim test_vmamba --batch 1 2 --rounds 3 --markdown export.md

The timm transformers are the reference for what ONNX Runtime gives a model without a scan. Each forward is timed
`--rounds` times after one warm-up (compilation and session creation are not timed); the median is reported. The
table names the machine and the load average: other work on the machine slows every column alike only when it is
steady.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

DEFAULT_MODELS = ("vim_small", "vmamba_tiny", "local_vssm_tiny", "mambavision_tiny", "umamba_bot_2d",
                  "deit_small_patch16_224", "swin_tiny_patch4_window7_224")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), help="model names (vssm or timm)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed forwards per measurement (default 5)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile column")
    parser.add_argument("--csv", type=Path, help="also write the table as CSV")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown")
    args = parser.parse_args(argv)
    if min(args.batch) < 1 or args.rounds < 1:
        parser.error("--batch and --rounds: expected positive integers")
    return args


def _images_per_second(run, x, rounds: int) -> float:
    run(x)  # warm-up: compilation, session start, first-touch allocations
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return x.shape[0] / statistics.median(times)


def measure(name: str, batch: int, rounds: int, with_compile: bool, workdir: Path) -> dict[str, str]:
    import onnxruntime
    import torch

    from vssm import zoo
    from vssm.kernels.onnx import export_onnx

    size = zoo.default_input_size(name)
    model = zoo.create(name, size)
    x = torch.randn(batch, *size)
    with torch.no_grad():
        eager = _images_per_second(model, x, rounds)
        compiled = _images_per_second(torch.compile(model), x, rounds) if with_compile else float("nan")
    path = workdir / f"{name}_b{batch}.onnx"
    export_onnx(model, (x,)).save(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    ort = _images_per_second(lambda t: session.run(None, {feed: t.numpy()}), x, rounds)
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
    text = (f"{table}\n\nMachine: {machine_description('cpu')}; load average {load_average()} at the end; median of "
            f"{args.rounds} forwards after a warm-up.\n")
    print(text)
    if args.csv:
        write_csv(args.csv, rows)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

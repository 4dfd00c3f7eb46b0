"""Compile and export status of every released model: torch.compile(fullgraph), torch.export with a dynamic batch and
ONNX Runtime, each against eager float32, written to runs/export_status/ (`--update-repo`: the committed
benchmarks/export_status.{md,csv}).

    python benchmarks/export_status.py                                  # every released (non-test_*) variant: hours
    python benchmarks/export_status.py --family vim vmamba              # one or more families
    python benchmarks/export_status.py --models vim_small vmamba_tiny --no-compile
    python benchmarks/export_status.py --family vim --update-repo        # merged into the committed table

For each model, in eval mode with random weights, at its default input size and batch 2, without gradients:

* compile: `torch.compile(model, fullgraph=True)` runs a forward (inductor, CPU);
* export: `torch.export.export` with a dynamic batch dimension, run at batch 2 and at batch 1;
* onnx: `vssm.kernels.onnx.export_onnx` with a dynamic batch, `onnx.checker`, ONNX Runtime's CPU execution provider at
  batch 2 and at batch 1.

Each output is compared with eager float32 and its float64 copy under the project's rule for fast paths
(`vssm.kernels.tolerances.three_way_error`: within 2x the eager float32 error plus atol x scale); the table gives the
max abs error and the error relative to the largest logit. The status is `ok` when every check ran and is within the
rule, else `failed` with the first failure in one line. Runs in parts merge: a model's row is replaced, the other
rows are kept, and each row names its machine, load, date and command.
"""

from __future__ import annotations

import argparse
import copy
import csv
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# torch and the models take 5-50 s to import: imported where they are used, after the arguments are checked.
ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "benchmarks" / "export_status"
OUTPUT = Path("runs") / "export_status" / "export_status"
BATCH = 2
NOT_RUN = "not run"


@dataclass
class StatusRow:
    """One model's checks; errors are max abs (and relative to max |logit|) against eager float64, "" when the
    check did not run or raised."""

    family: str
    model: str
    input: str
    compile: str = NOT_RUN
    compile_max_abs: str = ""
    export: str = NOT_RUN
    export_max_abs: str = ""
    export_max_rel: str = ""
    onnx: str = NOT_RUN
    onnx_max_abs: str = ""
    onnx_max_rel: str = ""
    status: str = "ok"
    error: str = ""
    seconds: str = ""
    machine: str = ""
    load: str = ""
    date: str = ""
    command: str = ""


COLUMNS = [f.name for f in fields(StatusRow)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="released model names (default: every released variant)")
    parser.add_argument("--family", nargs="+", help="only these families (vim, vmamba, localmamba, ...)")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile check (the slowest)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT,
                       help=f"writes OUTPUT.md and OUTPUT.csv, merging with rows already there (default {OUTPUT})")
    where.add_argument("--update-repo", action="store_true",
                       help="merge into the committed benchmarks/export_status.* (what the model cards show)")
    args = parser.parse_args(argv)
    if args.update_repo:
        args.output = COMMITTED
    return args


def select(models: list[str] | None, families: list[str] | None) -> list[str]:
    """The released variants asked for, in registry order; ValueError for a name that is not one."""
    import vssm
    from vssm import zoo

    released = [n for n in vssm.list_models() if not n.startswith("test_")]
    known = set(zoo.families())
    unknown = sorted(set(families or ()) - known)
    if unknown:
        raise ValueError(f"--family: expected some of {sorted(known)}, got {unknown}")
    if models:
        wrong = [n for n in models if n not in released]
        if wrong:
            raise ValueError(f"--models: expected released vssm models (vssm.list_models() without test_*), "
                             f"got {wrong}")
        released = [n for n in released if n in models]
    return [n for n in released if not families or zoo.family_of(n) in families]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


class _Checker:
    """Compares a runner's outputs at batch 2 and 1 with the eager ones (computed once per model)."""

    def __init__(self, model: torch.nn.Module, size: tuple[int, int, int]) -> None:
        import torch

        model64 = copy.deepcopy(model).double()
        self.x = torch.randn(BATCH, *size)
        with torch.no_grad():
            self.eager, self.eager64 = model(self.x), model64(self.x.double())
        self.scale = max(float(self.eager64.abs().max()), 1e-30)

    def check(self, run: Callable[[torch.Tensor], torch.Tensor]) -> tuple[bool, float]:
        """(within the rule at every batch, the largest max abs error)."""
        import torch

        from vssm.kernels.tolerances import three_way_error

        ok, worst = True, 0.0
        for batch in (BATCH, 1):
            with torch.no_grad():
                out = run(self.x[:batch])
            error = three_way_error(out, self.eager[:batch], self.eager64[:batch])
            ok &= error.ok
            worst = max(worst, error.fast)
        return ok, worst


def _batch_dim() -> tuple[dict[int, torch.export.Dim]]:
    import torch

    return ({0: torch.export.Dim("batch", min=1, max=1024)},)


def _compiled(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch

    torch._dynamo.reset()  # each model compiles from scratch, not against the previous model's recompile limits
    return torch.compile(model, fullgraph=True)


def _exported(model: torch.nn.Module, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch

    return torch.export.export(model, (x,), dynamic_shapes=_batch_dim()).module()


def _onnx_runtime(model: torch.nn.Module, x: torch.Tensor, workdir: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnx
    import onnxruntime
    import torch

    from vssm.kernels.onnx import export_onnx

    path = workdir / "model.onnx"
    export_onnx(model, (x,), _batch_dim()).save(str(path))
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    return lambda t: torch.from_numpy(session.run(None, {feed: t.numpy()})[0])


def check_model(name: str, with_compile: bool, workdir: Path) -> StatusRow:
    """Build `name` at its default size and run the checks; a check that raises is a failure, not an abort."""
    from vssm import zoo

    size = zoo.default_input_size(name)
    row = StatusRow(family=zoo.family_of(name), model=name, input="x".join(map(str, size)))
    failures: list[str] = []
    try:
        model = zoo.create(name, size).eval()
        checker = _Checker(model, size)
    except Exception as exc:  # the model itself does not run: nothing else can
        row.status, row.error = "failed", f"eager: {_one_line(exc)}"
        return row
    stages: list[tuple[str, Callable[[], Callable[[torch.Tensor], torch.Tensor]]]] = [
        ("export", lambda: _exported(model, checker.x)),
        ("onnx", lambda: _onnx_runtime(model, checker.x, workdir)),
    ]
    if with_compile:
        stages.insert(0, ("compile", lambda: _compiled(model)))
    for stage, build in stages:
        try:
            ok, error = checker.check(build())
        except Exception as exc:
            setattr(row, stage, "failed")
            failures.append(f"{stage}: {_one_line(exc)}")
            continue
        setattr(row, stage, "ok" if ok else "failed")
        setattr(row, f"{stage}_max_abs", f"{error:.2e}")
        if stage != "compile":
            setattr(row, f"{stage}_max_rel", f"{error / checker.scale:.2e}")
        if not ok:
            failures.append(f"{stage}: max abs error {error:.2e} beyond the fast-path rule")
    if failures:
        row.status, row.error = "failed", "; ".join(failures)
    return row


def read_rows(path: Path) -> list[StatusRow]:
    """The rows of an earlier run's CSV ([] when there is none); ValueError when its columns are not ours."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != COLUMNS:
            raise ValueError(f"{path}: expected the columns {COLUMNS}, got {reader.fieldnames}")
        return [StatusRow(**row) for row in reader]


def merge(old: list[StatusRow], new: list[StatusRow]) -> list[StatusRow]:
    """Rows of `old` not re-run, and the new ones, sorted by family and model."""
    fresh = {r.model for r in new}
    return sorted([r for r in old if r.model not in fresh] + new, key=lambda r: (r.family, r.model))


def status_markdown(rows: list[StatusRow]) -> str:
    from vssm.analysis.tables import markdown_table

    headers = ["model", "input", "compile", "compile max abs", "export", "export max abs", "export max rel",
               "ONNX Runtime", "ONNX max abs", "ONNX max rel", "status", "s"]
    body = [[r.model, r.input, r.compile, r.compile_max_abs, r.export, r.export_max_abs, r.export_max_rel, r.onnx,
             r.onnx_max_abs, r.onnx_max_rel, r.status, r.seconds] for r in rows]
    table = markdown_table(headers, body, right=[" max " in h or h == "s" for h in headers])
    errors = "".join(f"\n- {r.model}: {r.error}" for r in rows if r.error)
    runs: dict[tuple[str, str], list[StatusRow]] = {}
    for r in rows:
        runs.setdefault((r.command, r.machine), []).append(r)
    run_lines = "".join(f"\n- `{command}` on {machine}, finished {min(r.date for r in ran)} to "
                        f"{max(r.date for r in ran)}; load average (1, 5, 15 min) after each model: "
                        f"{'; '.join(r.load for r in ran)}" for (command, machine), ran in sorted(runs.items()))
    ok = sum(r.status == "ok" for r in rows)
    return (f"# Compile and export status of the released models\n\n"
            f"Written by `benchmarks/export_status.py`. Eval mode, random weights, float32, each model's default "
            f"input size, batch 2 (and batch 1 through the same dynamic-batch program). Errors are max abs against "
            f"eager float64 (rel: over the largest |logit|); a check is `ok` within the fast-path rule of "
            f"`vssm.kernels.tolerances` (2x eager float32's own error + atol x scale). `s`: seconds for the model's "
            f"checks. {ok} of {len(rows)} models ok.\n\n{table}\n"
            + (f"\n## Failures\n{errors}\n" if errors else "")
            + f"\n## Runs\n{run_lines}\n")


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    from vssm.analysis.tables import load_average, machine_description, markdown_table, write_csv

    args = parse_args(argv)
    try:
        names = select(args.models, args.family)
        old = read_rows(args.output.with_suffix(".csv"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not names:
        print("error: no released model matches --models and --family", file=sys.stderr)
        return 2
    machine = machine_description("cpu")
    command = " ".join(["python benchmarks/export_status.py", *(shlex.quote(a) for a in (argv or sys.argv[1:]))])
    rows: list[StatusRow] = []
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        progress = tqdm(names, desc="export status", unit="model", file=sys.stderr)
        for name in progress:
            progress.set_postfix_str(name)
            started = time.perf_counter()
            row = check_model(name, not args.no_compile, Path(workdir))
            row.seconds = f"{time.perf_counter() - started:.0f}"
            row.machine, row.load, row.command = machine, load_average(), command
            row.date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            rows.append(row)
            # Written after every model: a long run that is stopped keeps the models it finished.
            merged = merge(old, rows)
            write_csv(args.output.with_suffix(".csv"), [asdict(r) for r in merged])
            args.output.with_suffix(".md").write_text(status_markdown(merged))
    headers = ["model", "compile", "export", "onnx", "status", "s", "error"]
    print(markdown_table(headers, [[getattr(r, h if h != "s" else "seconds") for h in headers] for r in rows]))
    print(f"wrote {args.output.with_suffix('.md')} and .csv ({len(merged)} rows); load average {load_average()}",
          file=sys.stderr)
    return 0 if all(r.status == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

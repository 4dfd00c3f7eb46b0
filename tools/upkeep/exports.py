"""The model cards' `export` block: each variant's compile / export / ONNX Runtime status from the rows that
`benchmarks/export_status.py` writes (`benchmarks/export_status.csv`), "not run" for a variant without a row.

    rows = read_status(Path("benchmarks/export_status.csv"))
    tables = with_export_tables(card_tables(...), rows, zoo.families(), "benchmarks/export_status.csv")
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from vssm.analysis.tables import markdown_table

# The columns the card shows (benchmarks/export_status.py writes these and more).
COLUMNS = ("family", "model", "input", "compile", "export", "export_max_abs", "onnx", "onnx_max_abs", "onnx_max_rel",
           "status", "error", "machine", "date", "command")
NOT_RUN = "not run"


def read_status(path: Path) -> list[dict[str, str]]:
    """The rows of an `export_status.csv`; [] when there is no such file, ValueError when it lacks a column."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: expected the columns benchmarks/export_status.py writes, missing "
                             f"{', '.join(missing)} (re-run python benchmarks/export_status.py --update-repo)")
        return list(reader)


def export_card_table(rows: Sequence[Mapping[str, str]], family: str, variants: Sequence[str], source: str) -> str:
    """One line per variant of `family` (in `variants` order): the checks' status and errors, or "not run"; then
    where the rows come from (machine, date, command)."""
    by_model = {r["model"]: r for r in rows}
    headers = ["model", "input", "torch.compile", "torch.export", "export max abs", "ONNX Runtime", "ONNX max abs",
               "ONNX max rel", "status"]
    body = []
    for name in variants:
        row = by_model.get(name)
        if row is None:
            body.append([name, "", NOT_RUN, NOT_RUN, "", NOT_RUN, "", "", NOT_RUN])
            continue
        status = row["status"] + (f" ({row['error']})" if row["error"] else "")
        body.append([name, row["input"], row["compile"], row["export"], row["export_max_abs"], row["onnx"],
                     row["onnx_max_abs"], row["onnx_max_rel"], status])
    table = markdown_table(headers, body, right=[" max " in h for h in headers])
    ran = [by_model[n] for n in variants if n in by_model]
    runs = sorted({(r["command"], r["machine"]) for r in ran})
    where = "; ".join(f"`{command}` on {machine}" for command, machine in runs)
    dates = sorted(r["date"] for r in ran)
    note = (f"From `{source}` ({where}, {dates[0]} to {dates[-1]})." if ran
            else f"No rows in `{source}` yet: run "
                 f"`python benchmarks/export_status.py --family {family} --update-repo`.")
    return (f"{table}\n\n{note} Random weights, float32, batch 2 and 1 through one dynamic-batch program; max abs "
            f"against eager float64, max rel over the largest |logit|; ok within the fast-path rule of "
            f"`vssm.kernels.tolerances`.\n")


def with_export_tables(table: Callable[[str, str], str | None], rows: Sequence[Mapping[str, str]],
                       families: Mapping[str, Sequence[str]], source: str) -> Callable[[str, str], str | None]:
    """`table` (the `upkeep.cards` callback) with the `export` kind filled for the registered families."""

    def combined(kind: str, family: str) -> str | None:
        if kind != "export":
            return table(kind, family)
        return export_card_table(rows, family, families[family], source) if family in families else None

    return combined

"""Tables the tools print and write: markdown, CSV, and the machine a measurement ran on."""

from __future__ import annotations

import csv
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """A GitHub markdown table; `right[i]` right-aligns column i (numbers)."""
    right = right or [False] * len(headers)
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write dict rows (columns from the first row) to `path`, creating its directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)
    return path


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), or what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device | str = "cpu", label: str | None = None) -> str:
    """'2-core CPU container, no GPU'-style name of the machine (or `label`), then the CPU/GPU model and runtime."""
    device = torch.device(device)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    if label is None:
        label = f"{cores}-core CPU, " + (f"GPU {gpu}" if gpu else "no GPU")
    hardware = f"CPU {cpu_name()}" + (f", GPU {gpu}" if gpu else "")
    runtime = (f"torch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads, "
               f"Python {platform.python_version()}")
    return f"{label} ({hardware}; {runtime})"


def load_average() -> str:
    """The machine's load average over 1, 5 and 15 minutes, as '0.52, 0.61, 0.70'."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def busy_warning(threads: int) -> str | None:
    """One line warning that timings will come out slow when the 1-minute load average is above the `threads` a
    measurement runs on (other processes then take turns on its cores), else None."""
    load = os.getloadavg()[0]
    if load <= threads:
        return None
    return (f"warning: the machine is busy (1-minute load average {load:.2f}, above the {threads} threads this run "
            "uses): timings will be slower than on an idle machine")

"""The issues' CPU speed targets: each family's model against a baseline at the same settings, in one run.

    results = run_targets(family_targets(), rounds=5)      # family_targets(test_variants=True): the tiny variants
    write_results(results, Path("benchmarks"), command)   # targets.md + targets.csv

A `Target` pairs one of our networks with a baseline (a timm model of similar size, or for U-Mamba the same plan's
plain residual U-Net) at one setting (batch, input size; float32 CPU inference); each family declares its own in its
model file (`SPEED_TARGETS`, `TEST_SPEED_TARGETS`: `vssm.models._records.SpeedTarget`). Targets with a threshold are
the issues' acceptance criteria; those without are reference rows the model cards discuss. All networks of one
setting are timed in turn, one forward each per round (`vssm.analysis.benchmark.measure_alternately`), so drifting
machine load hits them alike; the medians give the ratio. Each network's per-image MACs (`macs` convention), where its
forward spends its time and how many ops it dispatches (`upkeep.profile`) are written with it, and every
row names the machine, the load average around the run, the selective-scan backend and the thread count.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from upkeep.profile import time_split
from vssm import zoo
from vssm.analysis.benchmark import BenchSettings, Measurement, measure_alternately
from vssm.analysis.flops import Convention, count_flops
from vssm.analysis.tables import load_average, machine_description, markdown_table, write_csv
from vssm.kernels.backends import select_backend
from vssm.models._records import Metric, SpeedTarget, TimedNetwork


@dataclass(frozen=True)
class Network:
    """A network the targets time: its name in the tables and how to build it for an input size (C, H, W)."""

    name: str
    build: Callable[[tuple[int, int, int]], nn.Module]

    @classmethod
    def timm(cls, model: str, label: str | None = None, **kwargs: Any) -> Network:
        """A registered timm (or vssm) model, built for the input size by `zoo.create`."""
        return cls(label or model, partial(_timm_model, model, kwargs))

    @classmethod
    def of(cls, network: str | TimedNetwork) -> Network:
        """A family record's network: a registered model's name, or a `TimedNetwork`."""
        if isinstance(network, str):
            return cls.timm(network)
        if network.build is not None:
            return cls(network.name, network.build)
        return cls.timm(network.model or network.name, network.name, **network.kwargs)


def _timm_model(model: str, kwargs: dict[str, Any], input_size: tuple[int, int, int]) -> nn.Module:
    return zoo.create(model, input_size, **kwargs)


@dataclass(frozen=True)
class Target:
    """`ours` against `baseline` at batch `batch` and input `input_size`; `threshold` None marks a reference row."""

    family: str
    ours: Network
    baseline: Network
    threshold: float | None
    metric: Metric = Metric.SPEED
    batch: int = 8
    input_size: tuple[int, int, int] = (3, 224, 224)

    @property
    def setting(self) -> tuple[int, tuple[int, int, int]]:
        return self.batch, self.input_size


def family_targets(test_variants: bool = False) -> tuple[Target, ...]:
    """Every family's speed targets (`SPEED_TARGETS`), families by name; with `test_variants` the same comparisons on
    the tiny test variants (`TEST_SPEED_TARGETS`: seconds, not minutes)."""
    attribute = "TEST_SPEED_TARGETS" if test_variants else "SPEED_TARGETS"
    return tuple(_target(family, record) for family in zoo.families()
                 for record in getattr(zoo.family_module(family), attribute, ()))


def _target(family: str, record: SpeedTarget) -> Target:
    return Target(family, Network.of(record.ours), Network.of(record.baseline), record.threshold, record.metric,
                  record.batch, record.input_size)


@dataclass(frozen=True)
class TargetResult:
    """One row of the results table (`targets.csv` holds these fields)."""

    family: str
    model: str
    baseline: str
    metric: str
    ratio: float
    target: str
    met: bool | None
    batch: int
    input: str
    images_per_s: float
    baseline_images_per_s: float
    ms_per_batch: float
    baseline_ms_per_batch: float
    spread_pct: float
    baseline_spread_pct: float
    params: int
    baseline_params: int
    gmacs: float
    baseline_gmacs: float
    ops: int
    baseline_ops: int
    time_split: str
    baseline_time_split: str
    rounds: int
    threads: int
    scan_backend: str
    omp_wait_policy: str
    allocator: str
    load_before: str
    load_after: str
    machine: str
    date: str

    @classmethod
    def from_csv(cls, row: dict[str, str]) -> TargetResult:
        values: dict[str, Any] = {}
        for field in fields(cls):
            text = row[field.name]
            if field.type == "bool | None":
                values[field.name] = None if text == "" else text == "True"
            elif field.type == "int":
                values[field.name] = int(text)
            elif field.type == "float":
                values[field.name] = float(text)
            else:
                values[field.name] = text
        return cls(**values)


def _threshold_text(target: Target) -> str:
    if target.threshold is None:
        return "-"
    return f">= {target.threshold:g}x" if target.metric is Metric.SPEED else f"<= {target.threshold:g}x"


def _ratio(target: Target, ours: Measurement, theirs: Measurement) -> float:
    if target.metric is Metric.SPEED:
        return ours.images_per_s / theirs.images_per_s
    return ours.ms_median / theirs.ms_median


def _met(target: Target, ratio: float) -> bool | None:
    if target.threshold is None:
        return None
    return ratio >= target.threshold if target.metric is Metric.SPEED else ratio <= target.threshold


def run_targets(targets: Sequence[Target], rounds: int = 5, warmup: int = 1, machine: str | None = None,
                progress: bool = True) -> list[TargetResult]:
    """Time every target's networks (each setting's networks in turn, `rounds` timed forwards each) and return one
    row per target, in the order given."""
    load_before = load_average()
    backend = select_backend(torch.device("cpu"), torch.float32).value
    settings_of = {t.setting: BenchSettings(batch=t.batch, image_size=t.input_size[1:], in_chans=t.input_size[0],
                                            warmup=warmup, repeats=rounds, track_memory=False) for t in targets}
    groups: dict[tuple, dict[str, Network]] = {}
    for t in targets:
        groups.setdefault(t.setting, {}).update({t.ours.name: t.ours, t.baseline.name: t.baseline})
    total = sum(len(g) for g in groups.values())
    bar = tqdm(total=total * (rounds + 1), desc="targets", unit="forward", file=sys.stderr, disable=not progress)
    measured: dict[tuple, dict[str, Measurement]] = {}
    described: dict[tuple, dict[str, tuple[float, Any]]] = {}
    for setting, networks in groups.items():
        size = setting[1]
        bar.set_postfix_str(f"building {len(networks)} networks for batch {setting[0]}, {'x'.join(map(str, size))}")
        models = {name: network.build(size) for name, network in networks.items()}
        bar.set_postfix_str(f"timing batch {setting[0]}, {'x'.join(map(str, size))}")
        measured[setting] = measure_alternately(models, settings_of[setting], progress=bar)
        inputs = torch.randn(setting[0], *size)
        described[setting] = {}
        for name, model in models.items():  # after the timing, so that one-time set-up costs are not in the split
            bar.set_postfix_str(f"counting and profiling {name}")
            macs = count_flops(model, size, Convention.MACS).total
            described[setting][name] = (macs / 1e9, time_split(model, inputs))
            bar.update()
        del models
    bar.close()
    load_after = load_average()
    machine = machine_description("cpu", machine)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    for t in targets:
        ours, theirs = measured[t.setting][t.ours.name], measured[t.setting][t.baseline.name]
        (gmacs, split), (baseline_gmacs, baseline_split) = (described[t.setting][t.ours.name],
                                                             described[t.setting][t.baseline.name])
        ratio = _ratio(t, ours, theirs)
        results.append(TargetResult(
            family=t.family, model=t.ours.name, baseline=t.baseline.name, metric=t.metric.value,
            ratio=round(ratio, 4), target=_threshold_text(t), met=_met(t, ratio), batch=t.batch,
            input="x".join(map(str, t.input_size)), images_per_s=round(ours.images_per_s, 4),
            baseline_images_per_s=round(theirs.images_per_s, 4), ms_per_batch=round(ours.ms_median, 2),
            baseline_ms_per_batch=round(theirs.ms_median, 2), spread_pct=round(ours.spread_pct, 1),
            baseline_spread_pct=round(theirs.spread_pct, 1), params=ours.params, baseline_params=theirs.params,
            gmacs=round(gmacs, 4), baseline_gmacs=round(baseline_gmacs, 4), ops=split.ops,
            baseline_ops=baseline_split.ops, time_split=split.text(), baseline_time_split=baseline_split.text(),
            rounds=rounds, threads=torch.get_num_threads(), scan_backend=backend,
            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset"), allocator=allocator(), load_before=load_before,
            load_after=load_after, machine=machine, date=date,
        ))
    return results


ALLOCATOR_VARIABLES = ("LD_PRELOAD", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_CONF")


def allocator() -> str:
    """How this process allocates memory, as far as the environment says: the variables that change it, or glibc's
    defaults. It matters on the CPU: glibc maps every block above its mmap threshold (at most 32 MB) fresh from the
    kernel and returns it on free, so each op on a large tensor pays its page faults anew."""
    settings = [f"{name}={os.environ[name]}" for name in ALLOCATOR_VARIABLES if os.environ.get(name)]
    return " ".join(settings) or "glibc malloc defaults"


def _met_text(met: bool | None) -> str:
    return "-" if met is None else ("yes" if met else "NO")


def results_table(results: Iterable[TargetResult], details: bool = True) -> str:
    """The results as a markdown table; `details` adds MACs, op counts and where ours spends its time."""
    headers = ["family", "model", "baseline", "batch, input", "images/s", "baseline images/s", "ratio", "target",
               "met"]
    right = [False, False, False, True, True, True, True, False, False]
    if details:
        headers += ["GMACs / image", "ops / forward", "where ours spends its time"]
        right += [True, True, False]
    rows = []
    for r in results:
        ratio = f"{r.ratio:.2f}x {'time' if r.metric == Metric.TIME.value else 'speed'}"
        row = [r.family, r.model, r.baseline, f"{r.batch}, {r.input}", f"{r.images_per_s:.3g}",
               f"{r.baseline_images_per_s:.3g}", ratio, r.target, _met_text(r.met)]
        if details:
            row += [f"{r.gmacs:.3g} vs {r.baseline_gmacs:.3g}", f"{r.ops} vs {r.baseline_ops}", r.time_split]
        rows.append(row)
    return markdown_table(headers, rows, right)


def conditions(results: Sequence[TargetResult]) -> str:
    """The sentence that says how and where the results were measured."""
    first = results[0]
    return (f"Measured {first.date} on {first.machine}; selective-scan backend `{first.scan_backend}`, "
            f"{first.threads} threads, OMP_WAIT_POLICY {first.omp_wait_policy}, allocator: {first.allocator}, "
            f"load average (1, 5, 15 min) "
            f"{first.load_before} before and {first.load_after} after the run. Float32 CPU inference, eval mode, "
            f"random weights; median of {first.rounds} forwards per network, the networks of one batch and input size "
            f"timed in turn. Ratio: ours over the baseline, images/s (`speed`, target a minimum) or time per forward "
            f"(`time`, target a maximum). GMACs: the `macs` convention (vssm.analysis.flops). Ops: non-view ops "
            f"dispatched per forward; time split: wall time per kind of op in one forward (tools/upkeep/profile.py).")


def met_summary(results: Iterable[TargetResult]) -> str:
    """'N of M targets met.' (reference rows, without a target, not counted)."""
    met = [r.met for r in results if r.met is not None]
    return f"{sum(met)} of {len(met)} targets met."


def results_markdown(results: Sequence[TargetResult], command: str) -> str:
    return (f"# Speed targets\n\n{conditions(results)}\nCommand: `{command}`\n\n{met_summary(results)}\n\n"
            f"{results_table(results)}\n")


def write_results(results: Sequence[TargetResult], out: Path, command: str, stem: str = "targets") -> tuple[Path, Path]:
    """`<out>/<stem>.md` (the table, machine and command named) and `<out>/<stem>.csv` (every field)."""
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / f"{stem}.md"
    markdown.write_text(results_markdown(results, command))
    return markdown, write_csv(out / f"{stem}.csv", [asdict(r) for r in results])


def read_results(path: Path) -> list[TargetResult]:
    """The rows of a `targets.csv`; [] when there is no such file, ValueError when it lacks a column."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [field.name for field in fields(TargetResult) if field.name not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: expected the columns benchmarks/targets.py writes, missing {', '.join(missing)} "
                             "(an older results file? re-run python benchmarks/targets.py)")
        return [TargetResult.from_csv(row) for row in reader]

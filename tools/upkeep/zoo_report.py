"""The zoo report (`make report`): every variant's parameters and FLOPs, and for the measured variants a fast-path
check and CPU throughput, as `reports/zoo.md` (+ CSV, PNG) and as the generated tables of the model cards."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import timm

from upkeep.faithfulness import Faithfulness, faithfulness_markdown
from upkeep.fastpath import FastPathCheck, check_fast_path, small_input_size
from upkeep.targets import TargetResult, conditions, met_summary, results_table
from vssm import zoo
from vssm.analysis import published
from vssm.analysis.benchmark import BenchSettings, Measurement, measure
from vssm.analysis.counting import Category
from vssm.analysis.flops import CONVENTION_TEXT, Convention, count_conventions
from vssm.analysis.tables import markdown_table
from vssm.models._records import PublishedCount


@dataclass(frozen=True)
class Entry:
    """One variant's row: counts at its default input size (MACs, FLOPs, MACs under its family's original counter),
    the published count and how ours agrees, and, when measured, the fast-path check and CPU throughput."""

    name: str
    family: str
    input_size: tuple[int, int, int]
    params: int
    state_tensors: int
    macs: int
    macs_by_kind: dict[str, int]
    full: int
    original: int | None
    counter: published.PublishedCounter | None
    reference: PublishedCount | None
    agreement: str | None
    check: FastPathCheck | None = None
    speed: Measurement | None = None
    error: str | None = None


def count_entry(name: str, cache: dict[tuple[str, tuple[int, int, int]], Entry] | None = None) -> Entry:
    """Count one variant (weights allocated, not initialised); `cache` reuses the counts of an identical network
    registered under another name (aliases such as vmamba_tiny / vmamba_tiny_s1l8, 1k / 21k heads)."""
    size = zoo.default_input_size(name)
    model = zoo.create_uninitialised(name, size)
    key = (repr(model), size)
    family = zoo.family_of(name)
    reference = published.published_count(name)
    if cache is not None and key in cache:
        twin = cache[key]
        agreement = published.agreement(twin.original, reference) if reference and twin.original else None
        return replace(twin, name=name, reference=reference, agreement=agreement)
    counter = published.counter_for(family, type(model).__name__)
    conventions = [Convention.MACS, Convention.FULL]
    if counter is not None:
        conventions.append(Convention.PUBLISHED)
    results = count_conventions(model, size, tuple(conventions))
    original = results[Convention.PUBLISHED].total if Convention.PUBLISHED in results else None
    entry = Entry(
        name=name,
        family=family,
        input_size=size,
        params=results[Convention.MACS].params,
        state_tensors=len(model.state_dict()),
        macs=results[Convention.MACS].total,
        macs_by_kind=results[Convention.MACS].by_category,
        full=results[Convention.FULL].total,
        original=original,
        counter=counter,
        reference=reference,
        agreement=published.agreement(original, reference) if reference and original is not None else None,
    )
    if cache is not None:
        cache[key] = entry
    return entry


def check_size(name: str, input_size: tuple[int, int, int]) -> tuple[int, int, int]:
    """The smallest square input, from `small_input_size` up in steps of the stride, that the model can be built for
    (window sizes, channel tokens: a model may refuse a small grid); the default size if none below it works."""
    stride = zoo.stride_of(timm.create_model(name, device="meta"))
    channels, _, side = small_input_size(stride, input_size[0])
    while side < min(input_size[1:]):
        try:
            zoo.check_input_size(name, (channels, side, side))
            return channels, side, side
        except ValueError:
            side += stride
    return input_size


def measure_entry(entry: Entry, settings: BenchSettings) -> Entry:
    """Check the fast path on a small input, then time inference at the entry's input size."""
    small = check_size(entry.name, entry.input_size)
    check = check_fast_path(zoo.create(entry.name, small), small)
    model = zoo.create(entry.name, entry.input_size)
    settings = replace(settings, image_size=entry.input_size[1:], in_chans=entry.input_size[0])
    return replace(entry, check=check, speed=measure(model, entry.name, settings))


def _g(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e9:.4g}"


def _size(entry: Entry) -> str:
    return f"{entry.input_size[1]}x{entry.input_size[2]}"


def _check(entry: Entry) -> str:
    if entry.error is not None:
        return f"error: {entry.error}"
    if entry.check is None:
        return "-"
    verdict = "ok" if entry.check.ok else "FAILED"
    return f"{verdict} ({entry.check.backend}: {entry.check.error:.1e} <= {entry.check.bound:.1e})"


def _speed_cells(entry: Entry) -> list[str]:
    m = entry.speed
    if m is None:
        return ["-", "-", "-"]
    slow, fast = m.images_per_s_range
    return [f"{m.images_per_s:.3g} ({slow:.3g}-{fast:.3g})", f"{m.ms_median / m.batch:.0f}",
            "-" if m.peak_memory_mb is None else f"{m.peak_memory_mb:.0f}"]


def choose_table(entries: Iterable[Entry]) -> str:
    """The table a user chooses from: every variant, measured ones with throughput and the fast-path check."""
    headers = ["family", "model", "input", "params (M)", "GMACs", "GFLOPs (full)", "CPU images/s (range)",
               "ms / image", "peak MB", "fast path vs reference"]
    rows = [[e.family, e.name, _size(e), f"{e.params / 1e6:.2f}", _g(e.macs), _g(e.full), *_speed_cells(e), _check(e)]
            for e in entries]
    return markdown_table(headers, rows, right=[False, False, True, True, True, True, True, True, True, False])


def _agreement(entry: Entry) -> str:
    if entry.counter is None:
        return "no original counter mirrored"
    if entry.reference is None:
        return "not published"
    return (entry.agreement or "-") + (f" ({entry.reference.note})" if entry.reference.note else "")


def published_table(entries: Iterable[Entry]) -> str:
    """Ours under each family's original counter against what the authors published, then where each published
    count comes from."""
    headers = ["model", "original counter", "ours (GMACs)", "published (printed)", "published (most precise)",
               "ours vs published", "agreement"]
    rows = []
    for e in entries:
        if e.counter is None or e.original is None:
            continue
        ref = e.reference
        ours = f"{e.original:,}" if ref and ref.exact is not None else f"{e.original / 1e9:.6g}"
        delta = f"{100 * (e.original / 1e9 / float(ref.reference) - 1):+.2f} %" if ref else "-"
        rows.append([e.name, e.counter.name, ours, ref.printed if ref else "-", ref.reference if ref else "-", delta,
                     _agreement(e)])
    sources = sorted({f"- {e.reference.source}." for e in entries if e.counter is not None and e.reference})
    return "\n\n".join([markdown_table(headers, rows, right=[False, False, True, True, True, True, False]),
                        *(["Published counts from:\n" + "\n".join(sources)] if sources else [])])


def flops_card_table(entries: Iterable[Entry]) -> str:
    """A card's `flops` block: every variant of one family (exact parameter and state-tensor counts)."""
    entries = list(entries)
    counters = {e.counter for e in entries if e.counter is not None}
    headers = ["model", "input", "params", "state tensors", "GMACs (macs)", "GFLOPs (full)"]
    if counters:
        headers += ["GMACs (original counter)", "published", "agreement"]
    rows = []
    for e in entries:
        row = [e.name, _size(e), f"{e.params:,}", e.state_tensors, _g(e.macs), _g(e.full)]
        if counters:
            row += [_g(e.original), e.reference.printed if e.reference else "-", _agreement(e)]
        rows.append(row)
    notes = [f"- `macs`: {CONVENTION_TEXT[Convention.MACS]}.", f"- `full`: {CONVENTION_TEXT[Convention.FULL]}."]
    notes += [f"- original counter, {c.name}: {c.description}." for c in sorted(counters, key=lambda c: c.name)]
    published_notes = sorted({f"- published: {e.reference.source}." for e in entries if e.reference})
    return markdown_table(headers, rows, right=[False, *[True] * (len(headers) - 1)]) + "\n\n" + "\n".join(
        notes + published_notes)


def flops_by_kind_card_table(entries: Iterable[Entry]) -> str:
    """A card's `flops_by_kind` block: each variant's `macs` count split by kind of work (GMACs)."""
    entries = list(entries)
    kinds = [k.value for k in Category if any(e.macs_by_kind.get(k.value) for e in entries)]
    headers = ["model", "input", *kinds, "total"]
    rows = [[e.name, _size(e), *(_g(e.macs_by_kind.get(k, 0)) for k in kinds), _g(e.macs)] for e in entries]
    return (markdown_table(headers, rows, right=[False, *[True] * (len(headers) - 1)])
            + "\n\nGMACs per image under the `macs` convention by kind of work: conv (convolutions), matmul (linear "
            "layers and matrix products), attention (both products of scaled dot-product attention), scan (the "
            "selective scan), norm, pool, resample.")


def speed_card_table(entries: Iterable[Entry], machine: str, settings_text: str) -> str | None:
    """A card's `speed` block: the family's measured variants (None when none was measured in this run)."""
    measured = [e for e in entries if e.speed is not None]
    if not measured:
        return None
    headers = ["model", "input", "batch", "CPU images/s (range)", "ms / image", "peak MB", "fast path vs reference"]
    rows = [[e.name, _size(e), e.speed.batch, *_speed_cells(e), _check(e)] for e in measured]
    table = markdown_table(headers, rows, right=[False, True, True, True, True, True, False])
    return f"Machine: {machine}. {settings_text}\n\n{table}"


def targets_markdown(results: Sequence[TargetResult], source: str) -> str | None:
    """Speed-targets rows read from `source` (a `targets.csv`): how they were measured, how many targets are met,
    the table; None without rows."""
    if not results:
        return None
    return (f"From `{source}` (`python benchmarks/targets.py`). {conditions(results)}\n\n{met_summary(results)}\n\n"
            f"{results_table(results)}")


def card_tables(entries: list[Entry], machine: str, settings_text: str, targets: Sequence[TargetResult] = (),
                targets_source: str = "benchmarks/targets.csv",
                faithfulness: Sequence[Faithfulness] = ()) -> Callable[[str, str], str | None]:
    """The `table(kind, family)` callback of `upkeep.cards`; None for a kind or family it cannot fill."""

    def table(kind: str, family: str) -> str | None:
        if kind == "targets":
            return targets_markdown([r for r in targets if r.family == family], targets_source)
        if kind == "faithfulness":
            return faithfulness_markdown([r for r in faithfulness if r.family == family])
        mine = [e for e in entries if e.family == family]
        if not mine:
            return None
        if kind == "flops":
            return flops_card_table(mine)
        if kind == "flops_by_kind":
            return flops_by_kind_card_table(mine)
        if kind == "speed":
            return speed_card_table(mine, machine, settings_text)
        return None

    return table

"""The speed targets (tools/upkeep/targets.py, benchmarks/targets.py): the issues' table, a run on the test variants,
alternating timing and the time split by kind of op."""

from __future__ import annotations

import csv
import importlib.util
import os
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from upkeep.profile import OTHER, kind_of, time_split
from upkeep.targets import (
    ALLOCATOR_VARIABLES,
    Metric,
    Network,
    Target,
    TargetResult,
    allocator,
    family_targets,
    read_results,
    run_targets,
)
from vssm.analysis.benchmark import time_alternately

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "targets.py"


def _targets_script():
    spec = importlib.util.spec_from_file_location("benchmarks_targets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def test_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("targets")
    code = _targets_script().main(["--test-variants", "--rounds", "2", "--output", str(out), "--machine",
                                   "test machine"])
    return code, out


def test_the_table_holds_every_issue_target() -> None:
    targets = {(t.ours.name, t.baseline.name): t for t in family_targets() if t.threshold is not None}
    expected = {
        ("vim_small", "deit_small_patch16_224"): 0.5,
        ("vmamba_tiny", "swin_tiny_patch4_window7_224"): 0.5,
        ("local_vim_tiny", "deit_tiny_patch16_224"): 0.5,
        ("local_vssm_tiny", "swin_tiny_patch4_window7_224"): 0.5,
        ("mambavision_tiny", "convnext_tiny"): 0.7,
        ("groupmamba_tiny", "swin_tiny_patch4_window7_224"): 0.5,
        ("plainmamba_l1", "deit_small_patch16_224"): 0.5,
        ("msvmamba_tiny", "swin_tiny_patch4_window7_224"): 0.5,
    }
    for pair, threshold in expected.items():
        target = targets.pop(pair)
        assert (target.threshold, target.metric, target.batch, target.input_size) == (
            threshold, Metric.SPEED, 8, (3, 224, 224))
    (umamba,) = targets.values()
    assert (umamba.family, umamba.threshold, umamba.metric, umamba.batch, umamba.input_size) == (
        "umamba", 1.5, Metric.TIME, 1, (1, 256, 256))
    assert {t.family for t in family_targets()} == {"vim", "vmamba", "localmamba", "mambavision", "umamba",
                                                   "groupmamba", "plainmamba", "msvmamba"}


def test_the_plain_unet_is_the_same_plan_without_mamba() -> None:
    bot = next(t for t in family_targets(test_variants=True) if t.family == "umamba")
    ours, plain = bot.ours.build(bot.input_size), bot.baseline.build(bot.input_size)
    mamba = [name for name, _ in ours.named_parameters() if ".mamba" in name]
    assert mamba and not any(".mamba" in name for name, _ in plain.named_parameters())
    assert {n for n, _ in plain.named_parameters()} == {n for n, _ in ours.named_parameters()} - set(mamba)
    x = torch.randn(bot.batch, *bot.input_size)
    with torch.no_grad():
        assert ours(x).shape == plain(x).shape == (bot.batch, 4, *bot.input_size[1:])


def test_a_run_on_the_test_variants_writes_sane_rows(test_run: tuple[int, Path]) -> None:
    code, out = test_run
    assert code == 0
    rows = list(csv.DictReader((out / "targets.csv").open()))
    targets = family_targets(test_variants=True)
    assert [(r["family"], r["model"], r["baseline"]) for r in rows] == [
        (t.family, t.ours.name, t.baseline.name) for t in targets]
    for row, target in zip(rows, targets):
        ours, theirs = float(row["images_per_s"]), float(row["baseline_images_per_s"])
        assert ours > 0 and theirs > 0
        # ms_per_batch is written to 0.01 ms: half of that on top of the relative tolerance
        assert float(row["ms_per_batch"]) == pytest.approx(target.batch / ours * 1e3, rel=1e-3, abs=0.005)
        expected = ours / theirs if target.metric is Metric.SPEED else theirs / ours
        assert float(row["ratio"]) == pytest.approx(expected, rel=1e-3)
        if target.threshold is None:
            assert row["met"] == "" and row["target"] == "-"
        else:
            above = float(row["ratio"]) >= target.threshold
            assert row["met"] == str(above if target.metric is Metric.SPEED else not above)
        assert row["machine"].startswith("test machine") and row["scan_backend"] and int(row["threads"]) >= 1
        assert len(row["load_before"].split(", ")) == 3 and len(row["load_after"].split(", ")) == 3
        assert float(row["gmacs"]) > 0 and int(row["ops"]) > 0 and "%" in row["time_split"]
        assert int(row["params"]) == sum(p.numel() for p in target.ours.build(target.input_size).parameters())
        assert row["batch"] == str(target.batch) and row["input"] == "x".join(map(str, target.input_size))
    text = (out / "targets.md").read_text()
    assert "test machine" in text and "load average" in text and "Command: `python benchmarks/targets.py" in text
    assert all(f"| {t.ours.name} " in text for t in targets)
    assert read_results(out / "targets.csv") == [TargetResult.from_csv(r) for r in rows]


def test_families_are_chosen_by_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    script = _targets_script()
    assert script.main(["--test-variants", "--family", "vmm", "--output", str(tmp_path)]) == 2
    assert "vmamba" in capsys.readouterr().err and not list(tmp_path.iterdir())
    assert script.main(["--test-variants", "--family", "vmamba", "--rounds", "1", "--output", str(tmp_path)]) == 0
    rows = read_results(tmp_path / "targets_vmamba.csv")
    assert [r.family for r in rows] == ["vmamba"]


def test_a_busy_machine_is_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    load = torch.get_num_threads() + 1 + 10 * random.random()
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 1.0, 1.0))
    assert _targets_script().main(["--test-variants", "--family", "vim", "--rounds", "1", "--warmup", "0",
                                   "--output", str(tmp_path)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"load average {load:.2f}" in warnings[0]


def test_met_follows_the_metric() -> None:
    tiny = {"batch": 1, "input_size": (3, 64, 64)}
    vim, vit = Network.timm("test_vim"), Network.timm("test_vit")
    unreachable = Target("vim", vim, vit, 1e6, **tiny)
    generous = Target("vim", vim, vit, 1e6, Metric.TIME, **tiny)
    reference = Target("vim", vim, vit, None, **tiny)
    rows = run_targets([unreachable, generous, reference], rounds=1, warmup=0, progress=False)
    assert [r.met for r in rows] == [False, True, None]
    assert rows[0].images_per_s == rows[1].images_per_s  # one timing per network and setting


def test_steps_take_turns() -> None:
    calls: list[str] = []
    times = time_alternately({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4
    assert [len(t) for t in times.values()] == [3, 3] and all(ms >= 0 for t in times.values() for ms in t)


def test_time_split_books_ops_by_kind() -> None:
    assert kind_of("aten.linear") == kind_of("aten.bmm") == "matmul"
    assert kind_of("vssm.selective_scan") == "scan" and kind_of("aten.convolution") == "conv"
    assert kind_of("aten.native_layer_norm") == "norm" and kind_of("aten.cat") == "data movement"
    assert kind_of("aten.silu") == OTHER
    model = nn.Sequential(nn.Linear(64, 256), nn.SiLU(), nn.LayerNorm(256))
    split = time_split(model, torch.randn(32, 64))
    assert set(split.shares) == {"matmul", OTHER, "norm"}
    assert sum(split.shares.values()) == pytest.approx(1.0)
    assert split.ops == 3 and "matmul" in split.text(at_least=0)


def test_the_results_name_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALLOCATOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert allocator() == "glibc malloc defaults"
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "4000000000")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "4000000000")
    assert allocator() == "MALLOC_MMAP_THRESHOLD_=4000000000 MALLOC_TRIM_THRESHOLD_=4000000000"

"""Throughput measurement (vssm.analysis.benchmark) and tools/benchmark.py end to end on CPU: the tables, the load
average and the busy-machine warning, the device check and the --amp spelling."""

from __future__ import annotations

import argparse
import csv
import os
import random
from pathlib import Path

import pytest
import torch
from tool_modules import load_tool
from torch import nn

from vssm import zoo
from vssm.analysis.benchmark import BenchSettings, Mode, measure, tensor_peak_mb
from vssm.engine import add_amp_argument

benchmark_tool = load_tool("benchmark")


def test_peak_tensor_memory_of_a_linear_layer_is_weights_input_and_output() -> None:
    model = nn.Linear(300, 200)
    inputs = torch.randn(64, 300)
    expected = 4 * (300 * 200 + 200 + 64 * 300 + 64 * 200)
    with torch.inference_mode():
        assert tensor_peak_mb(lambda: model(inputs), model, inputs) * 2**20 == expected


@pytest.mark.parametrize("mode", list(Mode))
def test_measure_reports_what_was_asked(mode: Mode) -> None:
    model = zoo.create("test_vmamba")
    settings = BenchSettings(mode=mode, batch=3, image_size=(64, 96), repeats=3, warmup=1)
    result = measure(model, "test_vmamba", settings)
    assert (result.batch, result.height, result.width, result.repeats, result.mode) == (3, 64, 96, 3, mode.value)
    assert result.ms_min <= result.ms_median <= result.ms_max
    slow, fast = result.images_per_s_range
    assert 0 < slow <= result.images_per_s <= fast
    assert result.images_per_s == pytest.approx(3e3 / result.ms_median)
    weights_mb = sum(p.numel() * 4 for p in model.parameters()) / 2**20
    assert result.peak_memory_mb > weights_mb
    assert result.params == sum(p.numel() for p in model.parameters())


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="batch"):
        BenchSettings(batch=0)
    with pytest.raises(ValueError):
        BenchSettings(mode="sideways")
    with pytest.raises(ValueError, match="amp_dtype"):
        BenchSettings(amp_dtype=torch.int8)
    assert BenchSettings(amp_dtype=torch.bfloat16).precision == "amp bfloat16"


def test_tool_writes_sane_csv_markdown_and_png(tmp_path: Path) -> None:
    code = benchmark_tool.main(["test_vim", "--batch", "2", "--resolution", "64", "80x96", "--mode", "inference",
                                "train", "--repeats", "2", "--warmup", "1", "--compare", "test_resnet",
                                "--output", str(tmp_path), "--name", "bench", "--machine", "test machine"])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "bench.csv").open()))
    ours = [r for r in rows if r["model"] == "test_vim"]
    assert len(ours) == 4 and len([r for r in rows if r["model"] == "test_resnet"]) == 4
    assert {(r["height"], r["width"]) for r in rows} == {("64", "64"), ("80", "96")}
    assert {r["mode"] for r in rows} == {"inference", "train"}
    for row in rows:
        assert row["batch"] == "2" and row["device"] == "cpu" and row["machine"].startswith("test machine")
        assert float(row["images_per_s_min"]) <= float(row["images_per_s"]) <= float(row["images_per_s_max"])
        assert float(row["images_per_s"]) > 0 and float(row["peak_memory_mb"]) > 0
    for row in ours:
        assert row["baseline"] == "test_resnet"
        assert float(row["ratio"]) == pytest.approx(float(row["images_per_s"]) / float(row["baseline_images_per_s"]),
                                                    rel=1e-3)
    text = (tmp_path / "bench.md").read_text()
    assert "Machine: test machine" in text and "| test_vim" in text and "Command: `python tools/benchmark.py" in text
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_tool_rejects_bad_names_and_sizes_before_running(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert benchmark_tool.main(["test_vimm", "--output", str(tmp_path)]) == 2
    assert "did you mean test_vim" in capsys.readouterr().err
    assert benchmark_tool.main(["test_vim", "--resolution", "8", "--output", str(tmp_path)]) == 2
    assert "stride 16" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def _run_tiny(tmp_path: Path, *extra: str) -> int:
    return benchmark_tool.main(["test_vim", "--resolution", "32", "--repeats", "1", "--warmup", "0", "--output",
                                str(tmp_path), "--name", "bench", *extra])


def test_load_average_is_recorded_and_a_busy_machine_is_named(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    threads = torch.get_num_threads()
    busy = (threads + random.uniform(0.5, 20), random.uniform(0, 9), random.uniform(0, 9))
    monkeypatch.setattr(os, "getloadavg", lambda: busy)
    assert _run_tiny(tmp_path) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "busy" in warnings[0] and f"{busy[0]:.2f}" in warnings[0]
    loads = ", ".join(f"{v:.2f}" for v in busy)
    text = (tmp_path / "bench.md").read_text()
    assert f"Load average (1, 5, 15 min): {loads} at the start, {loads} at the end" in text
    (row,) = csv.DictReader((tmp_path / "bench.csv").open())
    assert row["load_average_start"] == row["load_average_end"] == loads

    idle = (random.uniform(0, threads), 0.0, 0.0)
    monkeypatch.setattr(os, "getloadavg", lambda: idle)
    assert _run_tiny(tmp_path) == 0
    assert "warning:" not in capsys.readouterr().err


@pytest.mark.parametrize("device", ["tpu9", "cuda:x", "meta", "cuda"])
def test_a_device_this_machine_lacks_is_one_line_and_status_2(device: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _run_tiny(tmp_path, "--device", device) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: device {device!r}: ")
    assert not list(tmp_path.iterdir())


def test_amp_is_spelled_as_in_every_tool(tmp_path: Path) -> None:
    shared = argparse.ArgumentParser()
    add_amp_argument(shared)
    (amp,) = [a for a in shared._actions if a.dest == "amp"]
    assert tuple(amp.choices) == benchmark_tool.AMP_CHOICES
    assert tuple(m.value for m in Mode) == benchmark_tool.MODES
    assert benchmark_tool.parse_args(["--amp", "bf16"]).amp == "bf16"
    with pytest.raises(SystemExit):
        benchmark_tool.parse_args(["--amp", "bfloat16"])
    assert _run_tiny(tmp_path, "--amp", "bf16") == 0
    (row,) = csv.DictReader((tmp_path / "bench.csv").open())
    assert row["precision"] == "amp bfloat16"

"""benchmarks/bench_export.py: every (model, batch) gets a row, the table names the command, machine and load, and
lands in OUTPUT.md / OUTPUT.csv; the timing alternates the runners round by round."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from tool_modules import BENCHMARKS, load_benchmark

bench = load_benchmark("bench_export")


def _fake_measure(name: str, batch: int, rounds: int, with_compile: bool, workdir: Path) -> dict[str, str]:
    return {"model": name, "batch": str(batch), "eager img/s": "1.00", "compile img/s": "2.00",
            "compile / eager": "2.00", "ORT img/s": "3.00", "ORT / eager": "3.00"}


def test_every_model_and_batch_is_a_row_of_the_written_table(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(bench, "measure", _fake_measure)
    output = tmp_path / "export"
    assert bench.main(["test_vim", "resnet18", "--batch", "1", "8", "--output", str(output)]) == 0
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert [(r["model"], r["batch"]) for r in rows] == [("test_vim", "1"), ("test_vim", "8"), ("resnet18", "1"),
                                                        ("resnet18", "8")]
    assert all(r["machine"] and "before" in r["load"] and "after" in r["load"] for r in rows)
    text = output.with_suffix(".md").read_text()
    assert f"`python benchmarks/bench_export.py test_vim resnet18 --batch 1 8 --output {output}`" in text
    assert "Machine: " in text and "load average (1, 5, 15 min)" in text and "| test_vim " in text
    assert bench.main(["test_vimm", "--output", str(output)]) == 2
    assert "did you mean test_vim" in capsys.readouterr().err


def test_the_default_run_is_the_seven_models_at_batch_1_and_8() -> None:
    args = bench.parse_args([])
    assert args.models == ["vim_small", "vmamba_tiny", "local_vssm_tiny", "mambavision_tiny", "umamba_bot_2d",
                           "deit_small_patch16_224", "swin_tiny_patch4_window7_224"]
    assert args.batch == [1, 8] and args.output == Path("runs/export/export")
    assert bench.parse_args(["--update-repo"]).output == BENCHMARKS / "export"


def test_runners_are_timed_in_turn_round_by_round() -> None:
    import torch

    calls = []

    def runner(key: str):
        return lambda x: calls.append(key)

    runners = {key: runner(key) for key in ("eager", "ORT", "compile")}
    speed = bench._images_per_second(runners, torch.randn(4, 3), rounds=3)
    assert calls == ["eager", "ORT", "compile"] * 4  # a warm-up each, then three rounds
    assert set(speed) == set(runners) and all(v > 0 for v in speed.values())


def test_each_timed_run_waits_for_the_previous_runners_spinning_workers() -> None:
    """ONNX Runtime's workers spin on after a run returns: the next runner is timed only once they have stopped."""
    import threading

    import torch

    spinning: list[threading.Thread] = []
    overlapped = []

    def spin_after_returning(x: torch.Tensor) -> None:
        def spin() -> None:  # 50 ms of CPU, however long the loaded machine takes to give it
            start = time.thread_time()
            while time.thread_time() - start < 0.05:
                pass

        spinning.append(threading.Thread(target=spin))
        spinning[-1].start()

    def next_runner(x: torch.Tensor) -> None:
        overlapped.append(spinning[-1].is_alive())

    bench._images_per_second({"ORT": spin_after_returning, "compile": next_runner}, torch.randn(1, 3), rounds=2)
    assert overlapped[1:] == [False, False]  # the two timed runs (the first call is the untimed warm-up)


@pytest.mark.slow  # the ONNX exporter and inductor: minutes on a loaded 2-core CPU
def test_a_real_measurement_of_a_test_variant(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    row = bench.measure("test_vim", 2, 1, True, tmp_path)
    assert float(row["eager img/s"]) > 0 and float(row["compile img/s"]) > 0 and float(row["ORT img/s"]) > 0

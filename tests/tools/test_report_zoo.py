"""tools/report.py (the main job) end to end on the tiny test variants: table, CSV, PNG, the speed targets' and golden
fixtures' sections, and the card refresh."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest
from tool_modules import load_tool

from vssm.analysis import zoo
from vssm.analysis.cards import END, start_marker
from vssm.analysis.targets import TargetResult, write_results

report_tool = load_tool("report")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _target_row(family: str, model: str, met: bool | None) -> TargetResult:
    return TargetResult(
        family=family, model=model, baseline="test_resnet", metric="speed", ratio=0.61, target=">= 0.5x", met=met,
        batch=2, input="3x64x64", images_per_s=12.5, baseline_images_per_s=20.5, ms_per_batch=160.0,
        baseline_ms_per_batch=97.56, spread_pct=3.0, baseline_spread_pct=2.0, params=1000, baseline_params=2000,
        gmacs=0.01, baseline_gmacs=0.02, ops=100, baseline_ops=50, time_split="matmul 60 %, scan 40 %",
        baseline_time_split="conv 100 %", rounds=2, threads=2, scan_backend="cpu", omp_wait_policy="unset",
        allocator="glibc malloc defaults",
        load_before="0.50, 0.40, 0.30", load_after="0.60, 0.40, 0.30", machine="targets machine",
        date="2026-01-01 00:00 UTC",
    )


def test_report_on_the_test_variants_writes_the_table_and_refreshes_cards(tmp_path: Path) -> None:
    out, cards, fixtures = tmp_path / "reports", tmp_path / "cards", tmp_path / "fixtures"
    cards.mkdir()
    fixtures.mkdir()
    shutil.copytree(FIXTURES / "vmamba_test_s1l8", fixtures / "vmamba_test_s1l8")
    targets = [_target_row("vmamba", "test_vmamba", True), _target_row("vim", "test_vim", False)]
    write_results(targets, tmp_path, "python benchmarks/targets.py --test-variants")
    family = "vmamba"
    hand = (f"# Card\n\nHand-written.\n\n{start_marker('targets')}\nold targets\n{END}\n\nMiddle text.\n\n"
            f"{start_marker('faithfulness')}\n{END}\n\n{start_marker('flops_by_kind')}\n{END}\n\n"
            f"{start_marker('flops')}\n{END}\n\nEnd text.\n")
    (cards / f"{family}.md").write_text(hand)
    (cards / "vim.md").write_text("# Vim card\n")
    code = report_tool.main(["--test-variants", "--repeats", "1", "--warmup", "0", "--out", str(out),
                             "--cards", str(cards), "--machine", "test machine", "--targets",
                             str(tmp_path / "targets.csv"), "--fixtures", str(fixtures)])
    assert code == 0
    text = (out / "zoo.md").read_text()
    assert "Machine: test machine" in text and "## Against the published counts" in text
    assert "Load average (1, 5, 15 min)" in text and "1 of 2 targets met" in text
    assert "| vmamba_test_s1l8 | test_vmamba" in text and "| yes" in text
    rows = {r["model"]: r for r in csv.DictReader((out / "zoo.csv").open())}
    assert set(rows) == set(zoo.test_variants())
    for name, row in rows.items():
        assert f"| {name} " in text
        assert int(row["params"]) > 0 and int(row["full_flops"]) > int(row["macs"]) > 0
        assert float(row["images_per_s"]) > 0 and row["fast_path_ok"] == "True"
        assert row["input"] == "x".join(map(str, zoo.default_input_size(name)))
    assert (out / "zoo.png").read_bytes()[:4] == b"\x89PNG"
    card = (cards / f"{family}.md").read_text()
    # Hand-written text stays as it was, in place; every block is filled with this family's numbers only.
    outside = [part.split(END)[-1] for part in card.split("<!-- vssm:table:")]
    assert outside == [part.split(END)[-1] for part in hand.split("<!-- vssm:table:")]
    assert "old targets" not in card and "targets machine" in card and "| test_vmamba " in card
    assert "test_vim" not in card.split(start_marker("targets"))[1].split(END)[0]
    assert "| vmamba_test_s1l8 | test_vmamba" in card and "511,784 / 511,784" in card
    assert re.search(r"\| test_vmamba +\| +64x64 \| +511,784 \|", card)  # flops: exact parameter count
    by_kind = card.split(start_marker("flops_by_kind"))[1].split(END)[0]
    assert re.search(r"\| model +\| +input \|.* scan \|.* total \|", by_kind) and "| test_vmamba " in by_kind
    assert "1 of 1 targets met" in card
    vim_card = (cards / "vim.md").read_text()  # a card without blocks gets the generated section appended
    assert vim_card.startswith("# Vim card\n") and "Machine: test machine" in vim_card
    assert "targets machine" in vim_card and "No golden" not in vim_card


def test_report_rejects_unknown_models(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert report_tool.main(["test_vimm", "--out", str(tmp_path)]) == 2
    assert "did you mean test_vim" in capsys.readouterr().err


def test_default_selection_counts_every_variant_and_measures_the_headlines() -> None:
    args = report_tool.parse_args([])
    counted, measured = report_tool.selection(args)
    assert set(measured) == set(zoo.headline_variants()) and set(measured) <= set(counted)
    assert not any(n.startswith(zoo.TEST_PREFIX) for n in counted)
    counted_all, measured_all = report_tool.selection(report_tool.parse_args(["--all"]))
    assert measured_all == counted_all == counted


def test_broken_inputs_are_reported_and_the_rest_still_written(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES / "vmamba_test_s1l8", fixtures / "vmamba_test_s1l8")
    (fixtures / "vmamba_test_s1l8" / "state_dict.pt").write_bytes(b"not a checkpoint")
    old_targets = tmp_path / "old_targets.csv"
    old_targets.write_text("family,model,ratio\nvim,vim_small,0.5\n")
    code = report_tool.main(["test_vmamba", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path), "--no-cards",
                             "--targets", str(old_targets), "--fixtures", str(fixtures)])
    assert code == 1
    text = (tmp_path / "zoo.md").read_text()
    assert "- vmamba_test_s1l8: golden fixture: " in text and "| test_vmamba " in text
    assert "- speed targets: " in text and "missing baseline, metric" in text
    assert f"No results at `{old_targets}`" in text and "No golden fixtures" in text

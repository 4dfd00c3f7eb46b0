"""tools/report.py (the main job) end to end on the tiny test variants: table, CSV, PNG and card refresh."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tool_modules import load_tool

from vssm.analysis import zoo

report_tool = load_tool("report")


def test_report_on_the_test_variants_writes_the_table_and_refreshes_cards(tmp_path: Path) -> None:
    out, cards = tmp_path / "reports", tmp_path / "cards"
    cards.mkdir()
    family = zoo.family_of(zoo.test_variants()[0])
    (cards / f"{family}.md").write_text("# Card\n\nHand-written.\n")
    code = report_tool.main(["--test-variants", "--repeats", "1", "--warmup", "0", "--out", str(out),
                             "--cards", str(cards), "--machine", "test machine"])
    assert code == 0
    text = (out / "zoo.md").read_text()
    assert "Machine: test machine" in text and "## Against the published counts" in text
    rows = {r["model"]: r for r in csv.DictReader((out / "zoo.csv").open())}
    assert set(rows) == set(zoo.test_variants())
    for name, row in rows.items():
        assert f"| {name} " in text
        assert int(row["params"]) > 0 and int(row["full_flops"]) > int(row["macs"]) > 0
        assert float(row["images_per_s"]) > 0 and row["fast_path_ok"] == "True"
        assert row["input"] == "x".join(map(str, zoo.default_input_size(name)))
    assert (out / "zoo.png").read_bytes()[:4] == b"\x89PNG"
    card = (cards / f"{family}.md").read_text()
    assert card.startswith("# Card\n\nHand-written.\n") and "<!-- vssm:table:flops -->" in card
    assert "Machine: test machine" in card and "test_" in card


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

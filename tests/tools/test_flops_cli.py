"""tools/flops.py end to end on the test variants: table, CSV, per-module breakdown, bad names and sizes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tool_modules import load_tool

from vssm.analysis.flops import Convention

flops_tool = load_tool("flops")


def test_counts_test_variants_and_writes_csv_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_csv, out_md = tmp_path / "flops.csv", tmp_path / "flops.md"
    code = flops_tool.main(["test_vim", "test_vmamba", "--input-size", "64", "--by-module", "--depth", "1",
                            "--fvcore", "--csv", str(out_csv), "--markdown", str(out_md)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "GMACs (macs)" in printed and "GFLOPs (full)" in printed and "fvcore GMACs" in printed
    assert "test_vmamba by module" in printed and "patch_embed" in printed
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["model"] for r in rows] == ["test_vim", "test_vmamba"]
    for row in rows:
        assert row["input"] == "3x64x64"
        assert float(row["GMACs (macs)"]) == float(row["fvcore GMACs"]) > 0
        assert float(row["GFLOPs (full)"]) > float(row["GMACs (macs)"])
        assert float(row["params (M)"]) > 0
    assert "`full` (FLOPs)" in out_md.read_text()


def test_backward_counts_more_and_skips_the_published_convention(capsys: pytest.CaptureFixture) -> None:
    assert flops_tool.main(["test_vmamba", "--backward", "--convention", "macs", "full", "published"]) == 0
    printed = capsys.readouterr().out
    assert "forward + backward" in printed and "GMACs (published)" in printed


def test_unknown_names_and_impossible_sizes_fail_with_a_hint(capsys: pytest.CaptureFixture) -> None:
    assert flops_tool.main(["test_vmambaa"]) == 2
    assert "did you mean test_vmamba" in capsys.readouterr().err
    assert flops_tool.main(["test_vmamba", "--input-size", "16"]) == 2
    assert "smaller than the model's stride 32" in capsys.readouterr().err


def test_convention_choices_are_the_counters() -> None:
    # The tool lists them literally so that --help answers without importing torch.
    assert flops_tool.CONVENTIONS == tuple(c.value for c in Convention)
    assert flops_tool.parse_args([]).convention == list(flops_tool.CONVENTIONS)

"""benchmarks/export_status.py (compile / export / ONNX Runtime status of the released models): selection, a failing
check recorded in one line while the others run, runs in parts merging into one table; and the model cards' `export`
block filled from its CSV (tools/upkeep/exports.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from tool_modules import load_benchmark

from upkeep.cards import END, refresh_text, start_marker
from upkeep.exports import NOT_RUN, export_card_table, read_status, with_export_tables
from vssm import zoo

status = load_benchmark("export_status")


def test_selection_is_the_released_variants_of_the_families_asked_for() -> None:
    assert status.select(None, ["vim"]) == [n for n in zoo.families()["vim"]]
    assert status.select(["vmamba_tiny", "vim_small"], None) == ["vim_small", "vmamba_tiny"]
    everything = status.select(None, None)
    assert everything == sorted(everything) and not any(n.startswith("test_") for n in everything)
    assert set(everything) == {n for names in zoo.families().values() for n in names}
    with pytest.raises(ValueError, match=r"--family: expected some of .*got \['vimm'\]"):
        status.select(None, ["vimm"])
    with pytest.raises(ValueError, match=r"--models: expected released vssm models .*got \['test_vim'\]"):
        status.select(["test_vim"], None)


def _raise(*args) -> None:
    raise RuntimeError("no translation for\nsecond line")


def test_a_failing_check_is_one_line_and_the_others_still_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(status, "_onnx_runtime", _raise)
    row = status.check_model("test_vmamba", False, tmp_path)
    assert row.export == "ok" and float(row.export_max_abs) >= 0 and float(row.export_max_rel) >= 0
    assert row.compile == NOT_RUN and row.onnx == "failed" and row.onnx_max_abs == ""
    assert row.status == "failed" and row.error == "onnx: RuntimeError: no translation for"


def test_a_check_beyond_the_rule_fails_with_its_error(tmp_path: Path, monkeypatch) -> None:
    def off_by_one(model, x):
        return lambda t: model(t) + 1.0

    monkeypatch.setattr(status, "_exported", off_by_one)
    monkeypatch.setattr(status, "_onnx_runtime", lambda model, x, workdir: model)
    row = status.check_model("test_vim", False, tmp_path)
    assert row.export == "failed" and row.onnx == "ok" and row.status == "failed"
    assert float(row.export_max_abs) == pytest.approx(1.0, rel=1e-3)
    assert row.error == f"export: max abs error {row.export_max_abs} beyond the fast-path rule"


def test_runs_in_parts_merge_into_one_table(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(status, "_onnx_runtime", lambda model, x, workdir: model)  # the exporter: minutes
    output = tmp_path / "export_status"
    monkeypatch.setattr(status, "select", lambda models, families: ["test_vmamba"])
    assert status.main(["--no-compile", "--output", str(output)]) == 0
    monkeypatch.setattr(status, "select", lambda models, families: ["test_vim"])
    assert status.main(["--no-compile", "--output", str(output)]) == 0
    rows = list(csv.DictReader(output.with_suffix(".csv").open()))
    assert [r["model"] for r in rows] == ["test_vim", "test_vmamba"]  # sorted by family, then model
    assert all(r["status"] == "ok" and r["machine"] and r["load"] and r["date"] for r in rows)
    assert rows[0]["command"] == f"python benchmarks/export_status.py --no-compile --output {output}"
    text = output.with_suffix(".md").read_text()
    assert "2 of 2 models ok" in text and "| test_vim " in text and "| test_vmamba " in text
    assert "## Runs" in text and "--no-compile" in text and "| test_vim " in capsys.readouterr().out
    (tmp_path / "other.csv").write_text("model,ok\nvim_small,yes\n")
    assert status.main(["--models", "vim_small", "--output", str(tmp_path / "other")]) == 2
    assert "expected the columns" in capsys.readouterr().err


def _row(model: str, **values: str) -> dict[str, str]:
    row = {"family": zoo.family_of(model), "model": model, "input": "3x224x224", "compile": "ok", "export": "ok",
           "export_max_abs": "1.00e-06", "onnx": "ok", "onnx_max_abs": "2.00e-06", "onnx_max_rel": "3.00e-07",
           "status": "ok", "error": "", "machine": "test machine", "date": "2026-01-01 00:00 UTC",
           "command": "python benchmarks/export_status.py --family vim"}
    return row | values


def test_the_card_table_has_every_variant_of_the_family_and_not_run_for_the_rest() -> None:
    rows = [_row("vim_small"), _row("vim_tiny", onnx="failed", status="failed", error="onnx: ValueError: x"),
            _row("vmamba_tiny")]
    text = export_card_table(rows, "vim", zoo.families()["vim"], "benchmarks/export_status.csv")
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| vim")}
    assert list(lines) == zoo.families()["vim"] and "vmamba_tiny" not in text
    assert "2.00e-06" in lines["vim_small"] and "| ok " in lines["vim_small"]
    assert "failed (onnx: ValueError: x)" in lines["vim_tiny"]
    assert lines["vim_base"].count(NOT_RUN) == 4
    assert "`python benchmarks/export_status.py --family vim` on test machine" in text
    empty = export_card_table([], "umamba", zoo.families()["umamba"], "benchmarks/export_status.csv")
    assert "No rows in `benchmarks/export_status.csv` yet" in empty
    assert "`python benchmarks/export_status.py --family umamba --update-repo`" in empty


def test_only_the_export_kind_of_a_registered_family_is_filled() -> None:
    tables = with_export_tables(lambda kind, family: f"{kind} of {family}\n", [_row("vim_small")], zoo.families(),
                                "export_status.csv")
    card = (f"# Vim\n\n{start_marker('flops')}\n{END}\n\n{start_marker('export')}\nold\n{END}\n\n"
            f"{start_marker('export', 'nobody')}\nkept\n{END}\n")
    text, refreshed, skipped = refresh_text(card, "vim", tables)
    assert refreshed == ["flops:vim", "export:vim"] and skipped == ["export:nobody"]
    assert "flops of vim" in text and "| vim_small " in text and "old" not in text and "kept" in text


def test_reading_the_status_names_a_file_without_our_columns(tmp_path: Path) -> None:
    assert read_status(tmp_path / "missing.csv") == []
    path = tmp_path / "status.csv"
    path.write_text("model,ok\nvim_small,yes\n")
    with pytest.raises(ValueError, match=r"status.csv: expected the columns .*missing family, input"):
        read_status(path)

"""tools/report.py (the main job) end to end on the tiny test variants: table, CSV, PNG, the speed targets' and golden
fixtures' sections, the card refresh (copies in the output folder, or in place with --update-repo), and the picture."""

from __future__ import annotations

import csv
import math
import random
import re
import shutil
from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from tool_modules import load_tool

from upkeep.cards import END, start_marker
from upkeep.targets import TargetResult, write_results
from upkeep.zoo_plot import zoo_figure
from vssm import zoo
from vssm.analysis.published import published_counts
from vssm.analysis.tables import write_csv

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
            f"{start_marker('flops')}\n{END}\n\n{start_marker('export')}\nold export\n{END}\n\nEnd text.\n")
    status_row = {"family": "vmamba", "model": "vmamba_tiny", "input": "3x224x224", "compile": "ok", "export": "ok",
                  "export_max_abs": "1.00e-06", "onnx": "failed", "onnx_max_abs": "", "onnx_max_rel": "",
                  "status": "failed", "error": "onnx: RuntimeError: broken", "machine": "status machine",
                  "date": "2026-01-01 00:00 UTC", "command": "python benchmarks/export_status.py --family vmamba"}
    write_csv(tmp_path / "export_status.csv", [status_row])
    (cards / f"{family}.md").write_text(hand)
    (cards / "vim.md").write_text("# Vim card\n")
    code = report_tool.main(["--test-variants", "--repeats", "1", "--warmup", "0", "--output", str(out),
                             "--cards", str(cards), "--machine", "test machine", "--targets",
                             str(tmp_path / "targets.csv"), "--fixtures", str(fixtures), "--export-status",
                             str(tmp_path / "export_status.csv")])
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
    # The cards given are read, never written: their refreshed copies land in the output folder.
    assert (cards / f"{family}.md").read_text() == hand and (cards / "vim.md").read_text() == "# Vim card\n"
    assert {p.name for p in (out / "model_cards").iterdir()} == {f"{family}.md", "vim.md"}
    card = (out / "model_cards" / f"{family}.md").read_text()
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
    export = card.split(start_marker("export"))[1].split(END)[0]
    assert "old export" not in export and "failed (onnx: RuntimeError: broken)" in export and "status machine" in export
    assert all(f"| {name} " in export for name in zoo.families()["vmamba"]) and "| vmamba_small " in export
    vim_card = (out / "model_cards" / "vim.md").read_text()  # a card without blocks gets the generated section
    assert vim_card.startswith("# Vim card\n") and "Machine: test machine" in vim_card
    assert "targets machine" in vim_card and "No golden" not in vim_card
    assert "| vim_small " in vim_card.split(start_marker("export"))[1] and "not run" in vim_card


def test_report_rejects_unknown_models(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert report_tool.main(["test_vimm", "--output", str(tmp_path)]) == 2
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
    old_status = tmp_path / "old_status.csv"
    old_status.write_text("model,ok\nvim_small,yes\n")
    code = report_tool.main(["test_vmamba", "--repeats", "1", "--warmup", "0", "--output", str(tmp_path), "--no-cards",
                             "--targets", str(old_targets), "--fixtures", str(fixtures), "--export-status",
                             str(old_status)])
    assert code == 1
    text = (tmp_path / "zoo.md").read_text()
    assert "- vmamba_test_s1l8: golden fixture: " in text and "| test_vmamba " in text
    assert "- speed targets: " in text and "missing baseline, metric" in text
    assert "- export status: " in text and "missing family, input" in text
    assert f"No results at `{old_targets}`" in text and "No golden fixtures" in text


def test_update_repo_writes_the_committed_report_and_cards_in_place(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_tool, "ROOT", tmp_path)  # the repository the tool refreshes: a stand-in
    (tmp_path / "model_cards").mkdir()
    hand = f"# Card\n\n{start_marker('flops')}\nstale\n{END}\n"
    (tmp_path / "model_cards" / "vmamba.md").write_text(hand)
    monkeypatch.chdir(tmp_path)
    assert report_tool.main(["test_vmamba", "--repeats", "1", "--warmup", "0", "--update-repo"]) == 0
    assert (tmp_path / "reports" / "zoo.md").is_file() and (tmp_path / "reports" / "zoo.png").is_file()
    card = (tmp_path / "model_cards" / "vmamba.md").read_text()
    assert "stale" not in card and "| test_vmamba " in card
    assert not (tmp_path / "runs").exists()


def test_output_and_update_repo_exclude_each_other(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        report_tool.parse_args(["--output", "somewhere", "--update-repo"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    assert report_tool.parse_args([]).output == Path("runs") / "report"


def test_the_zoo_picture_has_log_axes_and_one_colour_per_family() -> None:
    families = ["vim", "vim", "vmamba", "mambavision", "mambavision", "umamba"]
    names = [f"{family}_{i}" for i, family in enumerate(families)]
    params = [random.uniform(0.1, 1.0), random.uniform(100, 740), *(random.uniform(5, 50) for _ in range(4))]
    gmacs = [random.uniform(0.01, 500) for _ in names]
    speed = [random.uniform(1, 200), None, *(random.uniform(1, 200) for _ in range(4))]
    fig = zoo_figure(names, families, params, gmacs, speed)
    fig.draw_without_rendering()  # lays out the tick labels
    panels = [ax for ax in fig.axes if ax.patches]
    assert len(panels) == 3
    labels = [label.get_text() for label in panels[0].get_yticklabels()]  # the panels share the y axis
    for ax, values in zip(panels, (params, gmacs, speed)):
        assert ax.get_xscale() == "log"
        bars = dict(zip(labels, ax.patches))
        assert sorted(bars) == sorted(names)
        colour = {name: to_hex(bar.get_facecolor()) for name, bar in bars.items()}
        by_family = {family: {colour[n] for n, f in zip(names, families) if f == family} for family in families}
        assert all(len(colours) == 1 for colours in by_family.values())
        assert len({next(iter(colours)) for colours in by_family.values()}) == len(set(families))
        for name, value in zip(names, values):
            width = bars[name].get_width()
            assert (math.isnan(width) and value is None) or width == pytest.approx(value)
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["vim", "vmamba", "mambavision", "umamba"]


def test_published_counts_name_public_sources_only() -> None:
    for name, count in published_counts().items():
        assert "spec" not in count.source and "shared/" not in count.source and "§" not in count.source, name
        assert re.search(r"github\.com/[\w-]+/[\w-]+ at [0-9a-f]{7}", count.source), name

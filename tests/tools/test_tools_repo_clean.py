"""The README's commands leave the repository's tracked files alone.

Each tool runs with tiny arguments (the rest as the README gives them) from a scratch working folder: it must write
only under that folder's `runs/` (or where its arguments say), open no file of the checkout for writing outside
git-ignored paths, and leave `git status` of the committed results (benchmarks/, reports/, model_cards/) as it was
(the whole tree's status would also see other work going on in a shared checkout). `make report` runs the same way,
its recipe read from `make -n`. Also: `--help` answers without importing torch, and a `--device` this machine lacks
is one line and exit status 2 in every tool that takes one.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
import torch

from vssm.engine import resolve_device

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                                reason="needs git and the repository's checkout")

RESULTS = ("benchmarks", "reports", "model_cards")  # where the committed results live
_writes: list[Path] | None = None  # files opened for writing while a tool runs (None: not recording)


def _record_writes(event: str, args: tuple) -> None:
    if event == "open" and _writes is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        if args[2] & (os.O_WRONLY | os.O_RDWR):
            _writes.append(Path(os.path.abspath(os.fsdecode(args[0]))))


sys.addaudithook(_record_writes)  # audit hooks cannot be removed: this one records only inside `_untouched`


def _git(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True, check=False).stdout


def _load(script: str) -> ModuleType:
    path = ROOT / script
    spec = importlib.util.spec_from_file_location(f"readme_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@contextmanager
def _untouched(workdir: Path) -> Iterator[None]:
    """Run the body from `workdir`; then no tracked file changed (`git status`), nothing in the checkout was written
    outside git-ignored paths, and everything written under `workdir` is in its runs/."""
    global _writes
    before = _git("status", "--porcelain", "--untracked-files=no", "--", *RESULTS)
    cwd = Path.cwd()
    os.chdir(workdir)
    _writes = []
    try:
        yield
    finally:
        written, _writes = _writes, None
        os.chdir(cwd)
    assert _git("status", "--porcelain", "--untracked-files=no", "--", *RESULTS) == before
    in_checkout = sorted({str(p.relative_to(ROOT)) for p in written if p.is_relative_to(ROOT)})
    ignored = set(_git("check-ignore", "--stdin", stdin="\n".join(in_checkout)).splitlines()) if in_checkout else set()
    assert [p for p in in_checkout if p not in ignored] == [], "written into the checkout"
    assert [p for p in written if p.is_relative_to(workdir) and not p.is_relative_to(workdir / "runs")] == []


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def _cards() -> set[str]:
    return {f"runs/report/model_cards/{p.name}" for p in (ROOT / "model_cards").glob("*.md")}


TINY_REPORT = ["test_vim", "--repeats", "1", "--warmup", "0"]
TINY_TARGETS = ["--test-variants", "--family", "vim", "--rounds", "1", "--warmup", "0"]


@pytest.mark.parametrize(("script", "argv", "expected"), [
    ("tools/benchmark.py", ["test_vim", "--resolution", "32", "--repeats", "1", "--warmup", "0"],
     {f"runs/benchmark/throughput_cpu.{ext}" for ext in ("csv", "md", "png")}),
    ("tools/flops.py", ["test_vim", "--input-size", "32"], set()),
    ("tools/report.py", TINY_REPORT,
     {f"runs/report/zoo.{ext}" for ext in ("csv", "md", "png")} | _cards()),
    ("benchmarks/targets.py", TINY_TARGETS, {"runs/targets/targets_vim.csv", "runs/targets/targets_vim.md"}),
    ("tools/eval_imagenet.py", ["--model", "test_vim", "--print-preprocessing"], set()),
], ids=lambda value: value if isinstance(value, str) else None)
def test_readme_tools_write_only_into_runs(script: str, argv: list[str], expected: set[str], tmp_path: Path) -> None:
    fixtures = tmp_path / "no_fixtures"  # the golden fixtures take minutes; their reading is tested elsewhere
    extra = ["--fixtures", str(fixtures)] if script == "tools/report.py" else []
    fixtures.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    with _untouched(work):
        assert _load(script).main(argv + extra) == 0
    assert _files(work) == expected


def test_bench_scans_writes_only_into_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load("benchmarks/bench_scans.py")
    monkeypatch.setattr(bench, "SCAN_SHAPE", (1, 4, 8, 8))  # the real shapes take half a minute
    monkeypatch.setattr(bench, "ROUTE_GRID", (16, 16))
    with _untouched(tmp_path):
        bench.main(["--rounds", "1", "--route-repeats", "1"])
    assert _files(tmp_path) == {"runs/scans/scans.csv", "runs/scans/scans.md"}


def test_demo_data_as_the_readme_writes_it(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    with _untouched(tmp_path):
        assert _load("tools/make_demo_data.py").main(["runs/demo_digits", "--size", "8", "--per-class", "2"]) == 0
    assert {"runs/demo_digits/train.txt", "runs/demo_digits/val.txt"} <= _files(tmp_path)


def test_the_localmamba_card_pictures_are_drawn_into_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _load("model_cards/localmamba/draw_directions.py")

    def draw(*args: object) -> Path:  # the real pictures take half a minute; where they go is the point here
        path = Path(args[-1])
        path.write_bytes(b"png")
        return path

    monkeypatch.setattr(script, "draw_routes", draw)
    monkeypatch.setattr(script, "draw_table", draw)
    with _untouched(tmp_path):
        assert script.main([]) == 0
    files = _files(tmp_path)
    assert files and all(f.startswith("runs/localmamba_directions/") for f in files)
    assert {"searched_localvim.png"} <= {Path(f).name for f in files}


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_report_writes_into_its_output_folder(tmp_path: Path) -> None:
    recipe = subprocess.run(["make", "-s", "-n", "-o", ".venv/.vssm-installed", "report", "PY=python"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    commands = [shlex.split(line) for line in recipe]
    assert [command[1] for command in commands] == ["benchmarks/targets.py", "tools/report.py"]
    fixtures = tmp_path / "no_fixtures"
    fixtures.mkdir()
    tiny = {"benchmarks/targets.py": [*TINY_TARGETS, "--name", "targets"],
            "tools/report.py": [*TINY_REPORT, "--fixtures", str(fixtures)]}
    work = tmp_path / "work"
    work.mkdir()
    with _untouched(work):
        for _, script, *argv in commands:
            assert _load(script).main(argv + tiny[script]) == 0
    assert _files(work) == ({f"runs/report/zoo.{ext}" for ext in ("csv", "md", "png")} | _cards()
                            | {"runs/report/targets.csv", "runs/report/targets.md"})
    assert "| test_vim " in (work / "runs/report/targets.md").read_text()
    assert "runs/report/targets.csv`" in (work / "runs/report/zoo.md").read_text()


@pytest.mark.parametrize("script", ["tools/report.py", "tools/benchmark.py", "tools/flops.py",
                                    "tools/make_demo_data.py", "benchmarks/targets.py", "benchmarks/bench_scans.py"])
def test_help_answers_without_importing_torch(script: str) -> None:
    probe = (f"import runpy, sys\nsys.argv = [{script!r}, '--help']\ntry:\n    runpy.run_path({script!r}, "
             "run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print([m for m in ('torch', 'timm', 'vssm', 'matplotlib') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout and result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("script", ["tools/eval_imagenet.py", "benchmarks/bench_selective_scan.py"])
@pytest.mark.parametrize("device", ["tpu9", "cuda"])
def test_a_device_this_machine_lacks_is_one_line_and_status_2(script: str, device: str,
                                                               capsys: pytest.CaptureFixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = {"tools/eval_imagenet.py": ["--model", "test_vim", "--print-preprocessing"],
            "benchmarks/bench_selective_scan.py": ["--repeats", "1"]}[script]
    try:
        code = _load(script).main([*argv, "--device", device])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: device {device!r}: "), err


def test_resolve_device_names_what_it_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("tpu9", "", "cpu:1", "meta", "cuda:-1", "cuda:x"):
        with pytest.raises(ValueError, match="expected cpu, cuda or cuda:N"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="has 1 GPU"):
        resolve_device("cuda:3")

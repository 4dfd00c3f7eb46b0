"""tools/export.py: exports, reloads and checks a model against eager; bad arguments exit 2 with one line."""

from __future__ import annotations

import pytest
from tool_modules import load_tool

export_tool = load_tool("export")


@pytest.mark.parametrize("argv, message", [
    (["no_such_model", "--out", "{tmp}/m.onnx"], "unknown vssm model 'no_such_model'"),
    (["test_vmamba", "--input-size", "8", "--out", "{tmp}/m.onnx"], "test_vmamba"),
    (["test_vmamba", "--out", "/proc/no_such_folder/m.onnx"], "--out: cannot write"),
    (["test_vmamba", "--format", "tflite", "--out", "{tmp}/m.onnx"], "invalid choice: 'tflite'"),
])
def test_bad_arguments_exit_2_with_one_line(argv: list[str], message: str, tmp_path, capsys) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = export_tool.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_pt2_export_with_dynamic_batch_reloads_and_matches(tmp_path, capsys) -> None:
    out = tmp_path / "mambavision.pt2"
    assert export_tool.main(["test_mambavision", "--format", "pt2", "--dynamic-batch", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.stat().st_size > 0
    assert printed.count(" ok") == 2 and "batch 3" in printed and "MiB" in printed


@pytest.mark.slow  # the ONNX exporter: ~50 s on a loaded 2-core CPU (tests/models/test_models_export.py runs it in CI)
def test_onnx_export_reloads_and_matches(tmp_path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "mambavision.onnx"
    assert export_tool.main(["test_mambavision", "--out", str(out)]) == 0
    assert " ok" in capsys.readouterr().out

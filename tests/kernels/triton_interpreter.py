"""Running a test file's Triton kernels under TRITON_INTERPRET=1 on CPU tensors (shared by test_triton.py and
test_triton_state1.py).

The interpreter must be on before triton is first imported (its standard library is decorated then), and importing
`vssm.kernels` imports triton, so a file whose tests need it re-runs itself in a subprocess that has it:
`assert_passes_under_interpreter(__file__)` in a test skipped when `INTERPRETED`, the other tests `interpreter_only`.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import triton


def _interpreted() -> bool:
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(triton.language.standard.cdiv, InterpretedFunction)


INTERPRETED = _interpreted()
interpreter_only = pytest.mark.skipif(not INTERPRETED, reason="runs in the TRITON_INTERPRET=1 subprocess")
outside_interpreter = pytest.mark.skipif(INTERPRETED, reason="already inside the interpreter run")


def assert_passes_under_interpreter(test_file: str) -> None:
    """Run `test_file`'s tests but the gpu ones in a subprocess with TRITON_INTERPRET=1; they must all pass."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", test_file, "-q", "-p", "no:cacheprovider", "-m", "not gpu"],
        capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout, result.stdout[-2000:]

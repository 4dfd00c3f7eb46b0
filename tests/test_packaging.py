"""The distribution installs the three top-level packages and the set-up guards its interpreter."""

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["vssm", "scans", "kernels"])
def test_top_level_packages_import(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().is_relative_to(ROOT), module.__file__


def test_supported_python_passes_the_check() -> None:
    result = subprocess.run([sys.executable, ROOT / "tools" / "check_python.py"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _working_interpreter(version: str) -> str | None:
    candidates = [str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")]
    candidates.append(shutil.which(f"python{version}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_unsupported_python_stops_with_the_supported_range(version: str) -> None:
    interpreter = _working_interpreter(version)
    if interpreter is None:
        pytest.skip(f"no working python{version} on this machine")
    result = subprocess.run([interpreter, ROOT / "tools" / "check_python.py"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "supports Python 3.10 to 3.12" in result.stderr
    assert f"is Python {version}" in result.stderr

"""Import a script of tools/ or benchmarks/ (not packages) as a module, for the tools' end-to-end tests (tests/tools,
tests/mm)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parents[1] / "tools"
BENCHMARKS = TOOLS.parent / "benchmarks"


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as module `tools_<name>`."""
    spec = importlib.util.spec_from_file_location(f"tools_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as module `benchmarks_<name>`, registered in sys.modules (its dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module

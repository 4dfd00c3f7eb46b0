"""Project-wide pytest set-up: the `gpu` marker skips itself without CUDA; fixtures live in tests/fixtures; the
repository's upkeep code (tools/upkeep, not installed) imports as `upkeep`, as the tools' scripts import it."""

import sys
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
TOOLS = Path(__file__).resolve().parents[1] / "tools"
if str(TOOLS) not in sys.path:
    sys.path.append(str(TOOLS))  # appended: the scripts in tools/ (test.py, train.py, ...) shadow nothing


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES

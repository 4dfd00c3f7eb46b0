"""Markers of timm's model test suite (tests/models/test_timm_suite.py): timm's own, registered so that
`--strict-markers` accepts them, `timm_suite` on all of its tests and `slow` on those beyond CI's variants."""

import pytest
from timm_suite import is_ci_variant

TIMM_MARKERS = (
    "base", "forward", "backward", "cfg", "cfg_nonstd", "torchscript", "features", "fxforward", "fxbackward",
)


def pytest_configure(config: pytest.Config) -> None:
    for marker in TIMM_MARKERS:
        config.addinivalue_line("markers", f"{marker}: timm's model-test marker (tests/models/test_timm_suite.py)")
    config.addinivalue_line("markers", "timm_suite: timm's own model test suite run over vssm's registry")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module.__name__ != "test_timm_suite":
            continue
        item.add_marker(pytest.mark.timm_suite)
        name = item.callspec.params.get("model_name") if hasattr(item, "callspec") else None
        if name is not None and not is_ci_variant(name, item.originalname):
            item.add_marker(pytest.mark.slow)

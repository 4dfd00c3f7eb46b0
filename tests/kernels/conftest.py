"""Fixtures of the kernel tests."""

from collections.abc import Iterator

import pytest

from vssm import kernels


@pytest.fixture(params=["in_kernel", "gathered"])
def route_reading(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test with routes read inside the backend's kernels and again with the inputs gathered into route order
    first (kernels.route_order), whatever `route_layout` would choose for the test's route."""
    with kernels.use_route_reading(request.param):
        yield request.param

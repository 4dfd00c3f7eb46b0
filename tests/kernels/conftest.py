"""Fixtures of the kernel tests."""

import dataclasses

import pytest

import vssm.kernels.interface
from vssm.kernels.route_order import route_layout


@pytest.fixture(params=["in_kernel", "gathered"])
def route_reading(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with routes read inside the Triton kernels and again with the inputs gathered into route order
    first (kernels.route_order), whatever `route_layout` would choose for the test's route."""
    scatters = request.param == "gathered"
    monkeypatch.setattr(vssm.kernels.interface, "route_layout",
                        lambda route, length: dataclasses.replace(route_layout(route, length), scatters=scatters))
    return request.param

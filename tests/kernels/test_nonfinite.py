"""NaN and inf inputs on the `cpu` backend against the reference (kernels.testing.assert_nonfinite_matches_reference):
NaN in, NaN out for the outputs and every gradient, and finite values exactly where the reference's are finite.

Issue 20: the C loop's clamps turned a NaN delta into a finite one, so one NaN in a dt_proj bias left every logit
finite. The Triton backend runs the same checks under TRITON_INTERPRET=1 in test_triton.py.
"""

import platform

import pytest
import torch

from vssm.kernels import cpu
from vssm.kernels.backends import Backend, supports
from vssm.kernels.testing import (
    GRAD_NAMES,
    assert_nonfinite_matches_reference,
    random_route,
    random_scan_inputs,
    with_value,
)

pytestmark = pytest.mark.skipif(supports(Backend.CPU, torch.device("cpu"), torch.float32) is not None,
                                reason="no C compiler")

VALUES = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("name", GRAD_NAMES)
def test_nonfinite_input_matches_reference(name: str, value: str) -> None:
    # 150 steps at N = 16 are two chunks (128 + 22): the value also travels through a saved chunk state
    inputs = with_value(random_scan_inputs(2, 20, 150, 16, 2), name, VALUES[value])
    assert_nonfinite_matches_reference(Backend.CPU, inputs)


@pytest.mark.parametrize("name", GRAD_NAMES)
def test_nan_through_padded_routes_and_shared_u(name: str) -> None:
    inputs = random_scan_inputs(2, 16, 25, 4, 2, route=random_route(2, 25, 3), shared_u=True)
    assert_nonfinite_matches_reference(Backend.CPU, with_value(inputs, name, float("nan")))


@pytest.mark.parametrize("value", list(VALUES))
@pytest.mark.parametrize("name", ["delta", "delta_bias"])
def test_nonfinite_delta_without_softplus(name: str, value: str) -> None:
    inputs = random_scan_inputs(2, 20, 40, 4, 1, delta_softplus=False)
    assert_nonfinite_matches_reference(Backend.CPU, with_value(inputs, name, VALUES[value]))


@pytest.fixture
def build_without_avx512(monkeypatch: pytest.MonkeyPatch):
    """The C library built without AVX-512, whose exponentials clamp and assemble 2^n by hand (the path of CPUs
    without AVX-512 and of ARM)."""
    flags = cpu._flags
    monkeypatch.setattr(cpu, "_flags", lambda openmp: [*flags(openmp), "-mno-avx512f"])
    cpu._library.cache_clear()
    assert cpu.unavailable_reason() is None
    yield
    monkeypatch.undo()
    cpu._library.cache_clear()


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="-mno-avx512f is an x86 flag; elsewhere the tests above run that path")
@pytest.mark.usefixtures("build_without_avx512")
@pytest.mark.parametrize("value", list(VALUES))
def test_nonfinite_input_matches_reference_without_avx512(value: str) -> None:
    inputs = random_scan_inputs(1, 20, 150, 16, 2)
    failures = []
    for name in GRAD_NAMES:
        try:
            assert_nonfinite_matches_reference(Backend.CPU, with_value(inputs, name, VALUES[value]))
        except AssertionError as exc:
            failures.append(f"{VALUES[value]} in {name}: {exc}")
    assert not failures, "\n".join(failures)

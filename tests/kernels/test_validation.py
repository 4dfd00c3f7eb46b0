"""Bad input raises ValueError/TypeError naming the tensor and both shapes; odd-but-valid input works."""

import pytest
import torch

from vssm import kernels
from vssm.kernels.testing import GRAD_NAMES, random_scan_inputs


def call(**overrides):
    inputs = random_scan_inputs(2, 8, 10, 4, 2)
    args = dict(u=inputs.u, delta=inputs.delta, A=inputs.A, B=inputs.B, C=inputs.C, D=inputs.D, z=inputs.z,
                delta_bias=inputs.delta_bias)
    args.update(overrides)
    return kernels.selective_scan(**args, delta_softplus=True)


@pytest.mark.parametrize(
    ("overrides", "error", "pattern"),
    [
        (dict(u=torch.randn(2, 8)), ValueError, r"u: expected shape \(batch, KD, L\), got \(2, 8\)"),
        (dict(delta=torch.randn(2, 8, 9)), ValueError, r"delta: expected shape \(2, 8, 10\).*got \(2, 8, 9\)"),
        (dict(z=torch.randn(2, 7, 10)), ValueError, r"z: expected shape \(2, 8, 10\).*got \(2, 7, 10\)"),
        (dict(A=torch.randn(6, 4)), ValueError, r"A: expected shape \(KD, N\) = \(8, N\).*got \(6, 4\)"),
        (dict(B=torch.randn(2, 2, 5, 10)), ValueError, r"B: expected shape \(2, 2, 4, 10\).*got \(2, 2, 5, 10\)"),
        (dict(C=torch.randn(2, 2, 4, 11)), ValueError, r"C: expected shape \(2, 2, 4, 10\).*got \(2, 2, 4, 11\)"),
        (dict(B=torch.randn(2, 3, 4, 10), C=torch.randn(2, 3, 4, 10)), ValueError, r"G dividing KD = 8, got G = 3"),
        (dict(D=torch.randn(7)), ValueError, r"D: expected shape \(8,\).*got \(7,\)"),
        (dict(delta_bias=torch.randn(8, 1)), ValueError, r"delta_bias: expected shape \(8,\).*got \(8, 1\)"),
        (dict(delta=torch.randn(2, 8, 10, dtype=torch.float16)), TypeError, r"delta: expected dtype torch.float32"),
        (dict(A=torch.randn(8, 4, dtype=torch.float16)), TypeError, r"A: expected dtype"),
        (dict(u=torch.randint(0, 3, (2, 8, 10))), TypeError, r"u: expected dtype"),
        (dict(B=[1, 2]), TypeError, r"B: expected a torch.Tensor, got list"),
        (dict(A=torch.randn(8, 300)), ValueError, r"A: expected 1 <= N <= 256"),
        (dict(u=torch.randn(2, 8, 10, device="meta")), ValueError,
         r"u: expected device cpu \(same as the parameter A\), got meta"),
    ],
)
def test_bad_input(overrides: dict, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call(**overrides)


@pytest.mark.parametrize(("layer", "given"), [("meta", "cpu"), ("cpu", "meta")])
@pytest.mark.parametrize("moved", [("u", "delta", "B", "C", "z"), ("z",)], ids=["every_activation", "z_only"])
def test_device_mismatch_names_the_parameters_device_as_expected(layer: str, given: str, moved: tuple) -> None:
    """A layer (A, D, delta_bias) on one device fed activations on another: the activations are what is wrong."""
    inputs = random_scan_inputs(2, 8, 10, 4, 2)
    args = {name: getattr(inputs, name).to(given if name in moved else layer) for name in GRAD_NAMES}
    with pytest.raises(ValueError, match=rf"^{moved[0]}: expected device {layer} \(same as the parameter A\), "
                                         rf"got {given}$"):
        call(**args)


@pytest.mark.parametrize(
    ("route", "error", "pattern"),
    [
        (torch.arange(10).view(1, 10).float(), TypeError, r"route: expected dtype int32 or int64"),
        (torch.arange(10), ValueError, r"route: expected shape \(K, L'\), got \(10,\)"),
        (torch.arange(10).expand(3, 10), ValueError, r"route: expected K dividing KD = 8"),
        (torch.arange(9).view(1, 9), ValueError, r"route: expected L' >= L = 10"),
        (torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 10]]), ValueError, r"entries in \[-1, 10\).*got 10"),
        (torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, -2]]), ValueError, r"entries in \[-1, 10\).*got -2"),
        (torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 8]]), ValueError, r"row 0 is not a permutation"),
        (torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, -1]]), ValueError, r"row 0 visits 9 tokens"),
        (torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9]]), ValueError, r"row 0 visits 11 tokens"),
    ],
)
def test_bad_route(route: torch.Tensor, error: type, pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call(route=route)


def test_route_fixed_in_place_is_checked_again() -> None:
    route = torch.arange(10).view(1, 10).clone()
    call(route=route)
    route[0, 0] = 1
    with pytest.raises(ValueError, match="not a permutation"):
        call(route=route)


def test_squeezed_B_C_and_no_optionals() -> None:
    inputs = random_scan_inputs(2, 8, 10, 4, 1, squeeze_groups=True, has_D=False, has_z=False, has_delta_bias=False,
                                delta_softplus=False)
    y = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C)
    y4 = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B[:, None], inputs.C[:, None])
    assert y.shape == (2, 8, 10)
    torch.testing.assert_close(y, y4, rtol=0, atol=0)

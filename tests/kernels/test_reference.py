"""The float64 reference: gradcheck, hand-computed values, dtype contract, and the public entry on it."""

import math

import pytest
import torch
import torch.nn.functional as F

from vssm import kernels
from vssm.kernels.reference import selective_scan_ref
from vssm.kernels.testing import GRAD_NAMES, random_scan_inputs
from vssm.kernels.tolerances import assert_close_3way


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("flags", [(True, True, True, True), (False, False, False, False), (True, False, True, False)])
def test_gradcheck_float64(groups: int, flags: tuple[bool, bool, bool, bool]) -> None:
    has_D, has_z, has_bias, softplus = flags
    inputs = random_scan_inputs(
        2, 4, 5, 3, groups, dtype=torch.float64, has_D=has_D, has_z=has_z, has_delta_bias=has_bias,
        delta_softplus=softplus,
    ).requires_grad_()
    names = [n for n, t in zip(GRAD_NAMES, inputs.tensors(), strict=True) if t is not None]

    def f(*tensors: torch.Tensor) -> torch.Tensor:
        kw = dict(zip(names, tensors, strict=True))
        return selective_scan_ref(**kw, delta_softplus=softplus)

    assert torch.autograd.gradcheck(f, tuple(getattr(inputs, n) for n in names))


def test_matches_hand_computation_one_channel() -> None:
    u, delta, a, b, c = 0.7, 0.3, -1.5, 0.9, -1.1
    d, z, bias = 0.4, 1.3, 0.25
    def t(*values: float) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64).view(1, 1, -1)

    y = selective_scan_ref(
        t(u, -u), t(delta, 2 * delta), t(a).view(1, 1), t(b, b), t(c, c), D=t(d).view(1), z=t(z, z),
        delta_bias=t(bias).view(1), delta_softplus=True,
    ).flatten()
    dt = [math.log1p(math.exp(delta + bias)), math.log1p(math.exp(2 * delta + bias))]
    h0 = dt[0] * u * b
    h1 = math.exp(dt[1] * a) * h0 + dt[1] * (-u) * b
    gate = z / (1 + math.exp(-z))
    expected = torch.tensor([(c * h0 + d * u) * gate, (c * h1 - d * u) * gate], dtype=torch.float64)
    torch.testing.assert_close(y, expected, rtol=1e-14, atol=1e-14)


def test_softplus_threshold_is_20() -> None:
    inputs = random_scan_inputs(1, 2, 3, 2, dtype=torch.float64, has_delta_bias=False, has_z=False, has_D=False)
    inputs.delta[0, 0, 1] = 25.0
    y = selective_scan_ref(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, delta_softplus=True)
    y_pre = selective_scan_ref(inputs.u, F.softplus(inputs.delta, threshold=20), inputs.A, inputs.B, inputs.C)
    torch.testing.assert_close(y, y_pre, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("out_float32", [False, True])
def test_output_dtypes(dtype: torch.dtype, out_float32: bool) -> None:
    inputs = random_scan_inputs(2, 4, 6, 3, dtype=dtype)
    y, last = kernels.selective_scan(
        inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias,
        delta_softplus=True, return_last_state=True, out_float32=out_float32,
    )
    assert y.dtype == (torch.float32 if out_float32 else dtype)
    assert last.dtype == torch.float32 and last.shape == (2, 4, 3)
    assert not last.requires_grad


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_reference_within_its_own_rounding(dtype: torch.dtype) -> None:
    """fp16/bf16 inputs are computed in fp32: only the output rounding separates them from float64."""
    inputs = random_scan_inputs(2, 8, 64, 4, 2, dtype=dtype)
    args = dict(D=inputs.D, z=inputs.z, delta_bias=inputs.delta_bias, delta_softplus=True)
    y = selective_scan_ref(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, **args)
    i64 = inputs.cast(torch.float64)
    y64 = selective_scan_ref(i64.u, i64.delta, i64.A, i64.B, i64.C, D=i64.D, z=i64.z, delta_bias=i64.delta_bias,
                             delta_softplus=True)
    torch.testing.assert_close(y.double(), y64, rtol=torch.finfo(dtype).eps, atol=torch.finfo(dtype).eps)


def test_three_dim_B_C_equal_one_group() -> None:
    inputs = random_scan_inputs(2, 4, 7, 3, 1, dtype=torch.float64)
    y4 = selective_scan_ref(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z)
    y3 = selective_scan_ref(inputs.u, inputs.delta, inputs.A, inputs.B[:, 0], inputs.C[:, 0], inputs.D, inputs.z)
    torch.testing.assert_close(y3, y4, rtol=0, atol=0)


def test_groups_use_contiguous_channel_blocks() -> None:
    """G = K: each channel block must equal a separate G = 1 call with its own B, C."""
    inputs = random_scan_inputs(2, 6, 9, 4, 3, dtype=torch.float64)
    y = selective_scan_ref(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                           inputs.delta_bias, delta_softplus=True)
    for g in range(3):
        s = slice(2 * g, 2 * g + 2)
        y_g = selective_scan_ref(inputs.u[:, s], inputs.delta[:, s], inputs.A[s], inputs.B[:, g], inputs.C[:, g],
                                 inputs.D[s], inputs.z[:, s], inputs.delta_bias[s], delta_softplus=True)
        torch.testing.assert_close(y[:, s], y_g, rtol=1e-13, atol=1e-13)


def test_public_entry_non_contiguous_inputs() -> None:
    inputs = random_scan_inputs(2, 4, 10, 3, dtype=torch.float32)
    u_t = inputs.u.transpose(1, 2).contiguous().transpose(1, 2)
    b_t = inputs.B.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    assert not u_t.is_contiguous() and not b_t.is_contiguous()
    rest = (inputs.C, inputs.D, inputs.z, inputs.delta_bias)
    y = kernels.selective_scan(u_t, inputs.delta, inputs.A, b_t, *rest, delta_softplus=True)
    y_contiguous = kernels.selective_scan(inputs.u, inputs.delta, inputs.A, inputs.B, *rest, delta_softplus=True)
    torch.testing.assert_close(y, y_contiguous, rtol=0, atol=0)


def test_fp32_reference_passes_three_way_rule_against_itself() -> None:
    inputs = random_scan_inputs(2, 8, 100, 8, 2)
    i64 = inputs.cast(torch.float64)
    y = selective_scan_ref(inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z,
                           inputs.delta_bias, delta_softplus=True)
    y64 = selective_scan_ref(i64.u, i64.delta, i64.A, i64.B, i64.C, i64.D, i64.z, i64.delta_bias, delta_softplus=True)
    assert_close_3way(y, y, y64, name="y")
    with pytest.raises(AssertionError, match="y"):
        assert_close_3way(y + 1e-3, y, y64, name="y")

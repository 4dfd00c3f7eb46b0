"""The one tolerance table and the three-way rule."""

import pytest
import torch

from vssm.kernels.tolerances import ATOL, FACTOR, assert_all_close_3way, assert_close_3way, atol, three_way_error


def test_table_covers_every_scan_dtype() -> None:
    assert set(ATOL) == {torch.float64, torch.float32, torch.float16, torch.bfloat16}
    assert atol(torch.float32) < atol(torch.float16) < atol(torch.bfloat16)
    with pytest.raises(ValueError, match="dtype: expected one of"):
        atol(torch.int8)


def test_bound_scales_with_reference_error() -> None:
    ref64 = torch.randn(50, dtype=torch.float64)
    ref = ref64 + 1e-3
    err = three_way_error(ref64.float() + 2e-3, ref.float(), ref64)
    assert err.reference == pytest.approx(1e-3, rel=1e-3)
    scale = max(1.0, float(ref64.abs().max()))
    assert err.bound == pytest.approx(FACTOR * err.reference + ATOL[torch.float32] * scale)
    assert err.ok
    assert not three_way_error(ref64.float() + 3e-3, ref.float(), ref64).ok


def test_slack_grows_with_magnitude() -> None:
    ref64 = torch.tensor([300.0, -2.0], dtype=torch.float64)
    fast = ref64.float() + torch.tensor([2e-3, 0.0])
    assert three_way_error(fast, ref64.float(), ref64).ok
    small = ref64 / 1000
    assert not three_way_error(small.float() + torch.tensor([2e-3, 0.0]), small.float(), small).ok


def test_non_finite_fails() -> None:
    ref64 = torch.randn(5, dtype=torch.float64)
    fast = ref64.float().clone()
    fast[2] = float("nan")
    with pytest.raises(AssertionError, match="logits"):
        assert_close_3way(fast, ref64.float(), ref64, name="logits")


def test_low_precision_uses_given_dtype() -> None:
    ref64 = torch.randn(5, dtype=torch.float64)
    fast = ref64.float() + 5e-4
    assert_close_3way(fast, ref64.float(), ref64, dtype=torch.float16)
    with pytest.raises(AssertionError):
        assert_close_3way(fast, ref64.float(), ref64)


def test_sequences_report_every_failure_and_accept_missing_gradients() -> None:
    ref64 = torch.randn(5, dtype=torch.float64)
    bad = ref64.float() + 1.0
    with pytest.raises(AssertionError, match=r"(?s)du:.*dC:"):
        assert_all_close_3way([bad, None, bad], [ref64.float(), None, ref64.float()], [ref64, None, ref64],
                              ["du", "dz", "dC"])
    with pytest.raises(AssertionError, match="present in only some"):
        assert_close_3way(None, ref64.float(), ref64)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        three_way_error(torch.zeros(3), torch.zeros(3), torch.zeros(4, dtype=torch.float64))

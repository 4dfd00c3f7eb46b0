"""THE tolerance table of the project, and the three-way comparison rule every numerical test uses.

Rule (flash-attention's, applied to max-abs errors over a whole tensor):

    max|fast - ref64|  <=  FACTOR * max|ref_same_dtype - ref64|  +  ATOL[dtype] * max(1, max|ref64|)

`ref64` is the reference run in float64 on the same (upcast) inputs; `ref_same_dtype` is the reference run on the
inputs in the dtype under test. The reference's own error in that dtype sets the scale (it grows with L, with the
magnitude of the values and with reductions). The slack ATOL is absolute for tensors of magnitude <= 1 and grows
with larger ones, because one unit in the last place does (a gradient such as dA, summed over batch and L, reaches
hundreds, where one fp32 ulp is already 3e-5). Use it for kernels and models:

    assert_close_3way(fast_out, ref_out, ref64_out, name="y")            # dtype taken from fast_out
    assert_close_3way(model_fast(x), model_ref(x), model_ref64(x.double()), name="logits")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

FACTOR = 2.0

# Slack on top of the reference's own error. float16/bfloat16: about one unit in the last place of an O(1) output
# (fp16 ulp at 1.0 is 9.8e-4, bf16 is 7.8e-3), because the fast path and the reference may round a value that sits
# on a rounding boundary differently (and Triton's interpreter truncates bf16 stores instead of rounding).
ATOL: dict[torch.dtype, float] = {
    torch.float64: 1e-12,
    torch.float32: 1e-5,
    torch.float16: 1e-3,
    torch.bfloat16: 1e-2,
}


def atol(dtype: torch.dtype) -> float:
    """The absolute slack for `dtype` from the one table."""
    try:
        return ATOL[dtype]
    except KeyError:
        raise ValueError(f"dtype: expected one of {list(ATOL)}, got {dtype}") from None


@dataclass(frozen=True)
class ThreeWayError:
    """Max-abs errors of a fast result and of the same-dtype reference, both against the float64 reference."""

    fast: float
    reference: float
    bound: float

    @property
    def ok(self) -> bool:
        return self.fast <= self.bound


def three_way_error(
    fast: torch.Tensor, ref: torch.Tensor, ref64: torch.Tensor, dtype: torch.dtype | None = None
) -> ThreeWayError:
    """Errors of `fast` and `ref` against `ref64`, and the bound FACTOR * err(ref) + ATOL[dtype] * scale.

    `dtype` defaults to `fast.dtype` (pass the inputs' dtype when the output is float32 from low-precision inputs).
    Non-finite values make the error infinite.
    """
    if fast.shape != ref64.shape or ref.shape != ref64.shape:
        raise ValueError(
            f"three_way_error: shapes differ: fast {tuple(fast.shape)}, ref {tuple(ref.shape)}, "
            f"ref64 {tuple(ref64.shape)}"
        )
    dtype = dtype or fast.dtype
    target = ref64.detach().double()

    def err(x: torch.Tensor) -> float:
        if x.numel() == 0:
            return 0.0
        diff = (x.detach().double() - target).abs()
        return float(diff.max()) if bool(torch.isfinite(x.detach()).all()) else float("inf")

    err_ref = err(ref)
    scale = max(1.0, float(target.abs().max())) if target.numel() else 1.0
    return ThreeWayError(fast=err(fast), reference=err_ref, bound=FACTOR * err_ref + atol(dtype) * scale)


def assert_close_3way(
    fast: torch.Tensor | None,
    ref: torch.Tensor | None,
    ref64: torch.Tensor | None,
    name: str = "tensor",
    dtype: torch.dtype | None = None,
) -> None:
    """Assert the three-way rule; `None` for all three (e.g. a gradient that does not exist) passes."""
    if fast is None and ref is None and ref64 is None:
        return
    if fast is None or ref is None or ref64 is None:
        raise AssertionError(f"{name}: present in only some results (fast {fast is not None}, ref {ref is not None},"
                             f" ref64 {ref64 is not None})")
    e = three_way_error(fast, ref, ref64, dtype)
    if not e.ok:
        raise AssertionError(
            f"{name}: max|fast - ref64| = {e.fast:.3e} > {FACTOR} * max|ref - ref64| ({e.reference:.3e}) + "
            f"atol[{dtype or fast.dtype}] * scale = {e.bound:.3e}"
        )


def assert_all_close_3way(
    fast: Sequence[torch.Tensor | None],
    ref: Sequence[torch.Tensor | None],
    ref64: Sequence[torch.Tensor | None],
    names: Sequence[str],
    dtype: torch.dtype | None = None,
) -> None:
    """`assert_close_3way` over parallel sequences (outputs and gradients); reports every failing name at once."""
    failures = []
    for f, r, r64, name in zip(fast, ref, ref64, names, strict=True):
        try:
            assert_close_3way(f, r, r64, name=name, dtype=dtype)
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        raise AssertionError("\n".join(failures))

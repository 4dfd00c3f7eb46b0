"""Random, realistic inputs for the selective scan and a runner that returns outputs and gradients.

Used by tests/kernels, by model tests that need scan inputs, and by the benchmark. Values follow trained Mamba
layers: A = -exp(N(0, 1)), pre-softplus delta around N(-4, 1) shifted by a bias (or a small positive delta without
softplus), u, B, C, z ~ N(0, 1). Never zeros.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .reference import compute_dtype
from .scan_tensors import ScanTensors
from .tolerances import assert_all_close_3way

if TYPE_CHECKING:
    from .backends import Backend

GRAD_NAMES = ScanTensors._fields[:-1]  # u, delta, A, B, C, D, z, delta_bias: every tensor but the route


@dataclass
class ScanInputs:
    """Arguments of one `selective_scan` call (see `kernels.selective_scan` for shapes)."""

    u: torch.Tensor
    delta: torch.Tensor
    A: torch.Tensor
    B: torch.Tensor
    C: torch.Tensor
    D: torch.Tensor | None = None
    z: torch.Tensor | None = None
    delta_bias: torch.Tensor | None = None
    delta_softplus: bool = False
    route: torch.Tensor | None = None
    fold: int = 1

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """y's shape (batch, KD/fold, L)."""
        batch, channels, length = self.delta.shape
        return batch, channels // self.fold, length

    def tensors(self) -> list[torch.Tensor | None]:
        """The differentiable tensors, in `GRAD_NAMES` order."""
        return [getattr(self, name) for name in GRAD_NAMES]

    def cast(self, dtype: torch.dtype) -> ScanInputs:
        """Activations (u, delta, B, C, z) in `dtype`, parameters (A, D, delta_bias) in its compute dtype.

        Casting float16 inputs to float64 keeps their rounded values, so a float64 reference sees exactly the
        numbers a low-precision kernel sees.
        """
        param = compute_dtype(dtype)

        def cast(t: torch.Tensor | None, to: torch.dtype) -> torch.Tensor | None:
            return None if t is None else t.detach().to(to)

        return dataclasses.replace(
            self,
            u=cast(self.u, dtype),
            delta=cast(self.delta, dtype),
            B=cast(self.B, dtype),
            C=cast(self.C, dtype),
            z=cast(self.z, dtype),
            A=cast(self.A, param),
            D=cast(self.D, param),
            delta_bias=cast(self.delta_bias, param),
        )

    def to_device(self, device: torch.device | str) -> ScanInputs:
        return dataclasses.replace(self, **{
            f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        })

    def requires_grad_(self) -> ScanInputs:
        for t in self.tensors():
            if t is not None:
                t.requires_grad_(True)
        return self


def cpu_backends() -> list[Backend]:
    """The backends that run float32 CPU tensors here (the C loop needs its compiler), the reference first."""
    from .backends import Backend, supports

    return [b for b in (Backend.REFERENCE, Backend.CPU) if supports(b, torch.device("cpu"), torch.float32) is None]


def random_scan_inputs(
    batch: int,
    channels: int,
    length: int,
    state: int,
    groups: int = 1,
    *,
    dtype: torch.dtype = torch.float32,
    has_D: bool = True,
    has_z: bool = True,
    has_delta_bias: bool = True,
    delta_softplus: bool = True,
    squeeze_groups: bool = False,
    route: torch.Tensor | None = None,
    shared_u: bool = False,
    u_copies: int | None = None,
    fold: int = 1,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> ScanInputs:
    """Fresh random inputs. With `route`, L is the number of tokens; `squeeze_groups` gives B, C as (batch, N, L);
    `shared_u` (needs `route` of K rows) gives u as (batch, KD/K, L), read by every route; `u_copies` = S (dividing
    K) gives u as (batch, KD/S, L), channel d reading u[:, d % (KD/S)]; `fold` is the call's fold (y of KD/fold
    channels)."""
    if (shared_u or u_copies is not None) and route is None:
        raise ValueError("random_scan_inputs: shared_u and u_copies need a route")
    copies = u_copies or (route.shape[0] if shared_u else 1)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float32).to(device)

    if delta_softplus:
        delta = randn(batch, channels, length) - 1.0  # with the bias below: softplus of about N(-4..0, 1)
    else:
        delta = torch.rand(batch, channels, length, generator=generator).to(device) * 0.5 + 0.02
    b_shape = (batch, state, length) if squeeze_groups and groups == 1 else (batch, groups, state, length)
    inputs = ScanInputs(
        u=randn(batch, channels // copies, length),
        delta=delta,
        A=-torch.exp(randn(channels, state)),
        B=randn(*b_shape),
        C=randn(*b_shape),
        D=randn(channels) if has_D else None,
        z=randn(batch, channels, length) if has_z else None,
        delta_bias=_delta_bias(randn(channels), delta_softplus) if has_delta_bias else None,
        delta_softplus=delta_softplus,
        route=route,
        fold=fold,
    )
    return inputs.cast(dtype)


def _delta_bias(noise: torch.Tensor, delta_softplus: bool) -> torch.Tensor:
    # Without softplus delta + bias must stay positive, or exp(delta * A) > 1 and the state grows.
    return noise * 0.5 - 1.0 if delta_softplus else noise.abs() * 0.05


ScanFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def run_with_grads(
    scan: ScanFn, inputs: ScanInputs, grad_out: torch.Tensor, **flags: bool
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor | None]]:
    """Run `scan(**inputs, return_last_state=True, **flags)` (and `fold` where it is not 1) and backpropagate
    `grad_out` through y.

    Returns (y, last_state, grads in `GRAD_NAMES` order; None where the input is absent).
    """
    leaves = dataclasses.replace(inputs, **{
        name: None if t is None else t.detach().clone().requires_grad_(True)
        for name, t in zip(GRAD_NAMES, inputs.tensors(), strict=True)
    })
    if inputs.fold != 1:
        flags = {**flags, "fold": inputs.fold}
    y, last_state = scan(
        leaves.u, leaves.delta, leaves.A, leaves.B, leaves.C, D=leaves.D, z=leaves.z, delta_bias=leaves.delta_bias,
        delta_softplus=leaves.delta_softplus, route=leaves.route, return_last_state=True, **flags,
    )
    y.backward(grad_out.to(y.dtype))
    grads = [None if t is None else t.grad for t in leaves.tensors()]
    return y.detach(), last_state.detach(), grads


def random_route(routes: int, length: int, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(K, L + pad) int64: each row a random permutation of 0..L-1 with `pad` padding steps (-1) at random places."""
    rows = []
    for _ in range(routes):
        row = torch.full((length + pad,), -1, dtype=torch.int64)
        places = torch.randperm(length + pad, generator=generator)[:length].sort().values
        row[places] = torch.randperm(length, generator=generator)
        rows.append(row)
    return torch.stack(rows)


def assert_matches_reference(
    backend: Backend | str,
    inputs: ScanInputs,
    dtype: torch.dtype,
    out_float32: bool = False,
    device: torch.device | str = "cpu",
) -> None:
    """Three-way rule for y, last_state and every gradient: `backend` on `device` in `dtype` vs the reference in
    `dtype` vs the reference in float64 (both on CPU). Also checks output and gradient dtypes and shapes."""
    from . import selective_scan, use_backend

    low = inputs.cast(dtype)
    grad = torch.randn(low.output_shape, dtype=torch.float32)
    with use_backend(backend):
        fast = run_with_grads(selective_scan, low.to_device(device), grad.to(device), out_float32=out_float32)
    with use_backend("reference"):
        ref = run_with_grads(selective_scan, low, grad, out_float32=out_float32)
        ref64 = run_with_grads(selective_scan, low.cast(torch.float64), grad.double())

    def host(results: tuple) -> list[torch.Tensor | None]:
        return [None if t is None else t.cpu() for t in (results[0], results[1], *results[2])]

    names = ["y", "last_state", *(f"d{n}" for n in GRAD_NAMES)]
    assert_all_close_3way(host(fast), host(ref), host(ref64), names, dtype=dtype)
    expected = torch.float32 if out_float32 else dtype
    if fast[0].dtype != expected:
        raise AssertionError(f"y: expected dtype {expected}, got {fast[0].dtype}")
    for name, g, t in zip(GRAD_NAMES, fast[2], low.tensors(), strict=True):
        if (g is None) != (t is None) or (g is not None and (g.dtype, g.shape) != (t.dtype, t.shape)):
            raise AssertionError(f"d{name}: expected {None if t is None else (t.dtype, tuple(t.shape))}, got "
                                 f"{None if g is None else (g.dtype, tuple(g.shape))}")


def with_value(inputs: ScanInputs, name: str, value: float, generator: torch.Generator | None = None) -> ScanInputs:
    """A copy of `inputs` with `value` (NaN, inf or -inf) at one random element of tensor `name` (a `GRAD_NAMES`
    entry)."""
    t = getattr(inputs, name).detach().clone()
    t.view(-1)[int(torch.randint(t.numel(), (1,), generator=generator))] = value
    return dataclasses.replace(inputs, **{name: t})


# The Triton backward takes decay * previous state as state - delta u B: where delta u B is inf or NaN at a step, that
# step's ddelta and dA terms (and so ddelta_bias) are NaN where the reference's can be finite. Only more NaN, never
# less: the output is non-finite from that step on already. (The C loop keeps decay * previous state.)
TRITON_MAY_ADD_NONFINITE = ("ddelta", "dA", "ddelta_bias")


def assert_nonfinite_matches_reference(
    backend: Backend | str,
    inputs: ScanInputs,
    device: torch.device | str = "cpu",
    may_add_nonfinite: Sequence[str] = (),
) -> None:
    """`backend` against the reference on float32 inputs holding NaN or +-inf (see `with_value`), for y, last_state
    and every gradient: finite nowhere the reference's are not (nothing hidden), NaN wherever the reference's are NaN
    when the inputs hold a NaN (NaN in, NaN out), non-finite nowhere else unless the result is named in
    `may_add_nonfinite` (e.g. "ddelta"), and the finite rest follows the three-way rule against float64.

    Where the reference gives inf, a backend may give NaN (or the reverse): sums reach inf - inf in other orders."""
    from . import selective_scan, use_backend

    grad = torch.randn(inputs.output_shape, dtype=torch.float32)
    with use_backend(backend):
        fast = run_with_grads(selective_scan, inputs.to_device(device), grad.to(device))
    with use_backend("reference"):
        ref = run_with_grads(selective_scan, inputs, grad)
        ref64 = run_with_grads(selective_scan, inputs.cast(torch.float64), grad.double())
    nan_in = any(t is not None and bool(t.isnan().any()) for t in inputs.tensors())
    label = getattr(backend, "value", backend)
    names = ["y", "last_state", *(f"d{n}" for n in GRAD_NAMES)]
    failures = []
    for name, f, r, r64 in zip(names, [fast[0], fast[1], *fast[2]], [ref[0], ref[1], *ref[2]],
                               [ref64[0], ref64[1], *ref64[2]], strict=True):
        if r is None:
            continue
        f = f.cpu()
        hidden = int((~r.isfinite() & f.isfinite()).sum())
        lost_nan = int((r.isnan() & ~f.isnan()).sum()) if nan_in else 0
        added = 0 if name in may_add_nonfinite else int((r.isfinite() & ~f.isfinite()).sum())
        if hidden or lost_nan or added:
            failures.append(f"{name} ({label}): {hidden} values finite where the reference's are not, {lost_nan} not "
                            f"NaN where the reference's are NaN, {added} non-finite where the reference's are finite "
                            f"(reference: {int((~r.isfinite()).sum())} non-finite of {r.numel()})")
            continue
        both = r.isfinite() & f.isfinite() & r64.isfinite()
        try:
            assert_all_close_3way([f[both]], [r[both]], [r64[both]], [f"{name} ({label}, finite part)"])
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        raise AssertionError("\n".join(failures))


def assert_shared_u_matches_expanded(
    backend: Backend | str, inputs: ScanInputs, device: torch.device | str = "cpu"
) -> None:
    """`backend` fed a shared u (batch, KD/S, L) against the same backend fed the S-fold copy (batch, KD, L):
    y, last_state and every gradient bitwise equal, du against the copy's gradient summed over the copies.

    Exact because the backends read the same values in the same order and reduce du over the routes the way this
    check does (float32 inputs; low precision rounds du per route in the copy, so compare those to float64 instead).
    """
    from . import selective_scan, use_backend
    from .reference import expand_shared_u

    batch, u_channels, length = inputs.u.shape
    copies = inputs.delta.shape[1] // u_channels
    copied = dataclasses.replace(inputs, u=expand_shared_u(inputs.u, copies).contiguous())
    grad = torch.randn(inputs.output_shape, dtype=torch.float32).to(device)
    with use_backend(backend):
        shared = run_with_grads(selective_scan, inputs.to_device(device), grad)
        full = run_with_grads(selective_scan, copied.to_device(device), grad)
    full_grads = list(full[2])
    full_grads[0] = full_grads[0].view(batch, copies, u_channels, length).sum(1)
    names = ["y", "last_state", *(f"d{n}" for n in GRAD_NAMES)]
    for name, a, b in zip(names, [shared[0], shared[1], *shared[2]], [full[0], full[1], *full_grads], strict=True):
        if (a is None) != (b is None) or (a is not None and not torch.equal(a, b)):
            detail = "" if a is None or b is None else f": max |diff| {float((a - b).abs().max()):.3e}"
            raise AssertionError(f"{name}: shared u differs from the expanded copy ({backend}){detail}")


def assert_eager_matches_custom_op(backend: Backend | str, inputs: ScanInputs,
                                   device: torch.device | str = "cpu") -> None:
    """`kernels.selective_scan` through its eager Function and through the custom op: y, last_state and every
    gradient bitwise equal, dtypes and shapes included (both paths run the same backend functions)."""
    from . import selective_scan, use_backend, use_custom_op

    grad = torch.randn(inputs.output_shape, dtype=torch.float32).to(device)
    inputs = inputs.to_device(device)
    with use_backend(backend):
        eager = run_with_grads(selective_scan, inputs, grad)
        with use_custom_op():
            op = run_with_grads(selective_scan, inputs, grad)
    names = ["y", "last_state", *(f"d{n}" for n in GRAD_NAMES)]
    for name, a, b in zip(names, [eager[0], eager[1], *eager[2]], [op[0], op[1], *op[2]], strict=True):
        same = (a is None and b is None) or (a is not None and b is not None and a.dtype == b.dtype
                                              and a.shape == b.shape and torch.equal(a, b))
        if not same:
            raise AssertionError(f"{name}: the eager Function and the custom op differ ({backend}): "
                                 f"{None if a is None else (a.dtype, tuple(a.shape))} against "
                                 f"{None if b is None else (b.dtype, tuple(b.shape))}")

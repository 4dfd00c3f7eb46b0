"""`route`: the scan order as an addressing mode, checked against an explicit token-by-token construction."""

import math

import pytest
import torch

from vssm import kernels
from vssm.kernels.reference import selective_scan_ref
from vssm.kernels.testing import random_scan_inputs


def padded_route(length: int, steps: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of 0..length-1 with steps - length padding (-1) steps at random places."""
    row = torch.full((steps,), -1, dtype=torch.int64)
    places = torch.randperm(steps, generator=generator)[:length].sort().values
    row[places] = torch.randperm(length, generator=generator)
    return row


def explicit_route_scan(inputs, route: torch.Tensor, length: int) -> torch.Tensor:
    """Build each channel block's scanned sequence step by step (zeros at padding), scan it, put y back."""
    channels = inputs.u.shape[1]
    routes = route.shape[0]
    B = inputs.B if inputs.B.dim() == 4 else inputs.B.unsqueeze(1)
    C = inputs.C if inputs.C.dim() == 4 else inputs.C.unsqueeze(1)
    groups = B.shape[1]
    y = torch.zeros_like(inputs.u)
    for d in range(channels):
        k, g = d * routes // channels, d * groups // channels
        rows = route[k].tolist()

        def seq(x: torch.Tensor, rows: list[int] = rows) -> torch.Tensor:
            zero = torch.zeros_like(x[..., 0])
            return torch.stack([x[..., r] if r >= 0 else zero for r in rows], dim=-1)

        y_d = selective_scan_ref(
            seq(inputs.u[:, d : d + 1]), seq(inputs.delta[:, d : d + 1]), inputs.A[d : d + 1],
            seq(B[:, g]), seq(C[:, g]),
            D=None if inputs.D is None else inputs.D[d : d + 1],
            z=None if inputs.z is None else seq(inputs.z[:, d : d + 1]),
            delta_bias=None if inputs.delta_bias is None else inputs.delta_bias[d : d + 1],
            delta_softplus=inputs.delta_softplus,
        )
        for t, r in enumerate(rows):
            if r >= 0:
                y[:, d, r] = y_d[:, 0, t]
    return y


def scan(inputs, route: torch.Tensor | None, **kw):
    return kernels.selective_scan(
        inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.delta_bias,
        delta_softplus=inputs.delta_softplus, route=route, **kw,
    )


def test_identity_route_equals_no_route() -> None:
    inputs = random_scan_inputs(2, 8, 12, 4, 2, dtype=torch.float64)
    route = torch.arange(12).expand(2, 12).contiguous()
    torch.testing.assert_close(scan(inputs, route), scan(inputs, None), rtol=0, atol=0)


def test_flip_route_equals_flipped_scan() -> None:
    inputs = random_scan_inputs(2, 4, 9, 3, 1, dtype=torch.float64)
    route = torch.arange(8, -1, -1).view(1, 9).to(torch.int32)
    flipped = scan(
        type(inputs)(**{**inputs.__dict__, "u": inputs.u.flip(-1), "delta": inputs.delta.flip(-1),
                        "B": inputs.B.flip(-1), "C": inputs.C.flip(-1), "z": inputs.z.flip(-1)}),
        None,
    ).flip(-1)
    torch.testing.assert_close(scan(inputs, route), flipped, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("routes", "groups", "pad"), [(2, 2, 0), (4, 4, 3), (2, 1, 2), (1, 2, 0), (2, 4, 5)])
def test_random_routes_match_explicit_construction(routes: int, groups: int, pad: int) -> None:
    gen = torch.Generator().manual_seed(routes * 100 + groups * 10 + pad)
    length = 11
    route = torch.stack([padded_route(length, length + pad, gen) for _ in range(routes)])
    inputs = random_scan_inputs(2, 8, length, 3, groups, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(scan(inputs, route), explicit_route_scan(inputs, route, length), rtol=1e-12,
                               atol=1e-12)


def test_padding_step_decays_state_with_bias() -> None:
    """Route [0, -1, 1]: the padding step multiplies h by exp(softplus(delta_bias) * A) and adds nothing."""
    u, delta, a, b, c, bias = (0.8, -0.6), (0.2, 0.5), -0.7, (1.2, -0.4), (0.3, 1.1), 0.1

    def t(*values: float) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64).view(1, 1, -1)

    y, last = kernels.selective_scan(
        t(*u), t(*delta), t(a).view(1, 1), t(*b), t(*c), delta_bias=t(bias).view(1), delta_softplus=True,
        return_last_state=True, route=torch.tensor([[0, -1, 1]]),
    )
    sp = [math.log1p(math.exp(x + bias)) for x in (delta[0], 0.0, delta[1])]
    h0 = sp[0] * u[0] * b[0]
    h2 = math.exp(sp[2] * a) * math.exp(sp[1] * a) * h0 + sp[2] * u[1] * b[1]
    torch.testing.assert_close(y.flatten(), torch.tensor([c[0] * h0, c[1] * h2], dtype=torch.float64))
    torch.testing.assert_close(last.flatten(), torch.tensor([h2], dtype=torch.float64))


def test_merged_outputs_of_k_routes() -> None:
    """VMamba-style merge: sum over K of the per-route outputs equals K separate single-route calls."""
    gen = torch.Generator().manual_seed(7)
    routes, per_route, length = 4, 3, 10
    route = torch.stack([padded_route(length, length + 2, gen) for _ in range(routes)])
    inputs = random_scan_inputs(2, routes * per_route, length, 4, routes, dtype=torch.float64, generator=gen)
    merged = scan(inputs, route).view(2, routes, per_route, length).sum(1)
    expected = torch.zeros_like(merged)
    for k in range(routes):
        s = slice(k * per_route, (k + 1) * per_route)
        expected += kernels.selective_scan(
            inputs.u[:, s], inputs.delta[:, s], inputs.A[s], inputs.B[:, k], inputs.C[:, k], inputs.D[s],
            inputs.z[:, s], inputs.delta_bias[s], delta_softplus=True, route=route[k : k + 1],
        )
    torch.testing.assert_close(merged, expected, rtol=1e-13, atol=1e-13)


def test_route_gradients_flow_to_token_order_inputs() -> None:
    gen = torch.Generator().manual_seed(3)
    route = torch.stack([padded_route(6, 8, gen) for _ in range(2)])
    inputs = random_scan_inputs(1, 4, 6, 2, 2, dtype=torch.float64, generator=gen).requires_grad_()
    names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]

    def f(*tensors: torch.Tensor) -> torch.Tensor:
        kw = dict(zip(names, tensors, strict=True))
        return kernels.selective_scan(**kw, delta_softplus=True, route=route)

    assert torch.autograd.gradcheck(f, tuple(getattr(inputs, n) for n in names))


def test_padding_without_bias_or_softplus_is_identity() -> None:
    """A padding step's delta is zero without bias and softplus: it is the identity (no decay, nothing added)."""
    inputs = random_scan_inputs(1, 2, 5, 2, dtype=torch.float64, has_delta_bias=False, delta_softplus=False)
    route = torch.tensor([[0, 1, -1, 2, 3, 4, -1]])
    y, last = scan(inputs, route, return_last_state=True)
    y0, last0 = scan(inputs, None, return_last_state=True)
    torch.testing.assert_close(y, y0, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(last, last0, rtol=1e-14, atol=1e-14)

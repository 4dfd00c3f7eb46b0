"""The selective scan's ONNX translation (kernels/onnx.py) alone: the op exported by the dynamo ONNX exporter and run
by ONNX Runtime's CPU execution provider, against the float64 reference (the three-way tolerance rule)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vssm.kernels import selective_scan, selective_scan_ref
from vssm.kernels.testing import ScanInputs, random_route, random_scan_inputs
from vssm.kernels.tolerances import assert_close_3way

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
kernels_onnx = pytest.importorskip("vssm.kernels.onnx")


class _Scan(nn.Module):
    """One selective_scan call; the parameters (A, D, delta_bias) and the route are the module's constants."""

    def __init__(self, inputs: ScanInputs) -> None:
        super().__init__()
        self.inputs = inputs

    def forward(self, u: torch.Tensor, delta: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                z: torch.Tensor | None = None) -> torch.Tensor:
        i = self.inputs
        return selective_scan(u, delta, i.A, B, C, D=i.D, z=z, delta_bias=i.delta_bias,
                              delta_softplus=i.delta_softplus, route=i.route)


def _onnx_scan(inputs: ScanInputs, tmp_path) -> torch.Tensor:
    args = [inputs.u, inputs.delta, inputs.B, inputs.C] + ([inputs.z] if inputs.z is not None else [])
    program = kernels_onnx.export_onnx(_Scan(inputs).eval(), tuple(args))
    path = tmp_path / "scan.onnx"
    program.save(str(path))
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {node.name: t.numpy() for node, t in zip(session.get_inputs(), args)}
    return torch.from_numpy(session.run(None, feed)[0])


def _check(inputs: ScanInputs, tmp_path, name: str) -> None:
    y = _onnx_scan(inputs, tmp_path)
    eager = _Scan(inputs)(inputs.u, inputs.delta, inputs.B, inputs.C, inputs.z)
    i64 = inputs.cast(torch.float64)
    ref64 = selective_scan_ref(i64.u, i64.delta, i64.A, i64.B, i64.C, D=i64.D, z=i64.z, delta_bias=i64.delta_bias,
                               delta_softplus=i64.delta_softplus, route=i64.route)
    assert torch.isfinite(y).all(), f"{name}: non-finite ONNX output"
    assert_close_3way(y, eager, ref64, name=name)


@pytest.mark.parametrize("groups", [1, 4], ids=["G=1", "G=K"])
@pytest.mark.parametrize("extras", [True, False], ids=["z-D-bias-softplus", "plain"])
def test_onnx_scan_matches_reference(groups: int, extras: bool, tmp_path) -> None:
    """G = 1 and G = K (4 B/C groups), with and without z / D / delta_bias / softplus; L = 37, odd."""
    inputs = random_scan_inputs(2, 8, 37, 4, groups, has_D=extras, has_z=extras, has_delta_bias=extras,
                                delta_softplus=extras)
    _check(inputs, tmp_path, f"G={groups} extras={extras}")


@pytest.mark.parametrize("shared_u", [False, True], ids=["own-u", "shared-u"])
def test_onnx_scan_with_padded_route_matches_reference(shared_u: bool, tmp_path) -> None:
    route = random_route(2, 21, pad=5)
    inputs = random_scan_inputs(2, 8, 21, 4, 2, route=route, shared_u=shared_u)
    _check(inputs, tmp_path, f"padded route, shared_u={shared_u}")


@pytest.mark.slow  # the exporter takes ~170 s for the 4096-step graph on a loaded 2-core CPU
def test_onnx_scan_long_sequence_stays_finite_and_accurate(tmp_path) -> None:
    """L = 4096 with realistic delta (softplus of about N(-4, 1)) and A = -exp(N(0, 1))."""
    inputs = random_scan_inputs(1, 4, 4096, 4)
    _check(inputs, tmp_path, "L=4096")

"""The GPU cost model (vssm/analysis/roofline.py) and its table (benchmarks/gpu_model.py): bytes, FLOPs and launches
of known ops, the CUDA paths it emulates on meta (autocast, fused attention, route gathers), the calibration fit, and a
smoke run over the test variants."""

from __future__ import annotations

import csv
import importlib.util
import math
import random
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import conv_backward_flop, conv_flop_count

from vssm.analysis.roofline import (
    FUSED,
    H100,
    H100_CALIBRATION,
    Calibration,
    CudaEmulation,
    Fusion,
    Mode,
    OpCost,
    Profile,
    fused_rms_norm,
    grouped_conv_backward_flops,
    profile,
    profile_model,
    triton_scan_traffic,
)
from vssm.kernels.scan_tensors import ScanTensors
from vssm.kernels.triton_scan_state1 import State1Config, state1_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("benchmarks_gpu_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class _Linear(nn.Module):
    def __init__(self, features: int, out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class _Attention(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, HW, C)
        return F.scaled_dot_product_attention(q, q, q)


def test_linear_bytes_flops_and_launches_under_bf16_autocast():
    batch, size = random.randint(2, 9), (random.randint(1, 4), random.randint(1, 4), random.randint(1, 4))
    features, out = size[0] * size[1] * size[2], random.randint(2, 7)
    result = profile(_Linear(features, out).to("meta"), batch=batch, input_size=size)
    by_op = {o.op: o for o in result.ops}
    # autocast casts the float32 input, weight and bias to bf16 (three copies), then one addmm in bf16
    assert [o.op for o in result.ops].count("aten._to_copy") == 3
    assert result.launches == 4
    casts = (batch * features + out * features + out) * (4 + 2)
    addmm = (out + batch * features + out * features) * 2 + batch * out * 2
    assert result.bytes == casts + addmm
    assert by_op["aten.addmm"].flops == 2 * batch * features * out
    assert by_op["aten.addmm"].module == "Linear"


def test_training_step_attributes_backward_ops_to_their_modules_and_prices_sgd():
    batch, size = random.randint(2, 9), (2, 3, 3)
    result = profile(_Linear(18, random.randint(2, 7)).to("meta"), Mode.TRAIN, batch=batch, input_size=size)
    modules = {o.module for o in result.ops}
    assert "Linear (backward)" in modules
    assert "SGD step" in modules
    forward = profile(_Linear(18, 3).to("meta"), batch=batch, input_size=size)
    assert result.launches > forward.launches


def test_layer_norm_runs_in_float32_and_linear_in_bf16_under_the_emulated_autocast():
    x = torch.randn(random.randint(2, 5), 8, device="meta")
    linear = nn.Linear(8, 8, device="meta")
    with CudaEmulation(torch.bfloat16):
        hidden = linear(x)
        normed = F.layer_norm(hidden, (8,))
        total = normed.to(torch.bfloat16).sum()
    assert hidden.dtype == torch.bfloat16
    assert normed.dtype == torch.float32
    assert total.dtype == torch.float32


def test_attention_is_priced_as_the_fused_kernel_not_the_math_path():
    result = profile(_Attention().to("meta"), batch=random.randint(2, 5), input_size=(8, 4, 4))
    ops = {o.op for o in result.ops}
    assert "aten._scaled_dot_product_flash_attention" in ops
    assert not ops & {"aten.bmm", "aten._softmax", "aten._safe_softmax"}
    flash = next(o for o in result.ops if o.op == "aten._scaled_dot_product_flash_attention")
    assert flash.flops > 0


class _RmsNorm(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.flatten(2).transpose(1, 2), (self.weight.shape[0],), self.weight, 1e-5)


def test_rms_norm_is_priced_as_cudas_one_kernel_not_the_meta_composite():
    channels, batch = random.randint(2, 9), random.randint(2, 5)
    result = profile(_RmsNorm(channels).to("meta"), batch=batch, input_size=(channels, 3, 3), amp_dtype=None)
    assert [o.op for o in result.ops] == ["cuda_emulation._fused_rms_norm"]
    x = batch * 9 * channels * 4
    assert result.ops[0].bytes == x + channels * 4 + x + batch * 9 * 4  # x, weight in; y, rstd out
    train = profile(_RmsNorm(channels).to("meta"), Mode.TRAIN, batch=batch, input_size=(channels, 3, 3),
                    amp_dtype=None)
    backward = [o for o in train.ops if o.op == "cuda_emulation._fused_rms_norm_backward"]
    assert len(backward) == 1 and backward[0].launches == 3
    in_the_norm = {o.op for o in train.ops if o.module.startswith("_RmsNorm")}  # not the loss's mean
    assert not in_the_norm & {"aten.pow", "aten.rsqrt", "aten.mean"}


def test_the_emulated_rms_norm_is_torchs_in_value_and_gradient():
    x = torch.randn(random.randint(2, 4), 5, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(8, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(x.shape, dtype=torch.float64)
    ours = fused_rms_norm(x, (8,), weight, 1e-5)
    theirs = F.rms_norm(x, (8,), weight, 1e-5)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, (x, weight), grad), torch.autograd.grad(theirs, (x, weight), grad)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_grouped_conv_backward_costs_what_its_forward_does_per_gradient():
    channels = random.choice([8, 16, 32])
    x = torch.empty(2, channels, 14, 14, device="meta")
    weight = torch.empty(channels, 1, 7, 7, device="meta")
    grad = torch.empty(2, channels, 14, 14, device="meta")
    forward = conv_flop_count(list(x.shape), list(weight.shape), list(grad.shape), False)
    ours = grouped_conv_backward_flops(grad, x, weight, None, [1, 1], [3, 3], [1, 1], False, [0, 0], channels,
                                       [True, True, False])
    assert ours == 2 * forward
    # torch's formula leaves the groups out: the weight gradient at `channels` times its work
    theirs = conv_backward_flop(grad, x, weight, None, [1, 1], [3, 3], [1, 1], False, [0, 0], channels,
                                [True, True, False], out_val=(torch.empty_like(x), torch.empty_like(weight), None))
    assert theirs > ours


def test_scattered_routes_are_gathered_as_on_cuda_and_raster_routes_read_in_place():
    # LocalVMamba's searched directions share no base layout: its jumping routes are gathered, as on CUDA
    local = profile_model("test_local_vssm", batch=random.randint(2, 4))
    assert any(o.op == "route gathers" for o in local.ops)
    # VMamba's cross routes run in base layouts (vssm.layers.route_bases): neighbour walks, read in place
    cross = profile_model("test_vmamba", batch=random.randint(2, 4))
    assert any(o.op == "vssm.selective_scan" for o in cross.ops)
    assert not any(o.op.startswith("route") for o in cross.ops)
    # GroupMamba's groups, one cross route each: the column-major ones transposed into their base (permute_groups)
    grouped = profile_model("test_groupmamba", batch=random.randint(2, 4))
    assert any(o.op == "vssm.selective_scan" for o in grouped.ops)
    assert not any(o.op.startswith("route") for o in grouped.ops)
    bidirectional = profile_model("test_vim", batch=random.randint(2, 4))
    assert any(o.op == "vssm.selective_scan" for o in bidirectional.ops)
    assert not any(o.op.startswith("route") for o in bidirectional.ops)


def _scan_tensors(batch: int, routes: int, inner: int, length: int, state: int) -> ScanTensors:
    """A routed bf16 scan call on meta tensors: K routes of `inner` channels, one B/C group per route."""
    channels = routes * inner
    streams = [torch.empty(batch, channels, length, dtype=torch.bfloat16, device="meta") for _ in range(2)]
    B, C = (torch.empty(batch, routes, state, length, dtype=torch.bfloat16, device="meta") for _ in range(2))
    A = torch.empty(channels, state, device="meta")
    D, bias = (torch.empty(channels, device="meta") for _ in range(2))
    route = torch.empty(routes, length, dtype=torch.int64, device="meta")
    return ScanTensors(*streams, A, B, C, D, None, bias, route)


def test_d_state_1_scans_are_priced_with_the_state1_kernels_tiles(monkeypatch: pytest.MonkeyPatch):
    # kernels/triton_scan_state1.py: one launch each way (no sequence segments, which the generic kernel cuts for
    # its 2 x 384 / 32 = 24 programs at L 8192), and 4-channel blocks, 8 per backward program, each adding its dB/dC
    # to the program's partial rows: written 8 times and read back 7
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    batch, routes, inner, length = 2, 4, 96, 8192
    scan = _scan_tensors(batch, routes, inner, length, 1)
    assert state1_config(routes * inner, routes, routes) == State1Config(4, 128, 32, 1, 8)
    programs, channels = routes * inner // 32, routes * inner
    element, f32 = batch * channels * length, 4
    y = torch.empty(batch, channels, length, device="meta")  # out_float32, as SS2D asks
    forward = triton_scan_traffic(scan, forward=True, gathered=False, output=y)
    inputs = 2 * 2 * element + 2 * 2 * batch * routes * length + 3 * channels * f32  # u, delta, B, C, A, D, bias
    saved = batch * channels * (length // 64 - 1) * f32
    assert forward == [("vssm.selective_scan", inputs + f32 * element + saved + batch * channels * f32, 1)]
    assert triton_scan_traffic(scan, forward=True, gathered=False, output=y.bfloat16())[0][1] == (
        inputs + 2 * element + saved + batch * channels * f32)
    backward = {label: (read_written, launches) for label, read_written, launches
                in triton_scan_traffic(scan, forward=False, gathered=False, output=y)}
    partial_rows = programs * batch * length * f32
    per_row = 3 * batch * channels * f32  # dA, dD, dbias
    assert backward["vssm.selective_scan_backward"] == (
        f32 * element + inputs + saved + 2 * 2 * element + per_row + 2 * 15 * partial_rows, 1)
    assert backward["scan dA/dD/dbias sums"] == (per_row, 3)
    summed = batch * routes * length * f32
    assert backward["scan dB/dC partial sums"] == (partial_rows + 3 * summed + 2 * batch * routes * length, 3)


def test_profile_rejects_a_model_off_the_meta_device_and_a_bad_batch():
    with pytest.raises(ValueError, match="meta device"):
        profile(_Linear(12, 3), input_size=(3, 2, 2))
    with pytest.raises(ValueError, match="batch"):
        profile(_Linear(12, 3).to("meta"), batch=0, input_size=(3, 2, 2))
    with pytest.raises(ValueError, match="efficiency"):
        Calibration(efficiency=0.0, launch_s=1e-6)


def test_prediction_and_contributors_add_up():
    result = profile_model("test_mambavision", Mode.TRAIN, batch=random.randint(2, 4))
    contributors = result.contributors(top=10_000)
    assert sum(c.seconds for c in contributors) == pytest.approx(result.predicted_s())
    assert sum(c.launches for c in contributors) == result.launches
    assert contributors == sorted(contributors, key=lambda c: -c.seconds)
    assert result.predicted_s() == pytest.approx(result.roof_s / H100_CALIBRATION.efficiency
                                                 + result.launches * H100_CALIBRATION.launch_s)


class _Glue(nn.Module):
    """fc1 -> three elementwise ops -> fc2, with `residual`: the first op's output is added after fc2 too."""

    def __init__(self, features: int, hidden: int, residual: bool) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(features, hidden), nn.Linear(hidden, hidden)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.fc1(x.flatten(1)))
        b = F.gelu(a * 3.0) + 1.0
        out = self.fc2(b)
        return out + a if self.residual else out


def test_compiled_fuses_the_glue_between_library_kernels_into_one_kernel_reading_and_writing_once():
    batch, hidden = random.randint(2, 9), random.randint(3, 17)
    size = (random.randint(1, 3), 2, 2)
    eager = profile(_Glue(math.prod(size), hidden, residual=False).to("meta"), batch=batch, input_size=size,
                    amp_dtype=None)
    assert [o.op for o in eager.ops] == ["aten.addmm", "aten.relu", "aten.mul", "aten.gelu", "aten.add", "aten.addmm"]
    compiled = eager.compiled()
    assert [o.op for o in compiled.ops] == ["aten.addmm", FUSED, "aten.addmm"]
    activation = batch * hidden * 4
    # fc1's output read once, the input of fc2 written once; relu's, mul's and gelu's outputs never leave the kernel
    assert compiled.ops[1].bytes == 2 * activation
    assert compiled.ops[1].launches == 1
    assert compiled.ops[1].flops == sum(o.flops for o in eager.ops[1:5])
    assert compiled.launches == 3 < eager.launches == 6
    assert compiled.predicted_s() < eager.predicted_s()


def test_compiled_writes_what_an_op_after_the_fused_run_reads():
    batch, hidden = random.randint(2, 9), random.randint(3, 17)
    eager = profile(_Glue(8, hidden, residual=True).to("meta"), batch=batch, input_size=(2, 2, 2), amp_dtype=None)
    compiled = eager.compiled()
    assert [o.op for o in compiled.ops] == ["aten.addmm", FUSED, "aten.addmm", FUSED]
    activation = batch * hidden * 4
    # reads fc1's output; writes relu's output (the residual reads it after fc2) and fc2's input
    assert compiled.ops[1].bytes == 3 * activation
    # the last run: fc2's output and relu's output in, the step's output out
    assert compiled.ops[3].bytes == 3 * activation


def test_compiled_training_step_keeps_the_library_kernels_and_the_optimizer():
    eager = profile_model("test_mambavision", Mode.TRAIN, batch=random.randint(2, 4))
    assert not any("AccumulateGrad" in o.module for o in eager.ops)  # the recorder holds no gradient
    compiled = eager.compiled()
    library = [o for o in eager.ops if o.fusion is Fusion.EXTERN]
    assert [o for o in compiled.ops if o.op != FUSED] == library
    assert any(o.module == "SGD step" for o in library)
    assert any(o.op == "vssm.selective_scan_backward" for o in library)
    assert compiled.launches < eager.launches
    assert compiled.bytes < eager.bytes
    assert compiled.predicted_s() < eager.predicted_s()


def test_fit_recovers_the_constants_that_made_the_times():
    script = _script()
    truth = Calibration(efficiency=random.uniform(0.3, 0.9), launch_s=random.uniform(2e-6, 30e-6))
    profiles, rows = {}, []
    for i in range(random.randint(4, 8)):
        fake = Profile(f"m{i}", Mode.INFERENCE, 128, (3, 224, 224), H100,
                       [OpCost("aten.mm", "Linear", 0, 0, random.randint(100, 5000), random.uniform(1e-3, 5e-2))])
        profiles[fake.model, "inference"] = fake
        rows.append(script.Measured("throughput_cuda.csv", fake.model, "inference", 128,
                                    fake.predicted_s(truth) * 1e3))
    fitted = script.fit(profiles, rows)
    assert fitted.efficiency == pytest.approx(truth.efficiency, rel=1e-6)
    assert fitted.launch_s == pytest.approx(truth.launch_s, rel=1e-6)


def test_measured_rows_read_the_committed_h100_files():
    rows = _script().measured_rows()
    assert {("vim_small", "inference"), ("deit_small_patch16_224", "train")} <= {(r.model, r.mode) for r in rows}
    assert all(r.batch == 128 and r.ms > 0 for r in rows)


def test_gpu_model_script_on_the_test_variants(tmp_path):
    from vssm import zoo

    assert _script().main(["--test-variants", "--top", "3", "--output", str(tmp_path)]) == 0
    with (tmp_path / "gpu_model_test_variants.csv").open() as f:
        rows = list(csv.DictReader(f))
    expected = {(name, mode) for name in zoo.test_variants() for mode in ("inference", "train")}
    assert {(r["model"], r["mode"]) for r in rows} == expected
    assert all(float(r["predicted_ms"]) > 0 and int(r["launches"]) > 0 for r in rows)
    # a fused run moves at most what its ops moved and launches once: compiled is never slower than eager
    assert all(0 < float(r["compiled_predicted_ms"]) <= float(r["predicted_ms"]) for r in rows)
    assert all(0 < int(r["compiled_launches"]) <= int(r["launches"]) for r in rows)
    text = (tmp_path / "gpu_model_test_variants.md").read_text()
    assert "largest 3 contributors" in text


@pytest.mark.slow
def test_the_library_constants_are_the_fit_to_the_committed_h100_rows():
    script = _script()
    rows = [r for r in script.measured_rows() if script.in_fit(r)]
    profiles = {(r.model, r.mode): profile_model(r.model, r.mode) for r in rows}
    fitted = script.fit(profiles, rows)
    assert fitted.efficiency == pytest.approx(H100_CALIBRATION.efficiency, rel=0.01)
    assert fitted.launch_s == pytest.approx(H100_CALIBRATION.launch_s, rel=0.01)


def test_a_folded_scan_is_priced_with_its_read_modify_write(monkeypatch: pytest.MonkeyPatch):
    # fold 2 (selective_scan(..., fold=2), SS2D's routes sharing a base): y of KD/2 channels written once, its float32
    # sum read and written back by the second block (2 passes), grad_out read by both blocks; gathered, every
    # channel's float32 output is scattered back and summed by a separate kernel
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    batch, routes, inner, length = 2, 4, 8, 256
    scan = _scan_tensors(batch, routes, inner, length, 1)
    f32 = 4
    unfolded = torch.empty(batch, routes * inner, length, device="meta")
    folded = torch.empty(batch, routes * inner // 2, length, device="meta")
    plain = triton_scan_traffic(scan, forward=True, gathered=False, output=unfolded)[0][1]
    forward = triton_scan_traffic(scan, forward=True, gathered=False, output=folded, fold=2)
    assert forward == [("vssm.selective_scan", plain - unfolded.numel() * f32 + 3 * folded.numel() * f32, 1)]
    backward = triton_scan_traffic(scan, forward=False, gathered=False, output=folded, fold=2)
    assert backward == triton_scan_traffic(scan, forward=False, gathered=False, output=unfolded)
    gathered = {label: (read_written, launches) for label, read_written, launches
                in triton_scan_traffic(scan, forward=True, gathered=True, output=folded, fold=2)}
    assert gathered["route scatter"] == (2 * unfolded.numel() * f32, 1)
    assert gathered["route fold sum"] == ((unfolded.numel() + folded.numel()) * f32, 1)

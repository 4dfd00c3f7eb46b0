"""The GPU cost model (vssm/analysis/roofline.py) and its table (benchmarks/gpu_model.py): bytes, FLOPs and launches
of known ops, the CUDA paths it emulates on meta (autocast, fused attention, route gathers), the calibration fit, and a
smoke run over the test variants."""

from __future__ import annotations

import csv
import importlib.util
import random
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import conv_backward_flop, conv_flop_count

from vssm.analysis.roofline import (
    H100,
    H100_CALIBRATION,
    Calibration,
    CudaEmulation,
    Mode,
    OpCost,
    Profile,
    grouped_conv_backward_flops,
    profile,
    profile_model,
)

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
    cross = profile_model("test_vmamba", batch=random.randint(2, 4))
    assert any(o.op == "route gathers" for o in cross.ops)
    assert any(o.op == "vssm.selective_scan" for o in cross.ops)
    bidirectional = profile_model("test_vim", batch=random.randint(2, 4))
    assert any(o.op == "vssm.selective_scan" for o in bidirectional.ops)
    assert not any(o.op.startswith("route") for o in bidirectional.ops)


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

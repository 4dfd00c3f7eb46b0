"""The report's faithfulness numbers (tools/upkeep/faithfulness.py): our models on the golden fixtures."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from upkeep.faithfulness import fixture_models, fixtures_in, load_fixture, measure_fixture

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURES = fixture_models()
# Fixtures of mm backbones: the report runs without the OpenMMLab stack, tests/mm checks them against the original.
MM_FIXTURES = {"plainmamba_adapter_test"}


def test_every_fixture_with_a_checkpoint_is_measured() -> None:
    with_checkpoint = {d.name for d in FIXTURE_DIR.iterdir() if (d / "state_dict.pt").is_file()}
    assert set(FIXTURES) == with_checkpoint - MM_FIXTURES
    assert [folder.name for folder, _ in fixtures_in(FIXTURE_DIR, {"vmamba"})] == ["vmamba_test_s1l8",
                                                                                  "vmamba_test_v0"]


def test_a_fixture_is_measured_in_both_dtypes_with_its_stage_maps() -> None:
    fixture = load_fixture(FIXTURE_DIR / "vmamba_test_s1l8")
    row = measure_fixture(fixture, FIXTURES["vmamba_test_s1l8"])
    assert row.ok and row.family == "vmamba" and row.params == row.original_params == fixture.meta["n_params"]
    assert 0 < row.fp32 <= 1e-5 and 0 < row.fp64 <= 1e-9 and 0 < row.stages_fp64 <= 1e-9
    assert row.original_noise == fixture.meta["fp64"]["rel_l2_fp32_vs_fp64"]


def test_a_perturbed_checkpoint_breaks_the_rule() -> None:
    fixture = load_fixture(FIXTURE_DIR / "umamba_bot_2d_test")
    state = dict(fixture.checkpoint["network_weights"])
    key = next(k for k in state if k.endswith("mamba.A_log"))
    state[key] = state[key] + 0.5 * torch.randn_like(state[key])
    row = measure_fixture(replace(fixture, checkpoint={"network_weights": state}), FIXTURES["umamba_bot_2d_test"])
    assert not row.ok and row.fp32 > 1e-5 and row.fp64 > 1e-9 and row.stages_fp32 is None

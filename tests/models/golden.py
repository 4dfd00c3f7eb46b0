"""Golden fixtures: tiny configurations run through the ORIGINAL code (see tests/fixtures/GOLDEN.md).

Each fixture holds an original-format checkpoint, a fixed input and the original's float32 and float64 outputs.
Acceptance rule (GOLDEN.md): relative L2 error <= 1e-5 against the float32 output, or <= 1e-9 in float64.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RTOL_FP32 = 1e-5
RTOL_FP64 = 1e-9


@dataclass(frozen=True)
class Golden:
    """One fixture: ``checkpoint`` is the file's top-level dict (``{meta['ckpt_key']: state_dict}``)."""

    name: str
    meta: dict
    checkpoint: dict
    input: torch.Tensor
    output: torch.Tensor
    output_fp64: torch.Tensor
    features: dict | None

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.checkpoint[self.meta["ckpt_key"]]

    @property
    def kwargs(self) -> dict:
        """The original constructor's arguments."""
        return self.meta["original"]["kwargs"]


def load_golden(name: str) -> Golden:
    folder = FIXTURES / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no golden fixture {name!r} in {FIXTURES}")

    def load(file: str):
        return torch.load(folder / file, map_location="cpu", weights_only=True)

    features = load("features.pt") if (folder / "features.pt").is_file() else None
    return Golden(
        name=name,
        meta=json.loads((folder / "meta.json").read_text()),
        checkpoint=load("state_dict.pt"),
        input=load("input.pt"),
        output=load("output.pt"),
        output_fp64=load("output_fp64.pt"),
        features=features,
    )


def rel_l2(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """‖ours − reference‖₂ / ‖reference‖₂, computed in float64."""
    if ours.shape != reference.shape:
        raise AssertionError(f"shape {tuple(ours.shape)} != reference {tuple(reference.shape)}")
    reference = reference.double()
    return float((ours.double() - reference).norm() / reference.norm())


def assert_matches(ours: torch.Tensor, reference: torch.Tensor, what: str) -> None:
    """Apply the fixture's rule for the dtype ``ours`` was computed in."""
    limit = RTOL_FP64 if ours.dtype == torch.float64 else RTOL_FP32
    error = rel_l2(ours, reference)
    assert error <= limit, f"{what}: relative L2 error {error:.3e} > {limit:.0e}"


def assert_features_only_matches(name: str, classifier: torch.nn.Module, golden: Golden,
                                 is_body: Callable[[str], bool]) -> None:
    """timm's `features_only` wrapper of `name`, given the body (the keys `is_body` keeps) of `classifier`, returns
    the original's stage maps at strides 4-32."""
    backbone = timm.create_model(name, features_only=True).eval()
    backbone.model.load_state_dict({k: v for k, v in classifier.state_dict().items() if is_body(k)}, strict=True)
    assert backbone.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        stages = backbone(golden.input)
    for i, (ours, ref) in enumerate(zip(stages, golden.features["stages"], strict=True)):
        assert_matches(ours, ref, f"features_only stage {i}")

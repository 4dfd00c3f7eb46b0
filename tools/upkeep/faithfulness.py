"""Faithfulness to the original code, measured: our models on the golden fixtures (`tests/fixtures/GOLDEN.md`).

    rows = measure_fixtures(Path("tests/fixtures"))      # one `Faithfulness` per fixture found

Each fixture holds a small configuration's checkpoint in the original's format, an input, and the original code's
float32 and float64 outputs. Here our model is built for that configuration (the family's `GOLDEN_FIXTURES`, read by
`fixture_models`), the checkpoint loaded
strictly through the family's `checkpoint_filter_fn`, and the relative L2 errors measured: float32 with the automatic
selective-scan backend, float64 with the reference backend, the logits and (hierarchical models) every
pre-downsample stage map. The fixtures' acceptance rule: <= 1e-5 in float32 or <= 1e-9 in float64. The families'
golden tests (`tests/models/test_<family>_golden.py`) assert the same comparisons.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor, nn

from vssm import kernels, zoo
from vssm.analysis.tables import markdown_table
from vssm.models._records import GoldenFixture

RTOL_FP32 = 1e-5
RTOL_FP64 = 1e-9
RULE_TEXT = (
    "Relative L2 error of our outputs against the original code's on the golden fixtures (`tests/fixtures/GOLDEN.md`; "
    "stage maps: the largest over the four pre-downsample maps). float32: automatic selective-scan backend; "
    "float64: reference backend. The original's fp32 noise is its own float32 output against its float64 output. "
    f"Rule: <= {RTOL_FP32:g} in float32 or <= {RTOL_FP64:g} in float64."
)


@dataclass(frozen=True)
class Fixture:
    """A fixture's files (`tests/fixtures/<name>/`, GOLDEN.md): checkpoint, input, the original's outputs."""

    name: str
    meta: dict[str, Any]
    checkpoint: dict[str, Any]
    input: Tensor
    output: Tensor
    output_fp64: Tensor
    features: dict[str, Any] | None

    @property
    def kwargs(self) -> dict[str, Any]:
        """The original constructor's arguments."""
        return self.meta["original"]["kwargs"]


def load_fixture(folder: Path) -> Fixture:
    def load(file: str) -> Any:
        return torch.load(folder / file, map_location="cpu", weights_only=True)

    features = folder / "features.pt"
    return Fixture(folder.name, json.loads((folder / "meta.json").read_text()), load("state_dict.pt"),
                   load("input.pt"), load("output.pt"), load("output_fp64.pt"),
                   load(features.name) if features.is_file() else None)


def rel_l2(ours: Tensor, reference: Tensor) -> float:
    """‖ours − reference‖₂ / ‖reference‖₂ in float64."""
    if ours.shape != reference.shape:
        raise ValueError(f"shape {tuple(ours.shape)} != reference {tuple(reference.shape)}")
    reference = reference.double()
    return float((ours.double() - reference).norm() / reference.norm())


@dataclass(frozen=True)
class OurModel:
    """A family's golden fixture as our model (`GoldenFixture`: a registered name with kwargs that translate the
    original constructor's arguments, or a builder of its own)."""

    family: str
    golden: GoldenFixture

    @property
    def name(self) -> str:
        return self.golden.model

    def create(self, fixture: Fixture) -> nn.Module:
        if self.golden.build is not None:
            return self.golden.build(fixture.kwargs, fixture.meta["input_shape"])
        kwargs = {**self.golden.kwargs, **{arg: fixture.kwargs[arg] for arg in self.golden.from_original}}
        return timm.create_model(self.golden.model, **kwargs)


def fixture_models() -> dict[str, OurModel]:
    """{fixture folder: our model} over every family's `GOLDEN_FIXTURES`, families by name."""
    return {folder: OurModel(family, golden) for family in zoo.families()
            for folder, golden in getattr(zoo.family_module(family), "GOLDEN_FIXTURES", {}).items()}


@dataclass(frozen=True)
class Faithfulness:
    """One fixture's errors: logits in float32 / float64, the original's own float32-vs-float64 noise, and the
    largest stage-map error in each dtype (None without stage maps)."""

    fixture: str
    family: str
    model: str
    params: int
    original_params: int
    fp32: float
    fp64: float
    original_noise: float
    stages_fp32: float | None
    stages_fp64: float | None

    @property
    def ok(self) -> bool:
        """The fixtures' rule, for the logits and for the stage maps."""
        logits = self.fp32 <= RTOL_FP32 or self.fp64 <= RTOL_FP64
        if self.stages_fp32 is None or self.stages_fp64 is None:
            return logits
        return logits and (self.stages_fp32 <= RTOL_FP32 or self.stages_fp64 <= RTOL_FP64)


def _loaded(fixture: Fixture, ours: OurModel) -> nn.Module:
    model = ours.create(fixture).eval()
    family_module = importlib.import_module(type(model).__module__)
    model.load_state_dict(family_module.checkpoint_filter_fn(fixture.checkpoint, model), strict=True)
    return model


def _stage_error(model: nn.Module, x: Tensor, references: list[Tensor]) -> float:
    stages = model.forward_intermediates(x, intermediates_only=True)
    return max(rel_l2(ours, ref) for ours, ref in zip(stages, references, strict=True))


def measure_fixture(fixture: Fixture, ours: OurModel) -> Faithfulness:
    model = _loaded(fixture, ours)
    features = fixture.features
    with torch.no_grad():
        fp32 = rel_l2(model(fixture.input), fixture.output)
        stages_fp32 = _stage_error(model, fixture.input, features["stages"]) if features else None
        model.double()
        x = fixture.input.double()
        with kernels.use_backend("reference"):
            fp64 = rel_l2(model(x), fixture.output_fp64)
            stages_fp64 = _stage_error(model, x, features["stages_fp64"]) if features else None
    return Faithfulness(
        fixture=fixture.name, family=ours.family, model=ours.name, params=sum(p.numel() for p in model.parameters()),
        original_params=fixture.meta["n_params"], fp32=fp32, fp64=fp64,
        original_noise=rel_l2(fixture.output, fixture.output_fp64), stages_fp32=stages_fp32, stages_fp64=stages_fp64,
    )


def fixtures_in(directory: Path, families: Iterable[str] | None = None) -> list[tuple[Path, OurModel]]:
    """The known fixtures present under `directory` (of `families`, if given), in `fixture_models` order."""
    wanted = None if families is None else set(families)
    return [(directory / name, ours) for name, ours in fixture_models().items()
            if (directory / name / "meta.json").is_file() and (wanted is None or ours.family in wanted)]


def measure_fixtures(directory: Path, families: Iterable[str] | None = None) -> list[Faithfulness]:
    """`measure_fixture` on every fixture of `fixtures_in`."""
    return [measure_fixture(load_fixture(folder), ours) for folder, ours in fixtures_in(directory, families)]


def _e(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def faithfulness_table(rows: Iterable[Faithfulness]) -> str:
    headers = ["fixture", "our model", "params (ours / original)", "logits fp32", "original's fp32 noise",
               "logits fp64", "stage maps fp32", "stage maps fp64", "rule met"]
    body = [[r.fixture, r.model, f"{r.params:,} / {r.original_params:,}", _e(r.fp32), _e(r.original_noise),
             _e(r.fp64), _e(r.stages_fp32), _e(r.stages_fp64), "yes" if r.ok else "NO"] for r in rows]
    return markdown_table(headers, body, right=[False, False, True, True, True, True, True, True, False])


def faithfulness_markdown(rows: Sequence[Faithfulness]) -> str | None:
    """The rule and the table, for the report and the cards; None without rows."""
    if not rows:
        return None
    return f"{RULE_TEXT}\n\n{faithfulness_table(rows)}"

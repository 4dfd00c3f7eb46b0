"""Released-size golden fixtures with seed-derived weights (tests/fixtures/*_seeded/README.md, GOLDEN.md).

Such a folder holds the original's state-dict keys and shapes (`meta.json`), the original code's logits per input size
(`output.pt`, `output_fp64.pt`: {size: logits}); `seeded_recipe` makes the weights and the inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import timm
import torch
from golden import FIXTURES
from seeded_recipe import checksum, seeded_input, seeded_state_dict

from vssm import kernels


@dataclass(frozen=True)
class SeededGolden:
    """One fixture with our registered model loaded (strict) from the recipe's weights, in eval mode."""

    name: str
    meta: dict
    model: torch.nn.Module

    def input(self, size: str) -> torch.Tensor:
        """The seeded float32 input of `meta['inputs'][size]`, (B, C, H, W)."""
        return seeded_input(self.meta["weights"]["seed"], self.meta["inputs"][size]["shape"])

    def output(self, size: str, float64: bool = False) -> torch.Tensor:
        """The original's logits at `size`, (B, num_classes): float32 run, or the float64 run."""
        file = FIXTURES / self.name / ("output_fp64.pt" if float64 else "output.pt")
        return torch.load(file, map_location="cpu", weights_only=True)[size]


def load_seeded(name: str, model_name: str, checkpoint_filter_fn: Callable, ckpt_key: str) -> SeededGolden:
    """Build `model_name` and load the fixture's recipe weights, wrapped as `{ckpt_key: state_dict}` the way the
    family's released files carry them, through `checkpoint_filter_fn` (strict)."""
    meta = json.loads((FIXTURES / name / "meta.json").read_text())
    state_dict = seeded_state_dict(meta["weights"]["seed"], meta["state_dict_keys"], meta["family"])
    expected = meta["weights"]["checksum_abs_sum_fp64"]
    assert checksum(state_dict) == pytest.approx(expected, rel=1e-9), "the weight recipe no longer reproduces"
    model = timm.create_model(model_name).eval()
    model.load_state_dict(checkpoint_filter_fn({ckpt_key: state_dict}, model), strict=True)
    return SeededGolden(name, meta, model)


def forward_float64(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`model(x)` in float64 on the reference backend (no grad); the model is back in float32 afterwards."""
    try:
        model.double()
        with kernels.use_backend("reference"), torch.no_grad():
            out = model(x.double())
    finally:
        model.float()
    assert out.dtype == torch.float64
    return out

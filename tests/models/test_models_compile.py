"""torch.compile of the models: every family's test variant compiles whole (`fullgraph`: no graph break, no
data-dependent guard) in eval and train mode, with a static and a dynamic batch, and gives the eager outputs and
gradients; with the default inductor backend (slow) too; the SSM layers trace without graph breaks.

CI traces with `aot_eager` (Dynamo and AOTAutograd, forward and backward graphs, no code generation): what decides
whether a model compiles whole; inductor's C++ compilation adds ~20-60 s per model on a 2-core CPU."""

from __future__ import annotations

import copy

import pytest
import timm
import torch

import vssm
from vssm import scans
from vssm.kernels.tolerances import assert_close_3way
from vssm.layers.mamba_mixer import MambaMixer
from vssm.layers.ssm_core import RouteNaming

TEST_VARIANTS = vssm.list_models("test_*")


@pytest.mark.parametrize("naming", list(RouteNaming))
def test_ssm_mixer_traces_as_one_graph(naming: RouteNaming) -> None:
    """Dynamo traces the SSM mixer whole (`fullgraph`): the route naming does not get in its way."""
    assert naming.name == naming.name.upper()  # the enum's own `name`, which Dynamo reads, is not shadowed
    mixer = MambaMixer(16, num_routes=2, naming=naming).eval()
    routes = scans.token_routes(scans.get("bidirectional"), 3, 4, torch.device("cpu"))
    x = torch.randn(2, 12, 16)
    with torch.no_grad():
        traced = torch.compile(mixer, backend="eager", fullgraph=True)(x, routes)
        torch.testing.assert_close(traced, mixer(x, routes), rtol=0, atol=0)


def _input(model: torch.nn.Module, batch: int) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"])


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_model_compiles_whole_with_dynamic_batch(name: str) -> None:
    """Eval: one fullgraph program serves batches 2 and 3 (a recompile would raise) with the eager outputs."""
    torch._dynamo.reset()
    model = timm.create_model(name).eval()
    model64 = copy.deepcopy(model).double()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True, dynamic=False)
    with torch.no_grad(), torch._dynamo.config.patch(error_on_recompile=True):
        for batch in (2, 3):
            x = _input(model, batch)
            torch._dynamo.mark_dynamic(x, 0)
            assert_close_3way(compiled(x), model(x), model64(x.double()), name=f"{name} B={batch}")


# 3.5-4.5 s each on a 2-core CPU at load average ~1 (3-42 s for the others at load ~10): CI trains three families
# whose scans are reached differently (route addressing, K gathered routes, windows through token routes); every
# family's eval graph is traced above.
TRAIN_CI_VARIANTS = {"test_vim", "test_vmamba", "test_mambavision"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in TRAIN_CI_VARIANTS else pytest.mark.slow)
                                  for n in TEST_VARIANTS])
def test_model_compiles_whole_for_training(name: str) -> None:
    """Train mode, static shapes: the fullgraph forward and backward give the eager logits and gradients."""
    torch._dynamo.reset()
    model = timm.create_model(name).train()
    x = _input(model, 2)
    models = {"compiled": copy.deepcopy(model), "eager": copy.deepcopy(model), "eager64": copy.deepcopy(model).double()}
    runs = {"compiled": torch.compile(models["compiled"], backend="aot_eager", fullgraph=True, dynamic=False),
            "eager": models["eager"], "eager64": models["eager64"]}
    results = {}
    for key, run in runs.items():
        inputs = (x.double() if key == "eager64" else x.clone()).requires_grad_()
        torch.manual_seed(0)  # the same dropout / drop-path draws in every run
        out = run(inputs)
        out.square().mean().backward()
        results[key] = [out, inputs.grad] + [p.grad for p in models[key].parameters()]
    names = ["logits", "input grad"] + [f"grad {n}" for n, _ in model.named_parameters()]
    for label, compiled, eager, eager64 in zip(names, results["compiled"], results["eager"], results["eager64"]):
        assert_close_3way(compiled, eager, eager64, name=f"{name} {label}")


@pytest.mark.slow  # ~20-60 s per model on a 2-core CPU (inductor's C++ compilation), ~5 min in all
@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_compiled_model_matches_eager(name: str) -> None:
    torch._dynamo.reset()
    model = timm.create_model(name).eval()
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    model64 = copy.deepcopy(model).double()
    with torch.no_grad():
        compiled = torch.compile(model)(x)
        eager = model(x)
        eager64 = model64(x.double())
    assert_close_3way(compiled, eager, eager64, name=f"{name} logits")

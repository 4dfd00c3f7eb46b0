"""torch.compile of the models: every family's test variant compiles (CPU, default inductor backend) and gives the
eager outputs; the SSM layers trace without graph breaks."""

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

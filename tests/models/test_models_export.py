"""torch.export and ONNX of every family's test variant: one program with a dynamic batch serves two batch sizes with
the eager outputs (the three-way tolerance rule); the op stays one node; `run_decompositions` works; the ONNX model
passes `onnx.checker` and ONNX Runtime (CPU) gives the eager outputs."""

from __future__ import annotations

import copy

import pytest
import timm
import torch

import vssm
from vssm.kernels.tolerances import assert_close_3way

TEST_VARIANTS = vssm.list_models("test_*")


def _batch_dim() -> dict[int, torch.export.Dim]:
    return {0: torch.export.Dim("batch", min=1, max=64)}


def _check_two_batches(run, model: torch.nn.Module, name: str) -> None:
    model64 = copy.deepcopy(model).double()
    for batch in (2, 3):
        x = torch.randn(batch, *model.pretrained_cfg["input_size"])
        with torch.no_grad():
            assert_close_3way(run(x), model(x), model64(x.double()), name=f"{name} B={batch}")


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_export_with_dynamic_batch_matches_eager(name: str) -> None:
    model = timm.create_model(name).eval()
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    program = torch.export.export(model, (x,), dynamic_shapes=(_batch_dim(),))
    graphs = [m.graph for m in program.graph_module.modules() if isinstance(m, torch.fx.GraphModule)]
    # (nested graphs too: U-Mamba's autocast region becomes a `wrap_with_autocast` submodule)
    scans = [n for graph in graphs for n in graph.nodes if n.target is torch.ops.vssm.selective_scan.default]
    assert scans, f"{name}: the exported graph has no vssm.selective_scan node"
    _check_two_batches(program.module(), model, name)
    decomposed = program.run_decompositions()
    _check_two_batches(decomposed.module(), model, f"{name} decomposed")


# 6-33 s each on a 2-core CPU (load 3.4), the exporter's time: the scan is one ONNX `Scan` loop.
@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_onnx_runtime_matches_eager(name: str, tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from vssm.kernels.onnx import export_onnx

    model = timm.create_model(name).eval()
    x = torch.randn(2, *model.pretrained_cfg["input_size"])
    program = export_onnx(model, (x,), (_batch_dim(),))
    path = tmp_path / f"{name}.onnx"
    program.save(str(path))
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    _check_two_batches(lambda x: torch.from_numpy(session.run(None, {feed: x.numpy()})[0]), model, name)

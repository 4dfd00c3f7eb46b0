"""Any registered scan order (and a per-layer schedule) serves Vim: it builds with K parameter sets and trains."""

from __future__ import annotations

import pytest
import timm
import torch

import vssm  # noqa: F401  (registers the models)
from vssm import scans


def _train_step(model: torch.nn.Module) -> None:
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([1, 7])
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing[:5]}"
    optimizer.step()
    assert torch.isfinite(loss)
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p.detach(), before[n])]
    assert not unchanged, f"not updated: {unchanged[:5]}"


@pytest.mark.parametrize("name", scans.list_orders())
def test_every_registered_order_builds_and_trains(name: str) -> None:
    torch.manual_seed(0)
    order = scans.get(name)
    model = timm.create_model("test_vim", scan=name, num_classes=10).train()
    for block in model.layers:
        a_logs = [n for n in block.mixer.state_dict() if n.startswith(("A_log", "A_b_log"))]
        assert len(a_logs) == order.num_routes
    _train_step(model)


def test_a_per_layer_schedule_gives_each_layer_its_routes() -> None:
    torch.manual_seed(0)
    schedule = scans.Cycle((scans.Bidirectional(), scans.Cross()))
    model = timm.create_model("test_vim", scan=schedule, num_classes=10).train()
    assert [block.mixer.num_routes for block in model.layers] == [2, 4, 2, 4]
    assert "layers.1.mixer.A_log_3" in model.state_dict() and "layers.0.mixer.A_b_log" in model.state_dict()
    _train_step(model)

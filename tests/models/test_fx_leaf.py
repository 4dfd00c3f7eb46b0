"""`vssm.layers.fx.fx_leaf`: methods that torch.fx records as one call, run on the real input when the graph runs."""

from __future__ import annotations

import torch
from torch import nn

from vssm.layers.fx import call_method, fx_leaf


class _PadToEven(nn.Module):
    """Decides from the input's size, which a Proxy cannot tell."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.randn(()))

    @fx_leaf
    def forward(self, x: torch.Tensor, *, extra: int = 0) -> torch.Tensor:
        if x.shape[-1] % 2:
            x = torch.nn.functional.pad(x, (0, 1))
        return self.scale * x + extra


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pad = _PadToEven()
        self.offset = nn.Parameter(torch.randn(()))

    @fx_leaf
    def shifted(self, offset: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return offset.expand(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pad(x, extra=1)
        return y + self.shifted(self.offset, (y.shape[0], y.shape[1]))


def test_traced_graph_decides_on_the_real_input_and_owns_the_parameters() -> None:
    net = _Net()
    traced = torch.fx.symbolic_trace(net)
    targets = [n.target for n in traced.graph.nodes if n.op == "call_function"]
    assert call_method in targets  # the submodule's method: one node
    assert {n for n, _ in traced.named_parameters()} == {"pad.scale", "offset"}
    for width in (4, 5):  # one graph, both branches
        x = torch.randn(3, width)
        torch.testing.assert_close(traced(x), net(x), rtol=0, atol=0)
    assert traced(torch.randn(3, 5)).shape == (3, 6)


def test_eager_calls_pass_through_with_keywords() -> None:
    module = _PadToEven()
    x = torch.randn(2, 3)
    torch.testing.assert_close(module(x, extra=2), module.scale * torch.nn.functional.pad(x, (0, 1)) + 2)

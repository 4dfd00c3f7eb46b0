"""`fx_leaf`: module methods that torch.fx symbolic tracing records as one call instead of entering.

Symbolic tracing (timm's FX feature extraction, torchvision's `create_feature_extractor`) runs forward with `Proxy`
objects in place of tensors: a check cannot inspect them, and Python that decides from a shape (route tables of an
H × W grid, window padding, chunking a batch) cannot branch on them. timm keeps such code out of its traces as leaf
functions (`register_notrace_function`); a method decorated here becomes a leaf for every tracer, with no
registration: given a Proxy it records one `call_function` node that calls the method on the real tensors when the
traced graph runs, so the graph checks its inputs and builds its tables as the module does. Input checks return
their input and callers go on with the result (`x = self.check_input(x)`): a node whose result nothing uses is dead
code to torch.fx (torchvision's feature extractor removes it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

__all__ = ["fx_leaf"]

MethodT = TypeVar("MethodT", bound=Callable[..., Any])


def call_method(module: nn.Module, name: str, *args: Any) -> Any:
    """`module.<name>(*args)`: the target of the graph nodes `fx_leaf` records."""
    return getattr(module, name)(*args)


def fx_leaf(method: MethodT) -> MethodT:
    """Decorator for `method(self, *args)` of an nn.Module: called with a torch.fx Proxy in its positional arguments
    (or in tuples / lists of them), it returns the Proxy of one `call_method(self, name, *args)` node instead of
    running. The graph holds `self` as a submodule, so it owns the parameters and buffers the method reads; a method
    of the traced root itself is recorded as a call of the bound method, so it must take every parameter or buffer
    it reads as an argument (the graph owns those), or the traced model would not train or move them."""

    @functools.wraps(method)
    def leaf(self: nn.Module, *args: Any) -> Any:
        for arg in tree_leaves(args):
            if isinstance(arg, torch.fx.Proxy):
                tracer = arg.tracer
                if self is tracer.root:  # the graph reaches submodules by name, the root it replaces by nothing
                    return tracer.create_proxy("call_function", getattr(self, method.__name__), args, {})
                return tracer.create_proxy("call_function", call_method, (self, method.__name__, *args), {})
        return method(self, *args)

    return leaf  # type: ignore[return-value]

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

__all__ = ["fx_leaf"]

MethodT = TypeVar("MethodT", bound=Callable[..., Any])


def _first_proxy(args: tuple[Any, ...]) -> torch.fx.Proxy | None:
    """The first Proxy among `args` or inside a tuple / list of them (a grid (H, W)); one level deep, as the leaves'
    arguments are: 0.2 µs per call against 1.6-3 µs for torch's pytree flattening, on every eager forward."""
    for arg in args:
        for item in arg if type(arg) in (tuple, list) else (arg,):
            if isinstance(item, torch.fx.Proxy):
                return item
    return None


def call_method(module: nn.Module, name: str, *args: Any, **kwargs: Any) -> Any:
    """`module.<name>(*args, **kwargs)`: the target of the graph nodes `fx_leaf` records."""
    return getattr(module, name)(*args, **kwargs)


def fx_leaf(method: MethodT) -> MethodT:
    """Decorator for `method(self, *args, **kwargs)` of an nn.Module: called with a torch.fx Proxy among its arguments
    (or in a tuple / list among them), it returns the Proxy of one `call_method(self, name, *args)` node instead of
    running. The graph holds `self` as a submodule, so it owns the parameters and buffers the method reads; a method
    of the traced root itself is recorded as a call of the bound method, so it must take every parameter or buffer
    it reads as an argument (the graph owns those), or the traced model would not train or move them."""

    @functools.wraps(method)
    def leaf(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        proxy = _first_proxy((*args, *kwargs.values()) if kwargs else args)
        if proxy is None:
            return method(self, *args, **kwargs)
        tracer = proxy.tracer
        if self is tracer.root:  # the graph reaches submodules by name, the root it replaces by nothing
            return tracer.create_proxy("call_function", getattr(self, method.__name__), args, kwargs)
        return tracer.create_proxy("call_function", call_method, (self, method.__name__, *args), kwargs)

    return leaf  # type: ignore[return-value]

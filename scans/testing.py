"""Helpers for tests of scan orders and of code built on them (models, kernels' route mode)."""

from __future__ import annotations

from .base import ScanOrder
from .hilbert import Hilbert
from .registry import get, list_orders
from .windowed import Windowed
from .zigzag import Zigzag

# Registered orders whose default instance refuses some grids, built for the tests with arguments that accept all.
_ACCEPT_EVERY_GRID: dict[str, dict[str, object]] = {"windowed": {"pad_oversized_windows": True}}


def example_orders() -> list[ScanOrder]:
    """One instance of every registered order plus the non-default variants worth testing separately.

    Every order here is adjoint (merge = adjoint of scan) on every grid it accepts; the windowed orders pad oversized
    windows so that they accept every grid. A newly registered order is in the list with its default arguments.
    """
    return [get(name, **_ACCEPT_EVERY_GRID.get(name, {})) for name in list_orders()] + [
        Zigzag(paths=(5,)),
        Windowed(directions=("v", "w7_flip", "h_flip", "w3", "v_flip"), pad_oversized_windows=True),
        Hilbert.all_variants(),
    ]

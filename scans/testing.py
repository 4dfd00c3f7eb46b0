"""Helpers for tests of scan orders and of code built on them (models, kernels' route mode)."""

from __future__ import annotations

from .base import ScanOrder
from .cross import Cross
from .raster import Bidirectional, Raster


def example_orders() -> list[ScanOrder]:
    """One instance of every registered order plus the non-default variants worth testing separately."""
    return [
        Raster(),
        Bidirectional(),
        Cross(),
    ]

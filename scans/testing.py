"""Helpers for tests of scan orders and of code built on them (models, kernels' route mode)."""

from __future__ import annotations

from .atrous import Atrous
from .base import ScanOrder
from .cross import Cross
from .hilbert import Hilbert
from .raster import Bidirectional, Raster
from .windowed import Windowed
from .zigzag import Zigzag


def example_orders() -> list[ScanOrder]:
    """One instance of every registered order plus the non-default variants worth testing separately.

    Every order here is adjoint (merge = adjoint of scan) on every grid it accepts; the windowed orders pad oversized
    windows so that they accept every grid.
    """
    return [
        Raster(),
        Bidirectional(),
        Cross(),
        Zigzag(),
        Zigzag(paths=(5,)),
        Windowed(pad_oversized_windows=True),
        Windowed(directions=("v", "w7_flip", "h_flip", "w3", "v_flip"), pad_oversized_windows=True),
        Hilbert(),
        Hilbert.all_variants(),
        Atrous(),
    ]

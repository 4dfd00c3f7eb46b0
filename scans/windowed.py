"""`windowed`: LocalMamba's scan directions (`h`, `v`, `wK` and their flips), any subset per layer."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import numpy as np

from .base import ScanOrder
from .functional import PAD
from .raster import column_major, row_major
from .registry import register


class Axis(enum.Enum):
    """What a direction walks along: rows (`h`), columns (`v`) or K × K windows (`wK`)."""

    ROWS = "h"
    COLUMNS = "v"
    WINDOWS = "w"


class VReverse(enum.Enum):
    """How `merge` undoes a `v` / `v_flip` route.

    CORRECT: the true inverse (merge is the adjoint of scan).
    OFFICIAL: LocalMamba's `multi_reverse`, which reads the column-major sequence as an H × W raster and transposes
    it. That is the inverse only when H = W; on non-square grids it scrambles tokens (on 3 × 4, position r receives
    the output computed for token `0 5 10 4 9 3 8 2 7 1 6 11`). Use it to match official det/seg outputs.
    """

    CORRECT = "correct"
    OFFICIAL = "official"


_DIRECTION = re.compile(r"^(h|v|w([1-9][0-9]*))(_flip)?$")


@dataclass(frozen=True)
class Direction:
    """One LocalMamba direction. Parse LocalMamba's names with `Direction.parse("w7_flip")`; `str()` gives them back."""

    axis: Axis
    window: int | None = None
    flip: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.axis, Axis):
            raise TypeError(f"Direction.axis must be an Axis, got {self.axis!r}")
        if (self.axis is Axis.WINDOWS) != (self.window is not None):
            raise ValueError(f"a window size is required for Axis.WINDOWS and only for it, got {self.window!r}")
        if self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, int)):
            raise TypeError(f"window size must be an int, got {self.window!r}")
        if self.window is not None and self.window < 1:
            raise ValueError(f"window size must be >= 1, got {self.window}")

    @classmethod
    def parse(cls, name: str | Direction) -> Direction:
        """`h`, `h_flip`, `v`, `v_flip`, `wK`, `wK_flip` (K >= 1) -> Direction; a Direction is returned as is."""
        if isinstance(name, Direction):
            return name
        if not isinstance(name, str):
            raise TypeError(f"a direction is a name like 'w7_flip' or a Direction, got {type(name).__name__}")
        match = _DIRECTION.match(name)
        if match is None:
            raise ValueError(f"unknown direction {name!r}; expected h, v or wK (K >= 1), each optionally with _flip")
        axis = Axis.WINDOWS if match.group(2) else Axis(match.group(1))
        window = int(match.group(2)) if match.group(2) else None
        return cls(axis, window, match.group(3) is not None)

    def __str__(self) -> str:
        base = f"w{self.window}" if self.axis is Axis.WINDOWS else self.axis.value
        return base + ("_flip" if self.flip else "")


def window_major(height: int, width: int, window: int) -> np.ndarray:
    """K × K windows in row-major order, tokens row-major inside each; the grid is zero-padded at the bottom and right
    to a multiple of K, and the padding steps (`PAD`) stay in the sequence, as LocalMamba scans them."""
    rows, cols = -(-height // window) * window, -(-width // window) * window
    grid = np.full((rows, cols), PAD, dtype=np.int64)
    grid[:height, :width] = row_major(height, width).reshape(height, width)
    blocks = grid.reshape(rows // window, window, cols // window, window).transpose(0, 2, 1, 3)
    return blocks.ravel()


def _official_v_merge(height: int, width: int) -> np.ndarray:
    # LocalMamba reverses `v` with `'b d (h w) -> b d (w h)'`: step s = h·W + w lands on token w·H + h.
    steps = np.arange(height * width, dtype=np.int64)
    return (steps % width) * height + steps // width


@register("windowed")
@dataclass(frozen=True, repr=False)
class Windowed(ScanOrder):
    """LocalMamba's directions; one route per entry of `directions`, in the given order (= parameter slot k).

    * `h` raster, `v` column-major, `wK` window-major with bottom/right zero padding (pads are scanned);
      `*_flip` reverses the whole (padded) sequence.
    * Routes of different lengths are right-padded with `PAD` to the longest, as LocalVMamba pads before its one
      grouped scan; `route_lengths` gives each route's own length.
    * `v_reverse`: `VReverse.CORRECT` (default; merge is the adjoint) or `VReverse.OFFICIAL` (LocalMamba's reverse,
      wrong on non-square grids, needed to reproduce official non-square outputs).
    * A window larger than the grid in both dimensions makes `wK` a raster scan with padding, which is rarely what is
      meant, so it raises ValueError unless `pad_oversized_windows=True`. LocalMamba does pad that way (its `w7`
      on LocalVMamba's 4 × 4 and 2 × 2 stages at 64 px); its models set the flag.
    """

    directions: tuple[Direction | str, ...] = ("h", "h_flip", "w2", "w2_flip")
    v_reverse: VReverse = VReverse.CORRECT
    pad_oversized_windows: bool = False

    def __post_init__(self) -> None:
        directions = (self.directions,) if isinstance(self.directions, str | Direction) else tuple(self.directions)
        if not directions:
            raise ValueError("Windowed needs at least one direction, got none")
        object.__setattr__(self, "directions", tuple(Direction.parse(d) for d in directions))
        try:
            object.__setattr__(self, "v_reverse", VReverse(self.v_reverse))
        except ValueError:
            known = ", ".join(repr(v.value) for v in VReverse)
            raise ValueError(f"v_reverse must be one of {known}, got {self.v_reverse!r}") from None
        if not isinstance(self.pad_oversized_windows, bool):
            raise TypeError(f"pad_oversized_windows must be a bool, got {self.pad_oversized_windows!r}")

    @property
    def num_routes(self) -> int:
        return len(self.directions)

    def _check_windows(self, height: int, width: int) -> None:
        if self.pad_oversized_windows:
            return
        for direction in self.directions:
            if direction.window is not None and direction.window > height and direction.window > width:
                raise ValueError(
                    f"window {direction.window} of direction {str(direction)!r} is larger than the {height} x {width} "
                    f"grid in both dimensions (a raster scan with padding); use a window <= {max(height, width)} or "
                    "pad_oversized_windows=True to pad like LocalMamba"
                )

    def _base(self, direction: Direction, height: int, width: int) -> np.ndarray:
        if direction.axis is Axis.ROWS:
            return row_major(height, width)
        if direction.axis is Axis.COLUMNS:
            return column_major(height, width)
        assert direction.window is not None
        return window_major(height, width, direction.window)

    def build_routes(self, height: int, width: int) -> list[np.ndarray]:
        self._check_windows(height, width)
        routes = []
        for direction in self.directions:
            route = self._base(direction, height, width)
            routes.append(route[::-1].copy() if direction.flip else route)
        return routes

    def build_merge_routes(self, height: int, width: int) -> list[np.ndarray] | None:
        quirky = [d.axis is Axis.COLUMNS for d in self.directions]
        if self.v_reverse is VReverse.CORRECT or height == width or not any(quirky):
            return None
        routes = self.build_routes(height, width)
        official = _official_v_merge(height, width)
        for k, direction in enumerate(self.directions):
            if quirky[k]:
                routes[k] = official[::-1].copy() if direction.flip else official
        return routes

    def __repr__(self) -> str:
        names = ", ".join(repr(str(d)) for d in self.directions)
        return (
            f"Windowed(directions=({names}{',' if len(self.directions) == 1 else ''}), "
            f"v_reverse={self.v_reverse.value!r}, pad_oversized_windows={self.pad_oversized_windows})"
        )

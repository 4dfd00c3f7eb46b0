"""Multi-scale scans: routes over a map and over a downsampled copy of it, in one mixer (MSVMamba, Shi et al.,
"Multi-Scale VMamba: Hierarchy in Hierarchy Visual State Space Model", NeurIPS 2024)."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor

from .base import ScanOrder
from .raster import Raster
from .registry import get
from .tri_cross import TriCross


@dataclass(frozen=True)
class MultiScale:
    """`full`'s routes over the H × W map and `coarse`'s over its stride-`stride` copy (⌈H/s⌉ × ⌈W/s⌉, what a
    stride-s convolution padded by half its odd kernel gives), whose outputs are upsampled back to H × W.

    The coarse routes run one after the other as ONE sequence (`chain` / `unchain`): one parameter set, and the state
    carries over from the end of one route to the start of the next, as MSVMamba concatenates them. The downsampling
    is the model's own (MSVMamba: a learned 7 × 7 depthwise conv of stride 2); `upsample` is MSVMamba's bilinear
    interpolation (align_corners=False). MSVMamba's own: `raster` at full resolution, `tri_cross` at half.

    Orders may be given by registered name.
    """

    full: ScanOrder = field(default_factory=Raster)
    coarse: ScanOrder = field(default_factory=TriCross)
    stride: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "full", get(self.full))
        object.__setattr__(self, "coarse", get(self.coarse))
        if isinstance(self.stride, bool) or not isinstance(self.stride, int):
            raise TypeError(f"MultiScale.stride: expected an int >= 1, got {self.stride!r}")
        if self.stride < 1:
            raise ValueError(f"MultiScale.stride: expected an int >= 1, got {self.stride}")

    @property
    def num_parameter_sets(self) -> int:
        """1 for the chained coarse routes plus one per full-resolution route (MSVMamba's order: coarse first)."""
        return 1 + self.full.num_routes

    def coarse_size(self, height: int, width: int) -> tuple[int, int]:
        """The downsampled grid of an H × W map: (⌈H / stride⌉, ⌈W / stride⌉)."""
        return math.ceil(operator.index(height) / self.stride), math.ceil(operator.index(width) / self.stride)

    def chain(self, x: Tensor) -> Tensor:
        """x: (B, C, h, w) the downsampled map -> (B, C, K·L'): the coarse routes' visits back to back."""
        routes = self.coarse.scan(x)  # (B, K, C, L')
        batch, num_routes, channels, length = routes.shape
        return routes.transpose(1, 2).reshape(batch, channels, num_routes * length)

    def unchain(self, ys: Tensor, height: int, width: int) -> Tensor:
        """ys: (B, C, K·L') outputs along `chain`'s sequence -> (B, C, h, w): each route's part written back to its
        tokens, summed over the routes (the adjoint of `chain`)."""
        batch, channels, length = ys.shape
        routes = self.coarse.num_routes
        return self.coarse.merge(ys.view(batch, channels, routes, length // routes).transpose(1, 2), height, width)

    def upsample(self, y: Tensor, height: int, width: int) -> Tensor:
        """y: (B, C, h, w) -> (B, C, H, W), bilinear with align_corners=False."""
        return F.interpolate(y, size=(height, width), mode="bilinear", align_corners=False)

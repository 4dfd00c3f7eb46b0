"""Square, non-overlapping windows of a (B, C, H, W) map as token sequences, and back (MambaVision's hybrid stages).

The map is zero-padded at the bottom and right to a multiple of the window side w, with no mask: the padded tokens
are ordinary tokens of their windows for every block that runs on the windows. Windows are ordered batch -> window
row -> window column, and the tokens inside a window row-major (raster), as in Swin and MambaVision.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def padded_size(height: int, width: int, window: int) -> tuple[int, int]:
    """(Hp, Wp): H and W rounded up to multiples of `window`."""
    return height + (-height) % window, width + (-width) % window


def window_partition(x: Tensor, window: int) -> Tensor:
    """x: (B, C, H, W) -> (B·⌈H/w⌉·⌈W/w⌉, w·w, C), zero-padding H and W up to multiples of w first."""
    batch, channels, height, width = x.shape
    padded_h, padded_w = padded_size(height, width, window)
    if (padded_h, padded_w) != (height, width):
        x = F.pad(x, (0, padded_w - width, 0, padded_h - height))
    x = x.view(batch, channels, padded_h // window, window, padded_w // window, window)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(-1, window * window, channels)


def window_reverse(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """windows: (B·⌈H/w⌉·⌈W/w⌉, w·w, C) -> (B, C, H, W): the inverse of `window_partition`, padding cropped."""
    padded_h, padded_w = padded_size(height, width, window)
    rows, cols = padded_h // window, padded_w // window
    channels = windows.shape[-1]
    x = windows.reshape(-1, rows, cols, window, window, channels)
    x = x.permute(0, 5, 1, 3, 2, 4).reshape(-1, channels, padded_h, padded_w)
    if (padded_h, padded_w) != (height, width):
        x = x[:, :, :height, :width].contiguous()
    return x

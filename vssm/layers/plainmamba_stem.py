"""PlainMamba's convolutional patch embedding (`ConvPatchEmbed` in ChenhongyiYang/PlainMamba).

    x (B, C, H, W) -> 7×7 conv stride 2 (64 channels), BN, ReLU
      -> num_convs × [3×3 conv (64), BN, ReLU]
      -> zero padding at the bottom and right up to a multiple of p/2 (mmcv's "corner" adaptive padding)
      -> p/2 × p/2 conv stride p/2 to D channels -> tokens (B, H'·W', D), H' = ceil(ceil(H/2) / (p/2))

Any input size is taken (the padding makes every size fit), as in the original.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvPatchEmbed"]

STEM_CHANNELS = 64


def _conv_bn_relu(in_chans: int, kernel: int, stride: int, **dd: object) -> list[nn.Module]:
    conv = nn.Conv2d(in_chans, STEM_CHANNELS, kernel, stride, padding=kernel // 2, bias=False, **dd)
    return [conv, nn.BatchNorm2d(STEM_CHANNELS, **dd), nn.ReLU(inplace=True)]


class ConvPatchEmbed(nn.Module):
    """Module names are the original's (`stem`, `convs`, `projection`), so its checkpoints load unrenamed.

    Args:
        patch_size: total stride p (even): the stem's 2 times the projection's p/2.
        num_convs: 3×3 convs between the stem and the projection (PlainMamba-L1: 1, L2 / L3: 2).
    """

    def __init__(
        self,
        in_chans: int,
        embed_dim: int,
        patch_size: int = 16,
        num_convs: int = 1,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if patch_size % 2:
            raise ValueError(f"patch_size: PlainMamba's stem halves the input first, so an even size, got {patch_size}")
        dd = {"device": device, "dtype": dtype}
        self.patch_size = patch_size
        self.stem = nn.Sequential(*_conv_bn_relu(in_chans, 7, 2, **dd))
        self.convs = nn.Sequential(*(m for _ in range(num_convs) for m in _conv_bn_relu(STEM_CHANNELS, 3, 1, **dd))) \
            if num_convs > 0 else None
        self.projection = nn.Conv2d(STEM_CHANNELS, embed_dim, patch_size // 2, patch_size // 2, **dd)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """The token grid (H', W') of an H × W input."""
        step = self.patch_size // 2
        return -(-((height + 1) // 2) // step), -(-((width + 1) // 2) // step)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, D, H', W')."""
        x = self.stem(x)
        if self.convs is not None:
            x = self.convs(x)
        step = self.patch_size // 2
        x = F.pad(x, (0, -x.shape[-1] % step, 0, -x.shape[-2] % step))
        return self.projection(x)

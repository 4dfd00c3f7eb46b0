"""Patch embedding whose patches may overlap (kernel `patch_size`, stride `stride`), with checked input sizes.

timm's `PatchEmbed` has stride = patch size; Vim's stride-8 models use 16 × 16 patches every 8 pixels, giving a
(S - 16) / 8 + 1 grid. Bad input raises ValueError naming what was expected and what was given.
"""

from __future__ import annotations

import torch
from timm.layers import to_2tuple
from torch import Tensor, nn

from vssm.layers.fx import fx_leaf


class StridedPatchEmbed(nn.Module):
    """Conv2d(in_chans -> embed_dim, kernel `patch_size`, stride `stride`): (B, C, H, W) -> (B, H', W', D).

    Args:
        img_size: the input size the model is built for; with `strict_img_size` every input must have it.
        patch_size: kernel size; stride: step between patches (default: `patch_size`, no overlap).
        strict_img_size: refuse other sizes; otherwise any size with (S - patch) a multiple of the stride.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        stride: int | tuple[int, int] | None = None,
        in_chans: int = 3,
        embed_dim: int = 768,
        bias: bool = True,
        strict_img_size: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size = to_2tuple(patch_size)
        self.stride = to_2tuple(stride if stride is not None else patch_size)
        self.in_chans = in_chans
        self.strict_img_size = strict_img_size
        self.grid_size = self.feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(
            in_chans, embed_dim, self.patch_size, self.stride, bias=bias, device=device, dtype=dtype
        )

    def feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        """The token grid (H', W') of an input of `img_size`; ValueError if the patches do not tile it exactly."""
        grid = []
        for axis, size, patch, stride in zip(("height", "width"), img_size, self.patch_size, self.stride):
            if size < patch or (size - patch) % stride:
                raise ValueError(
                    f"input {axis} {size} does not fit the patch grid: expected {patch} + k·{stride} pixels "
                    f"(patch {patch}, stride {stride}), got {size}"
                )
            grid.append((size - patch) // stride + 1)
        return grid[0], grid[1]

    @fx_leaf
    def check_input(self, x: Tensor) -> Tensor:
        """x, an input batch (B, C, H, W) if it is valid (ValueError if not: shape, channels, size)."""
        if not isinstance(x, Tensor) or x.ndim != 4:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected images of shape (B, C, H, W), got {got}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"expected {self.in_chans} input channels, got {x.shape[1]} (input {tuple(x.shape)})")
        size = (x.shape[2], x.shape[3])
        if self.strict_img_size and size != self.img_size:
            raise ValueError(
                f"expected input size {self.img_size[0]}×{self.img_size[1]} (the model's img_size; build it with "
                f"dynamic_img_size=True for other sizes), got {size[0]}×{size[1]}"
            )
        self.feat_size(size)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C, H, W) -> (B, H', W', D)."""
        x = self.check_input(x)  # its result, so that traced graphs keep the check
        return self.proj(x).permute(0, 2, 3, 1)

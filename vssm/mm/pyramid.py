"""The multi-scale adapter of plain (single-stride) backbones: four token maps -> strides 4, 8, 16, 32.

Vim's segmentation backbone (hustvl/Vim `seg/backbone/vim.py`, BEiT's recipe) takes the maps of four blocks and
resamples them with transposed convs and max pooling, module names `fpn1`..`fpn4` (kept, so its checkpoints load):

    patch stride 16:  fpn1 = ConvT 2×2 -> norm -> GELU -> ConvT 2×2 (×4),  fpn2 = ConvT 2×2 (×2),  fpn3 = identity,
                      fpn4 = max pool 2 (÷2)
    patch stride 8:   fpn1 = ConvT 2×2 (×2),  fpn2 = identity,  fpn3 = max pool 2,  fpn4 = max pool 4
"""

from __future__ import annotations

from mmcv.cnn import build_norm_layer
from torch import nn

__all__ = ["PYRAMID_STRIDES", "simple_pyramid"]

PYRAMID_STRIDES = (4, 8, 16, 32)


def simple_pyramid(dim: int, patch_stride: int, norm_cfg: dict) -> list[nn.Module]:
    """The four resampling branches (fpn1..fpn4) for maps of `dim` channels at `patch_stride`; `norm_cfg` is the
    mmcv norm between fpn1's transposed convs (the original: SyncBN)."""
    if patch_stride == 16:
        return [
            nn.Sequential(
                nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
                build_norm_layer(norm_cfg, dim)[1],
                nn.GELU(),
                nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
            ),
            nn.Sequential(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)),
            nn.Identity(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        ]
    if patch_stride == 8:
        return [
            nn.Sequential(nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)),
            nn.Identity(),
            nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2)),
            nn.Sequential(nn.MaxPool2d(kernel_size=4, stride=4)),
        ]
    raise ValueError(f"the multi-scale adapter needs a patch stride of 16 or 8 (to reach strides {PYRAMID_STRIDES}), "
                     f"got {patch_stride}")

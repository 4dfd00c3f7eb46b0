"""A residual block of two convolutions with instance norm, for 2D and 3D maps (nnU-Net's residual encoders).

    y = LReLU(IN(conv_k,stride(x)));  y = IN(conv_k(y));  return LReLU(drop_path(y) + skip(x))
    skip = 1×1 conv with the same stride when `project`, else identity

This is both of U-Mamba's blocks: its `BasicResBlock` (always projected) and dynamic_network_architectures'
`BasicBlockD` at stride 1 with equal widths (identity skip). Convolutions carry a bias and pad k // 2, so odd kernels
keep the size (nnU-Net plans only use odd kernels: 1 or 3 per axis).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import DropPath
from torch import Tensor, nn

from vssm.layers.fx import fx_leaf

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}


class _AnyBatchInstanceNorm:
    """torch's instance norm fails on an empty batch (torch 2.14: IndexError from `select`, it reads the first
    sample): an empty batch stays an empty batch, any other goes through the norm."""

    @fx_leaf  # decides by the batch size
    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] == 0:
            return x.clone()
        return super().forward(x)


class InstanceNorm2d(_AnyBatchInstanceNorm, nn.InstanceNorm2d):
    """nn.InstanceNorm2d that also takes an empty batch."""


class InstanceNorm3d(_AnyBatchInstanceNorm, nn.InstanceNorm3d):
    """nn.InstanceNorm3d that also takes an empty batch."""


_INSTANCE_NORM = {2: InstanceNorm2d, 3: InstanceNorm3d}


def conv_nd(ndim: int) -> type[nn.Module]:
    """nn.Conv2d or nn.Conv3d."""
    if ndim not in _CONV:
        raise ValueError(f"expected a 2D or 3D network (ndim 2 or 3), got ndim={ndim!r}")
    return _CONV[ndim]


def _as_tuple(value: int | Sequence[int], ndim: int, what: str) -> tuple[int, ...]:
    values = (value,) * ndim if isinstance(value, int) else tuple(value)
    if len(values) != ndim or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"{what}: expected {ndim} positive ints, got {value!r}")
    return values


class ResidualConvBlock(nn.Module):
    """Two k×k(×k) convolutions with instance norm and LeakyReLU, plus a skip.

    Args:
        in_chs, out_chs: channels in and out.
        kernel_size: odd kernel size per axis (or one int).
        stride: stride of the first conv (and of the projected skip).
        project: skip through a 1×1 conv (with the stride); without it the block needs in_chs == out_chs, stride 1.
        ndim: 2 or 3 spatial dimensions.
        negative_slope, eps: LeakyReLU slope and InstanceNorm epsilon (nnU-Net: 0.01, 1e-5).
        drop_path: stochastic-depth rate of the residual branch (U-Mamba: 0).

    x: (B, in_chs, *S) -> (B, out_chs, *(S / stride)).
    """

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        project: bool = False,
        ndim: int = 2,
        negative_slope: float = 0.01,
        eps: float = 1e-5,
        drop_path: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        conv = conv_nd(ndim)
        kernel = _as_tuple(kernel_size, ndim, "kernel_size")
        stride = _as_tuple(stride, ndim, "stride")
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f"kernel_size: expected odd sizes (padding k // 2 keeps the map size), got {kernel}")
        if not project and (in_chs != out_chs or any(s != 1 for s in stride)):
            raise ValueError(
                f"an identity skip needs in_chs == out_chs and stride 1, got {in_chs} -> {out_chs}, stride {stride}; "
                "use project=True"
            )
        dd = {"device": device, "dtype": dtype}
        padding = tuple(k // 2 for k in kernel)
        norm = _INSTANCE_NORM[ndim]
        self.conv1 = conv(in_chs, out_chs, kernel, stride=stride, padding=padding, **dd)
        self.norm1 = norm(out_chs, eps=eps, affine=True, **dd)
        self.conv2 = conv(out_chs, out_chs, kernel, padding=padding, **dd)
        self.norm2 = norm(out_chs, eps=eps, affine=True, **dd)
        self.skip_conv = conv(in_chs, out_chs, 1, stride=stride, **dd) if project else None
        self.strided = any(s != 1 for s in stride)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.drop_path(self.norm2(self.conv2(y)))
        skip = x if self.skip_conv is None else self.project_skip(x)
        return self.act(y + skip)

    @fx_leaf  # decides by the input's device
    def project_skip(self, x: Tensor) -> Tensor:
        if self.strided and x.device.type == "cpu":
            # torch 2.14's oneDNN backward of a strided 1×1 conv crashes (SIGSEGV) on a channels-last CPU input.
            return self.skip_conv(x.contiguous())
        return self.skip_conv(x)

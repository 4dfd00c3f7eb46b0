"""2-D rotary position embedding of a token grid (EVA-02's `VisionRotaryEmbeddingFast`, used by LocalVim).

For a token at row i, column j of an H × W grid and D channels: frequencies f_m = 10000^(-4m/D), m < D/4, each used
for two consecutive channels; channels [0, D/2) turn by angle t_i · f_m and channels [D/2, D) by t_j · f_m, with the
positions scaled to a reference grid, t_i = i · H_ref / H (the original trains at 14 × 14 and builds its tables for
the model's grid on that scale). Then x <- x ⊙ cos θ + rot(x) ⊙ sin θ, rot mapping each pair (a, b) to (-b, a).

The tables are built with timm's `build_rotary_pos_embed` (equal to the original's bit for bit) and kept as
persistent buffers `freqs_cos` / `freqs_sin` (H·W, D), as in LocalVim's checkpoints. For another grid the stored
tables are resized bicubically (align_corners=False, no antialiasing), as LocalVim's detection and segmentation
backbones do, rather than rebuilt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import apply_rot_embed, build_rotary_pos_embed
from torch import Tensor, nn

from vssm.layers.fx import fx_leaf


class VisionRope(nn.Module):
    """Rotary position embedding for the H·W tokens of a grid (raster order, no class token).

    Args:
        dim: D, the token width (a multiple of 4).
        grid: (H, W), the grid the tables are built for.
        ref_grid: the grid the position scale refers to (LocalVim: 14 × 14, its 224-pixel training grid).
        temperature: the frequency base (10000).
    """

    def __init__(
        self,
        dim: int,
        grid: tuple[int, int],
        ref_grid: tuple[int, int] = (14, 14),
        temperature: float = 10000.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim % 4:
            raise ValueError(f"VisionRope: the token width must be a multiple of 4 (2 axes x pairs), got {dim}")
        self.grid = (int(grid[0]), int(grid[1]))
        self.ref_grid = (int(ref_grid[0]), int(ref_grid[1]))
        sin, cos = build_rotary_pos_embed(
            list(self.grid), dim=dim, temperature=temperature, in_pixels=False, ref_feat_shape=list(self.ref_grid),
            device=device,
        )
        self.register_buffer("freqs_cos", cos.to(dtype or torch.float32))
        self.register_buffer("freqs_sin", sin.to(dtype or torch.float32))

    @fx_leaf  # built for the grid
    def tables(self, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """(cos, sin), each (H·W, D), for a grid: the stored tables, or them resized bicubically to another grid."""
        grid = (int(grid[0]), int(grid[1]))
        if grid == self.grid:
            return self.freqs_cos, self.freqs_sin
        return self._resize(self.freqs_cos, grid), self._resize(self.freqs_sin, grid)

    def _resize(self, table: Tensor, grid: tuple[int, int]) -> Tensor:
        height, width = self.grid
        image = table.reshape(1, height, width, -1).permute(0, 3, 1, 2)
        image = F.interpolate(image, size=grid, mode="bicubic", align_corners=False)
        return image.flatten(2).transpose(1, 2)[0]

    @fx_leaf  # picks its kernel by the input's dtype and layout
    def forward(self, x: Tensor, tables: tuple[Tensor, Tensor]) -> Tensor:
        """x: (B, H·W, D) -> rotated, same shape and dtype; `tables` from `tables(grid)`."""
        cos, sin = tables
        if x.dtype in (torch.float32, torch.float64) and x.dtype == cos.dtype and x.is_contiguous():
            # Each channel pair (a, b) turned by its angle is one complex product (a + ib)·e^{iθ}: one elementwise op
            # instead of timm's five (LocalVim-T applies RoPE 40 times per image; each op costs a thread wake-up).
            turn = torch.complex(cos[:, 0::2], sin[:, 0::2])  # (H·W, D/2): the pair's two channels share θ
            pairs = torch.view_as_complex(x.view(*x.shape[:-1], x.shape[-1] // 2, 2))
            return torch.view_as_real(pairs * turn).view(x.shape)
        return apply_rot_embed(x, sin, cos)

    def extra_repr(self) -> str:
        return f"grid={self.grid}, ref_grid={self.ref_grid}"

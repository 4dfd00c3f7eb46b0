"""Absolute position embeddings of a grid whose sequence carries a class token at any index (Vim: the middle).

The table is (1, M + 1, D) with the class token's entry at index p = M // 2 of the M = H·W grid entries in raster
order. Resampling to another grid keeps the class entry and interpolates the grid entries (timm's
`resample_abs_pos_embed`), then puts the class entry back at the new grid's middle. Treating index 0 as the class slot
instead (timm's default, and Vim's own fine-tune script) mixes one grid entry into the class slot and shifts the grid.
"""

from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed
from torch import Tensor


def insert_token(tokens: Tensor, token: Tensor, index: int) -> Tensor:
    """tokens: (B, M, D), token: (B, 1, D) -> (B, M + 1, D) with `token` at `index`."""
    return torch.cat([tokens[:, :index], token, tokens[:, index:]], dim=1)


def remove_token(tokens: Tensor, index: int) -> tuple[Tensor, Tensor]:
    """tokens: (B, M + 1, D) -> (the M others (B, M, D), the token at `index` (B, 1, D))."""
    return torch.cat([tokens[:, :index], tokens[:, index + 1:]], dim=1), tokens[:, index:index + 1]


def middle_index(num_grid_tokens: int) -> int:
    """p = M // 2, where Vim puts its class token among M grid tokens."""
    return num_grid_tokens // 2


def resample_pos_embed_with_middle_token(
    pos_embed: Tensor,
    new_size: tuple[int, int],
    old_size: tuple[int, int],
    class_token: bool = True,
    interpolation: str = "bicubic",
    antialias: bool = True,
) -> Tensor:
    """pos_embed: (1, old H·W [+ 1], D) -> (1, new H·W [+ 1], D); the class entry (at the middle) is kept as is."""
    num_grid = old_size[0] * old_size[1]
    expected = num_grid + int(class_token)
    if pos_embed.ndim != 3 or pos_embed.shape[1] != expected:
        raise ValueError(
            f"pos_embed: expected shape (1, {expected}, D) for a {old_size[0]}×{old_size[1]} grid"
            f"{' and a class token' if class_token else ''}, got {tuple(pos_embed.shape)}"
        )
    if tuple(new_size) == tuple(old_size):
        return pos_embed
    grid, cls = remove_token(pos_embed, middle_index(num_grid)) if class_token else (pos_embed, None)
    grid = resample_abs_pos_embed(
        grid, list(new_size), list(old_size), num_prefix_tokens=0, interpolation=interpolation, antialias=antialias
    )
    return grid if cls is None else insert_token(grid, cls, middle_index(new_size[0] * new_size[1]))

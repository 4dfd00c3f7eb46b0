"""A stage of a hierarchical backbone: its blocks, then the downsampling to the next stage."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.models import checkpoint_seq
from torch import nn


class Stage(nn.Module):
    """Blocks on the stage's map, then `downsample` (identity after the last stage). Keys: `blocks.{i}.*`,
    `downsample.*`.

    `forward_blocks(x)` is the map before the downsample (what dense backbones take, at the stage's stride);
    `forward(x)` the next stage's input. Subclasses that run the blocks on something other than the map (windows)
    override `forward_blocks` and run the blocks with `run_blocks`.
    """

    def __init__(self, blocks: Sequence[nn.Module], downsample: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.downsample = downsample
        self.grad_checkpointing = False

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks in sequence (each one checkpointed with `grad_checkpointing`)."""
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.forward_blocks(x))

"""mamba_ssm's fused residual add + norm (`layer_norm_fn` / `rms_norm_fn` with `prenorm=True`) in plain PyTorch.

Mamba-style blocks run Add -> Norm -> Mixer and hand both the mixer output and the residual stream to the next
block, so the add and the norm can be fused. The semantics kept here: the sum and the norm are computed in float32
(float64 stays float64), the residual stream is kept in float32 when `residual_in_fp32`, and the normalised output
comes back in the dtype of the incoming hidden states.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import RmsNorm
from torch import Tensor, nn


def _norm_in(norm: nn.Module, x: Tensor) -> Tensor:
    """norm(x) with the norm's affine parameters cast to x's dtype (float32 math for low-precision weights)."""
    if isinstance(norm, RmsNorm):
        weight = None if norm.weight is None else norm.weight.to(x.dtype)
        return F.rms_norm(x, norm.normalized_shape, weight, norm.eps)
    if isinstance(norm, nn.LayerNorm):
        weight = None if norm.weight is None else norm.weight.to(x.dtype)
        bias = None if norm.bias is None else norm.bias.to(x.dtype)
        return F.layer_norm(x, norm.normalized_shape, weight, bias, norm.eps)
    return norm(x)


def add_and_norm(
    hidden: Tensor, residual: Tensor | None, norm: nn.Module, residual_in_fp32: bool = True
) -> tuple[Tensor, Tensor]:
    """residual <- hidden (first block) or residual + hidden;  returns (norm(residual) in hidden's dtype, residual).

    hidden: (B, L, D) the previous mixer's output (drop-path already applied by the caller);
    residual: (B, L, D) the stream so far, or None before the first block.
    """
    compute = torch.promote_types(hidden.dtype, torch.float32)
    residual = hidden.to(compute) if residual is None else residual.to(compute) + hidden.to(compute)
    normed = _norm_in(norm, residual).to(hidden.dtype)
    if not residual_in_fp32:
        residual = residual.to(hidden.dtype)
    return normed, residual

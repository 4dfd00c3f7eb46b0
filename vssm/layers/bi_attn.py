"""LocalMamba's per-direction channel attention (`BiAttn`): one sigmoid gate per (direction, channel).

Each scan direction's output is gated on its own, from the mean over tokens of its layer-normalised features, before
the directions are summed (Huang et al., "LocalMamba", arXiv:2403.09338, the channel branch of SCAttn):

    n = LN_E(y_k) ;  g = GELU(W_r · mean_tokens(n) + b_r)  (E -> ⌊E/8⌋) ;  c = σ(W_s · g + b_s)  (-> E) ;  y_k ⊙ c

One module is shared by all directions of a mixer. State-dict keys follow the original: `norm`, `global_reduce`,
`channel_select`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BiAttn(nn.Module):
    """Channel gate of each route's output.

    Args:
        channels: E, the width of the routes' outputs.
        act_ratio: hidden width of the gate as a fraction of E (LocalMamba: 1/8, floored).
        act_layer, gate_layer: hidden activation and gate (LocalMamba: GELU, sigmoid).
        eps: epsilon of the LayerNorm.

    forward(y): y (B, K, E, L) per-route outputs in token order -> (B, K, E, L), route k scaled per channel by its gate.
    """

    def __init__(
        self,
        channels: int,
        act_ratio: float = 0.125,
        act_layer: type[nn.Module] = nn.GELU,
        gate_layer: type[nn.Module] = nn.Sigmoid,
        eps: float = 1e-5,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        reduced = int(channels * act_ratio)
        if reduced < 1:
            raise ValueError(f"BiAttn: channels * act_ratio must be >= 1, got {channels} * {act_ratio}")
        self.norm = nn.LayerNorm(channels, eps=eps, **dd)
        self.global_reduce = nn.Linear(channels, reduced, **dd)
        self.act = act_layer()
        self.channel_select = nn.Linear(reduced, channels, **dd)
        self.gate = gate_layer()

    def forward(self, y: Tensor) -> Tensor:
        if y.ndim != 4 or y.shape[2] != self.norm.normalized_shape[0]:
            raise ValueError(
                f"BiAttn expects per-route outputs (B, K, E={self.norm.normalized_shape[0]}, L), got {tuple(y.shape)}"
            )
        # The gate is computed in the parameters' dtype (the scan hands float32 outputs to a bf16 model).
        pooled = self.norm(y.transpose(-1, -2).to(self.norm.weight.dtype)).mean(dim=-2)  # (B, K, E)
        gate = self.gate(self.channel_select(self.act(self.global_reduce(pooled))))
        return y * gate.unsqueeze(-1).to(y.dtype)

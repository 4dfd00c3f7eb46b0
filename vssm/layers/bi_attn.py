"""LocalMamba's per-direction channel attention (`BiAttn`): one sigmoid gate per (direction, channel).

Each scan direction's output is gated on its own, from the mean over tokens of its layer-normalised features, before
the directions are summed (Huang et al., "LocalMamba", arXiv:2403.09338, the channel branch of SCAttn):

    n = LN_E(y_k) ;  g = GELU(W_r · mean_tokens(n) + b_r)  (E -> ⌊E/8⌋) ;  c = σ(W_s · g + b_s)  (-> E) ;  y_k ⊙ c

One module is shared by all directions of a mixer. State-dict keys follow the original: `norm`, `global_reduce`,
`channel_select`.

The token mean of the normalised features needs only each token's mean and variance over E, so it is computed in
the routes' own layout without transposing (B, K, E, L) and in any token order: mean_l LN(y)_l = w ⊙ (Σ_l y_l r_l -
Σ_l μ_l r_l) / L + b with r = 1/σ. An all-zero token (a padding step) adds exactly 0 to both sums, so routes with
padding steps give the gates of their tokens when divided by the number of real tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

# Elements of one slice of y whose squares are summed at a time (1 MiB of float32: stays in L2).
_SLICE_ELEMENTS = 1 << 18


def _slice_squares(flat: Tensor, per_slice: int) -> Iterator[Tensor]:
    """flat: (M, E, L) -> the squares of flat[i : i + per_slice] in turn. Without autograd recording they are written
    into one buffer: glibc maps a fresh 2.4 MB square afresh for every slice and page-faults it (1.4 ms per slice at
    LocalVMamba-T's first stage, 0.14 ms into a warm buffer)."""
    if torch.is_grad_enabled() and flat.requires_grad:
        yield from (part.square() for part in flat.split(per_slice))
        return
    buffer = flat.new_empty(min(per_slice, flat.shape[0]), *flat.shape[1:])
    for part in flat.split(per_slice):
        yield torch.square(part, out=buffer[: part.shape[0]])


class BiAttn(nn.Module):
    """Channel gate of each route's output.

    Args:
        channels: E, the width of the routes' outputs.
        act_ratio: hidden width of the gate as a fraction of E (LocalMamba: 1/8, floored).
        act_layer, gate_layer: hidden activation and gate (LocalMamba: GELU, sigmoid).
        eps: epsilon of the LayerNorm.

    forward(y, num_tokens): y (B, K, E, L') per-route outputs in any token order, zero at padding steps ->
    y scaled per route and channel by its gates; `num_tokens`: the real tokens among the L' steps (default L').
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

    def gates(self, y: Tensor, num_tokens: int | None = None) -> Tensor:
        """y: (B, K, E, L') -> (B, K, E) gates; `num_tokens`: the real tokens among the L' steps (default L')."""
        channels = self.norm.normalized_shape[0]
        if y.ndim != 4 or y.shape[2] != channels:
            raise ValueError(f"BiAttn expects per-route outputs (B, K, E={channels}, L), got {tuple(y.shape)}")
        # Statistics in the parameters' dtype (the scan hands float32 outputs to a bf16 model), in passes over y that
        # reduce without transposing it. Sums over E as products with a ones vector: 20x faster on CPU than
        # `var_mean` over dim 2 (1.9 vs 39 ms, LocalVim-T layer). Sums of squares slice by slice: `vector_norm`
        # over dim 2 took 19 ms at LocalVMamba-T's first stage (8, 4, 192, 3136), the slices 4.5 ms.
        y = y.to(self.norm.weight.dtype)
        batch, routes, _, steps = y.shape
        ones = y.new_ones(1, channels)
        mean = torch.matmul(ones, y) / channels  # (B, K, 1, L')
        # One pass off the CPU and when traced: the slices are the CPU's L2 and allocator at work; on CUDA they are a
        # pow and a sum launch each (~7,000 per LocalVMamba-T forward at batch 128, 250 of its 337 ms predicted by
        # `vssm.analysis.roofline`), and slicing a symbolic batch would fix it in a traced graph.
        if y.device.type != "cpu" or torch.compiler.is_compiling():
            squares = y.flatten(0, 1).square().sum(dim=1)
        else:
            per_slice = max(1, _SLICE_ELEMENTS // (channels * steps))
            squares = torch.cat([square.sum(dim=1) for square in _slice_squares(y.flatten(0, 1), per_slice)])
        var = (squares.view(batch, routes, 1, steps) / channels - mean * mean).clamp_(min=0)
        rstd = torch.rsqrt(var + self.norm.eps)
        # sum_l y_l r_l as r (1 x L') @ y^T: a row times the transposed view runs 4x faster than y @ r^T.
        weighted = torch.matmul(rstd, y.transpose(-1, -2)).squeeze(-2)  # (B, K, E)
        centred = weighted - (mean * rstd).sum(dim=-1)
        pooled = torch.addcmul(self.norm.bias, centred / (num_tokens or y.shape[-1]), self.norm.weight)
        return self.gate(self.channel_select(self.act(self.global_reduce(pooled))))

    def forward(self, y: Tensor, num_tokens: int | None = None) -> Tensor:
        """y: (B, K, E, L') -> y gated. Without autograd recording y (inference) y is scaled in place: it is the
        mixer's fresh scan output, and a second (B, K, E, L') tensor costs more than the multiply itself."""
        gates = self.gates(y, num_tokens).unsqueeze(-1).to(y.dtype)
        if torch.is_grad_enabled() and y.requires_grad:
            return y * gates
        return y.mul_(gates)

"""Vim written directly from the spec (shared/specs/vim.md §2 and §4), independent of vssm's layers and of kernels/.

Used by the Vim tests as a second, slow, float64-capable implementation: it reads an official-format state dict
(the keys of §4), flips sequences with `torch.flip` and runs the selective-scan recurrence in a Python loop, exactly
as the formulas of §2 are written. Nothing here imports vssm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

D_STATE = 16
D_CONV = 4


def official_shapes(
    embed_dim: int, depth: int, num_tokens: int, num_classes: int = 1000, patch: int = 16, in_chans: int = 3
) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of an official Vim checkpoint's `['model']` (spec §4): 17·depth + 7 tensors."""
    inner, rank = 2 * embed_dim, math.ceil(embed_dim / 16)
    shapes: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (embed_dim, in_chans, patch, patch),
        "patch_embed.proj.bias": (embed_dim,),
        "cls_token": (1, 1, embed_dim),
        "pos_embed": (1, num_tokens, embed_dim),
    }
    for i in range(depth):
        p = f"layers.{i}."
        shapes[p + "norm.weight"] = (embed_dim,)
        shapes[p + "mixer.in_proj.weight"] = (2 * inner, embed_dim)
        for sfx, a_log, d in (("", "A_log", "D"), ("_b", "A_b_log", "D_b")):
            shapes[p + f"mixer.conv1d{sfx}.weight"] = (inner, 1, D_CONV)
            shapes[p + f"mixer.conv1d{sfx}.bias"] = (inner,)
            shapes[p + f"mixer.x_proj{sfx}.weight"] = (rank + 2 * D_STATE, inner)
            shapes[p + f"mixer.dt_proj{sfx}.weight"] = (inner, rank)
            shapes[p + f"mixer.dt_proj{sfx}.bias"] = (inner,)
            shapes[p + f"mixer.{a_log}"] = (inner, D_STATE)
            shapes[p + f"mixer.{d}"] = (inner,)
        shapes[p + "mixer.out_proj.weight"] = (embed_dim, inner)
    shapes["norm_f.weight"] = (embed_dim,)
    shapes["head.weight"] = (num_classes, embed_dim)
    shapes["head.bias"] = (num_classes,)
    return shapes


def random_official_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, Tensor]:
    """Random values of sensible scale for every key (A_log around log(1..16), D around 1, weights ~ 1/sqrt(fan_in))."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        t = torch.randn(shape, generator=gen)
        if key.endswith(("A_log", "A_b_log")):
            t = torch.log(torch.arange(1, shape[1] + 1, dtype=torch.float32)).expand(shape) + 0.5 * t
        elif key.endswith(("mixer.D", "mixer.D_b", "norm.weight", "norm_f.weight")):
            t = 1.0 + 0.2 * t
        elif len(shape) >= 2 and key not in ("cls_token", "pos_embed"):
            t = t / math.sqrt(math.prod(shape[1:]))
        else:
            t = 0.2 * t
        state[key] = t.contiguous()
    return state


def _rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def _branch(x: Tensor, z: Tensor, sd: dict[str, Tensor], p: str, sfx: str, a_log: str, d: str) -> Tensor:
    """Branch(x, z; θ) of spec §2. x, z: (B, L, E) -> (B, L, E)."""
    batch, length, inner = x.shape
    w = sd[p + f"conv1d{sfx}.weight"][:, 0]  # (E, 4)
    xc = sd[p + f"conv1d{sfx}.bias"].expand(batch, length, inner).clone()
    for j in range(D_CONV):
        shift = D_CONV - 1 - j  # x[t - 3 + j]
        shifted = F.pad(x, (0, 0, shift, 0))[:, :length]
        xc = xc + w[:, j] * shifted
    xc = F.silu(xc)
    x_dbl = xc @ sd[p + f"x_proj{sfx}.weight"].T
    rank = sd[p + f"dt_proj{sfx}.weight"].shape[1]
    rho, b, c = x_dbl[..., :rank], x_dbl[..., rank:rank + D_STATE], x_dbl[..., rank + D_STATE:]
    delta = F.softplus(rho @ sd[p + f"dt_proj{sfx}.weight"].T + sd[p + f"dt_proj{sfx}.bias"])
    a = -torch.exp(sd[p + a_log])  # (E, N)
    h = x.new_zeros(batch, inner, D_STATE)
    ys = []
    for t in range(length):
        h = torch.exp(delta[:, t, :, None] * a) * h + (delta[:, t, :, None] * xc[:, t, :, None]) * b[:, t, None, :]
        ys.append((h * c[:, t, None, :]).sum(-1))
    y = torch.stack(ys, dim=1) + sd[p + d] * xc
    return y * F.silu(z)


def mixer(x: Tensor, sd: dict[str, Tensor], p: str) -> Tensor:
    """Mixer(x̂) of spec §2 with the parameters under prefix `p` (e.g. 'layers.0.mixer.'). x: (B, L, D)."""
    xz = x @ sd[p + "in_proj.weight"].T
    xi, z = xz.chunk(2, dim=-1)
    y_f = _branch(xi, z, sd, p, "", "A_log", "D")
    y_b = _branch(xi.flip(1), z.flip(1), sd, p, "_b", "A_b_log", "D_b")
    return ((y_f + y_b.flip(1)) / 2) @ sd[p + "out_proj.weight"].T


def forward(sd: dict[str, Tensor], images: Tensor, stride: int = 16) -> Tensor:
    """Logits of spec §2 for an official-format state dict. images: (B, 3, H, W) -> (B, num_classes)."""
    tokens = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=stride)
    tokens = tokens.flatten(2).transpose(1, 2)  # row-major (B, M, D)
    c = tokens.shape[1] // 2
    cls = sd["cls_token"].expand(tokens.shape[0], -1, -1)
    h = torch.cat([tokens[:, :c], cls, tokens[:, c:]], dim=1) + sd["pos_embed"]
    depth = len({k.split(".")[1] for k in sd if k.startswith("layers.")})
    r = None
    for i in range(depth):
        r = h if r is None else r + h
        h = mixer(_rms_norm(r, sd[f"layers.{i}.norm.weight"]), sd, f"layers.{i}.mixer.")
    f = _rms_norm(r + h, sd["norm_f.weight"])
    return f[:, c] @ sd["head.weight"].T + sd["head.bias"]

"""An independent reference of LocalMamba's mixers, written from the spec (localmamba.md §3-§4, scans.md §5).

Direction sequences are built here by hand (not by `scans`), each direction is scanned on its own, and the original's
glue is followed step by step: scan x and z together (LocalVim), take the middle class token out and put it back at
step p of every direction, crop pads, undo the direction (with the original's `v` reverse quirk or the true inverse),
gate every direction by BiAttn, sum. The selective scan is `kernels.selective_scan_ref` (the sequential ground truth).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vssm.kernels import selective_scan_ref

PAD = -1


def sequence(name: str, height: int, width: int) -> list[int]:
    """Token indices (row-major) visited by LocalMamba direction `name` on an H × W grid; PAD for padding steps."""
    flip = name.endswith("_flip")
    base = name.removesuffix("_flip")
    if base == "h":
        order = [i * width + j for i in range(height) for j in range(width)]
    elif base == "v":
        order = [i * width + j for j in range(width) for i in range(height)]
    else:
        k = int(base[1:])
        rows, cols = -(-height // k) * k, -(-width // k) * k
        order = []
        for window_row in range(rows // k):
            for window_col in range(cols // k):
                for i in range(window_row * k, window_row * k + k):
                    for j in range(window_col * k, window_col * k + k):
                        order.append(i * width + j if i < height and j < width else PAD)
    return order[::-1] if flip else order


def gather(x: Tensor, order: list[int]) -> Tensor:
    """x: (B, C, L) -> (B, C, len(order)), zeros at PAD."""
    padded = F.pad(x, (0, 1))
    index = torch.tensor([len(padded[0, 0]) - 1 if t == PAD else t for t in order])
    return padded[..., index]


def reverse(y: Tensor, name: str, height: int, width: int, official_v: bool) -> Tensor:
    """y: (B, C, L_k) outputs in visit order -> (B, C, H·W) in token order (pads dropped)."""
    if name.startswith("v") and official_v:
        # The original: un-flip, then 'b d (h w) -> b d (w h)' (the inverse of the column scan only when H == W).
        y = y.flip(-1) if name.endswith("_flip") else y
        return y.reshape(*y.shape[:-1], height, width).transpose(-1, -2).reshape(*y.shape[:-1], height * width)
    order = sequence(name, height, width)
    out = y.new_zeros(*y.shape[:-1], height * width)
    keep = [s for s, t in enumerate(order) if t != PAD]
    out[..., [order[s] for s in keep]] = y[..., keep]
    return out


def bi_attn(attn: torch.nn.Module, y: Tensor) -> Tensor:
    """y: (B, L, E) -> y ⊙ σ(W_s GELU(W_r mean_L(LN(y)) + b_r) + b_s)."""
    n = F.layer_norm(y, y.shape[-1:], attn.norm.weight, attn.norm.bias, attn.norm.eps)
    g = F.gelu(F.linear(n.mean(dim=1), attn.global_reduce.weight, attn.global_reduce.bias))
    return y * torch.sigmoid(F.linear(g, attn.channel_select.weight, attn.channel_select.bias)).unsqueeze(1)


def local_vim_mixer(
    mixer: torch.nn.Module, x: Tensor, grid: tuple[int, int], directions: list[str], class_token: bool,
    official_v: bool = True,
) -> Tensor:
    """LocalVim's MultiMamba (spec §3) on x: (B, L, D) with L = H·W (+ 1 middle class token)."""
    height, width = grid
    inner = mixer.d_inner
    sd = mixer.state_dict()  # the original's per-direction names
    xz = F.linear(x, mixer.in_proj.weight).transpose(1, 2)  # (B, 2E, L): x and z scanned together
    if class_token:
        p = (xz.shape[-1] - 1) // 2
        cls, xz = xz[..., p : p + 1], torch.cat([xz[..., :p], xz[..., p + 1 :]], dim=-1)
    outs = []
    for k, name in enumerate(directions):
        s = gather(xz, sequence(name, height, width))
        if class_token:
            s = torch.cat([s[..., :p], cls, s[..., p:]], dim=-1)
        xs, zs = s[:, :inner], s[:, inner:]
        weight, bias = sd[f"conv1d_{k}.weight"], sd[f"conv1d_{k}.bias"]
        u = F.silu(F.conv1d(xs, weight, bias, padding=weight.shape[-1] - 1, groups=inner)
                   [..., : xs.shape[-1]])  # fmt: skip
        x_dbl = F.linear(u.transpose(1, 2), sd[f"x_proj_{k}.weight"])
        dt, b, c = x_dbl.split([mixer.dt_rank, mixer.d_state, mixer.d_state], dim=-1)
        delta = F.linear(dt, sd[f"dt_proj_{k}.weight"]).transpose(1, 2)
        y = selective_scan_ref(
            u, delta, -torch.exp(sd[f"A_log_{k}"]), b.transpose(1, 2), c.transpose(1, 2),
            sd[f"D_{k}"], z=zs, delta_bias=sd[f"dt_proj_{k}.bias"], delta_softplus=True,
        )
        if class_token:
            y_cls, y = y[..., p : p + 1], torch.cat([y[..., :p], y[..., p + 1 :]], dim=-1)
        y = reverse(y, name, height, width, official_v)
        if class_token:
            y = torch.cat([y[..., :p], y_cls, y[..., p:]], dim=-1)
        outs.append(bi_attn(mixer.route_mixer, y.transpose(1, 2)))
    return F.linear(sum(outs), mixer.out_proj.weight)


def local_vssm_mixer(op: torch.nn.Module, x: Tensor, directions: list[str], official_v: bool = True) -> Tensor:
    """LocalVMamba's SS2D (spec §4) on a channel-last map x: (B, H, W, C): every direction right-padded to the
    longest, one grouped scan, each cropped to its own length and undone."""
    batch, height, width, _ = x.shape
    inner = op.d_inner
    xz = F.linear(x, op.in_proj.weight)
    xi, z = xz.chunk(2, dim=-1)
    xi = F.silu(F.conv2d(xi.permute(0, 3, 1, 2), op.conv2d.weight, op.conv2d.bias, padding=1, groups=inner))
    tokens = xi.reshape(batch, inner, height * width)
    orders = [sequence(name, height, width) for name in directions]
    longest = max(len(o) for o in orders)
    xs = torch.stack([F.pad(gather(tokens, o), (0, longest - len(o))) for o in orders], dim=1)  # (B, K, E, L_max)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, op.x_proj_weight)
    dts, b, c = x_dbl.split([op.dt_rank, op.d_state, op.d_state], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, op.dt_projs_weight)
    y = selective_scan_ref(
        xs.reshape(batch, -1, longest), dts.reshape(batch, -1, longest), -torch.exp(op.A_logs), b, c, op.Ds,
        delta_bias=op.dt_projs_bias.flatten(), delta_softplus=True,
    ).view(batch, len(orders), inner, longest)
    outs = [
        bi_attn(op.route_mixer, reverse(y[:, k, :, : len(o)], name, height, width, official_v).transpose(1, 2))
        for k, (name, o) in enumerate(zip(directions, orders))
    ]
    y = F.layer_norm(sum(outs), (inner,), op.out_norm.weight, op.out_norm.bias, op.out_norm.eps)
    return F.linear(y * F.silu(z).reshape(batch, height * width, inner), op.out_proj.weight).view(
        batch, height, width, -1
    )


def rope_tables(dim: int, height: int, width: int, ref: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin), each (H·W, D): channels [0, D/2) turn by i·(ref/H)·f_m, [D/2, D) by j·(ref/W)·f_m, f_m =
    10000^(-4m/D) for the pair m of each half."""
    angles = np.zeros((height * width, dim))
    half = dim // 2
    for i in range(height):
        for j in range(width):
            for channel in range(dim):
                m = (channel % half) // 2
                position = i * ref / height if channel < half else j * ref / width
                angles[i * width + j, channel] = position * 10000.0 ** (-4 * m / dim)
    return np.cos(angles), np.sin(angles)

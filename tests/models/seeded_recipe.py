"""Seed-derived weights and inputs of the released-size golden fixtures (tests/fixtures/*_seeded/README.md).

A released-size state dict is 27-127 MB, too big to commit, so each `*_seeded` fixture stores the original's key/shape
list and this recipe instead; the original code was run on the weights the recipe makes. The recipe reads nothing but
a key and its shape, so it serves every family. Every tensor comes from its own `torch.Generator` seeded with
sha256(f"{seed}/{key}"), drawn with `torch.rand` (uniform: its float32 values are exact functions of the generator's
integers, so they do not depend on the CPU's vector unit), then scaled by the first rule that matches:

| tensor (`name` = the key's last part) | value (u ~ U(0, 1), s = u·2 − 1 ~ U(−1, 1)) |
|---|---|
| `num_batches_tracked` | 0 |
| `A_log*` (…, N) | log(1..N) along the last axis + 0.5·s |
| `D`, `Ds` | 1 + 0.5·s |
| `gamma*` | 1e-5 + 0.5·s |
| `*scale` (a learnt scalar gain) | 1 + 0.2·s |
| `dt_proj.bias`, `dt_projs_bias` | Mamba's init: softplus⁻¹(dt), dt = exp(log 1e-3 + u·(log 0.1 − log 1e-3)) |
| `running_var` / `running_mean` | exp(0.3·s) / 0.2·s |
| stacked projections `*_weight` (K, out, in) | s · √3 / √in  (unit gain per route) |
| other tensors of dim ≥ 2 (conv / linear weight) | s · √3 / √fan_in, fan_in = the product of all axes but the first |
| 1-D `weight` (norms) | 1 + 0.2·s |
| anything else (biases) | 0.2·s |

A family may replace a rule for some of its keys (`FAMILY_RULES`, by the key's end): a tensor kind whose unit-gain draw
would make the family's float32 rounding grow far beyond what the original's own initialisation gives. The other
families' weights do not change.

Inputs: `torch.rand` of a generator seeded with sha256(f"{seed}/input/{B}x{C}x{H}x{W}"), mapped to N(0, 1)-like
values by √3·s.
"""

from __future__ import annotations

import hashlib
import math

import torch


def _generator(text: str) -> torch.Generator:
    return torch.Generator().manual_seed(int(hashlib.sha256(text.encode()).hexdigest()[:15], 16))


def _signed(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float32) * 2 - 1


# {family: {key ending: std}}: those keys drawn as s·√3·std (uniform, that std) instead of by the table.
FAMILY_RULES: dict[str, dict[str, float]] = {
    # GroupMamba's mixer ends in proj(LN(y)): at unit gain every stage's first mixer output is as large as the
    # residual stream, each block multiplies the float32 rounding it receives by 1.1-1.7 and the original's
    # fp32-vs-fp64 noise on GroupMamba-T is 2.2e-5 / 2.6e-5 (224 / 160x192); at the original's own init std 0.02
    # (trunc_normal_) the gains are 0.99-1.15 and the noise 7.1e-7 / 8.6e-7 (tests/fixtures/groupmamba_tiny_seeded).
    "groupmamba": {"attn.proj.weight": 0.02},
}


def seeded_tensor(seed: int, key: str, shape: tuple[int, ...], family: str | None = None) -> torch.Tensor:
    """The recipe's value of state-dict entry `key` (see the module docstring); `family` applies its
    `FAMILY_RULES`."""
    shape = tuple(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    generator = _generator(f"{seed}/{key}")
    s = _signed(shape, generator)
    for ending, std in FAMILY_RULES.get(family, {}).items():
        if key.endswith(ending):
            return s * (math.sqrt(3.0) * std)
    name = key.rsplit(".", 1)[-1]
    if name.startswith("A_log"):
        return torch.log(torch.arange(1, shape[-1] + 1, dtype=torch.float32)).expand(shape) + 0.5 * s
    if name in ("D", "Ds"):
        return 1 + 0.5 * s
    if name.startswith("gamma"):
        return 1e-5 + 0.5 * s
    if name.endswith("scale"):
        return 1 + 0.2 * s
    if key.endswith(("dt_proj.bias", "dt_projs_bias")):
        u = (s + 1) / 2
        dt = torch.exp(math.log(1e-3) + u * (math.log(0.1) - math.log(1e-3)))
        return dt + torch.log(-torch.expm1(-dt))
    if name == "running_var":
        return torch.exp(0.3 * s)
    if name == "running_mean":
        return 0.2 * s
    if len(shape) >= 2:
        fan_in = shape[-1] if name.endswith("_weight") else math.prod(shape[1:])
        return s * math.sqrt(3.0 / fan_in)
    if name == "weight":
        return 1 + 0.2 * s
    return 0.2 * s


def seeded_state_dict(
    seed: int, keys_and_shapes: list[tuple[str, list[int]]], family: str | None = None
) -> dict[str, torch.Tensor]:
    """The recipe's state dict, in the given key order (the original's); `family` applies its `FAMILY_RULES`."""
    return {key: seeded_tensor(seed, key, tuple(shape), family) for key, shape in keys_and_shapes}


def seeded_input(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    generator = _generator(f"{seed}/input/{'x'.join(map(str, shape))}")
    return math.sqrt(3.0) * _signed(tuple(shape), generator)


def checksum(state_dict: dict[str, torch.Tensor]) -> float:
    """Σ over tensors of Σ|t| in float64: a recipe drift detector (compare with a relative tolerance)."""
    return float(sum(t.double().abs().sum() for t in state_dict.values()))

"""Seed-derived weights and inputs of the `mambavision_tiny_seeded` golden fixture (tests/fixtures/.../README.md).

A MambaVision-T state dict is 127 MB, too big to commit, so the fixture stores the original's key/shape list and
this recipe instead; the original code was run on the weights the recipe makes. Every tensor comes from its own
`torch.Generator` seeded with sha256(f"{seed}/{key}"), drawn with `torch.rand` (uniform: its float32 values are
exact functions of the generator's integers, so they do not depend on the CPU's vector unit), then scaled:

| tensor | value (u ~ U(0, 1), s = u·2 − 1 ~ U(−1, 1)) |
|---|---|
| conv / linear weight (dim ≥ 2) | s · √3 / √fan_in  (unit gain) |
| BN / LN weight | 1 + 0.2·s;  bias, running_mean 0.2·s;  running_var exp(0.3·s) |
| `dt_proj.bias` | Mamba's init: softplus⁻¹(dt), dt = exp(log 1e-3 + u·(log 0.1 − log 1e-3)) |
| `A_log` | log(1..N) per row + 0.5·s |
| `D` | 1 + 0.5·s |
| `gamma*` | 1e-5 + 0.5·s |
| other biases | 0.2·s |
| `num_batches_tracked` | 0 |

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


def seeded_tensor(seed: int, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The recipe's value of state-dict entry `key` (see the module docstring)."""
    shape = tuple(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.int64)
    generator = _generator(f"{seed}/{key}")
    s = _signed(shape, generator)
    name = key.rsplit(".", 1)[-1]
    stem_norm = key.startswith(("patch_embed.conv_down.1.", "patch_embed.conv_down.4."))
    is_norm = stem_norm or any(part.startswith("norm") for part in key.split("."))
    if name == "A_log":
        return torch.log(torch.arange(1, shape[1] + 1, dtype=torch.float32)).expand(shape) + 0.5 * s
    if name == "D":
        return 1 + 0.5 * s
    if name.startswith("gamma"):
        return 1e-5 + 0.5 * s
    if key.endswith("dt_proj.bias"):
        u = (s + 1) / 2
        dt = torch.exp(math.log(1e-3) + u * (math.log(0.1) - math.log(1e-3)))
        return dt + torch.log(-torch.expm1(-dt))
    if name == "running_var":
        return torch.exp(0.3 * s)
    if name == "running_mean":
        return 0.2 * s
    if len(shape) >= 2:
        fan_in = math.prod(shape[1:])
        return s * math.sqrt(3.0 / fan_in)
    if is_norm and name == "weight":
        return 1 + 0.2 * s
    return 0.2 * s


def seeded_state_dict(seed: int, keys_and_shapes: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    """The recipe's state dict, in the given key order (the original's)."""
    return {key: seeded_tensor(seed, key, tuple(shape)) for key, shape in keys_and_shapes}


def seeded_input(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    generator = _generator(f"{seed}/input/{'x'.join(map(str, shape))}")
    return math.sqrt(3.0) * _signed(tuple(shape), generator)


def checksum(state_dict: dict[str, torch.Tensor]) -> float:
    """Σ over tensors of Σ|t| in float64: a recipe drift detector (compare with a relative tolerance)."""
    return float(sum(t.double().abs().sum() for t in state_dict.values()))

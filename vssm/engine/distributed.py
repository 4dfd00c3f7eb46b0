"""Data-parallel runs under torchrun: the process group from its environment, sharding, and reductions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run: rank of world_size, local_rank on its machine, and its device.
    initialized: a process group exists (torchrun set WORLD_SIZE), also for a world of one."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str) -> int:
    value = os.environ.get(name, "0")
    if not value.isdigit():
        raise ValueError(f"environment variable {name}: expected a non-negative integer (torchrun sets it), "
                         f"got {value!r}")
    return int(value)


def resolve_device(device: str | None = None) -> torch.device:
    """The device a tool's `--device` names: 'cpu', 'cuda' or 'cuda:N' (default: CUDA when available). Anything else,
    or a GPU this machine does not have, is a ValueError whose message is one line for the command line."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        requested = torch.device(device)
    except (RuntimeError, TypeError):
        requested = None
    if requested is None or requested.type not in ("cpu", "cuda") or (requested.type == "cpu" and requested.index):
        raise ValueError(f"device {device!r}: expected cpu, cuda or cuda:N")
    if requested.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available here (use --device cpu)")
    if requested.type == "cuda" and (requested.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} GPU(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return requested


def setup_distributed(device: str | None = None) -> Distributed:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT) when WORLD_SIZE is
    set: NCCL with one GPU per process (cuda:LOCAL_RANK), gloo on CPUs. Without it, a single process on `device`
    (default: CUDA when available; checked by `resolve_device`)."""
    requested = resolve_device(device)
    if "WORLD_SIZE" not in os.environ:
        return Distributed(device=requested)
    world_size, rank, local_rank = _env_int("WORLD_SIZE"), _env_int("RANK"), _env_int("LOCAL_RANK")
    if requested.type == "cuda":
        requested = torch.device("cuda", local_rank)
        torch.cuda.set_device(requested)
    dist.init_process_group(backend="nccl" if requested.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return Distributed(rank, world_size, local_rank, requested, initialized=True)


def cleanup_distributed(ctx: Distributed) -> None:
    if ctx.initialized and dist.is_initialized():
        dist.destroy_process_group()


def _all_reduce(values: torch.Tensor, ctx: Distributed, op: dist.ReduceOp) -> torch.Tensor:
    if not ctx.initialized:
        return values
    values = values.to(ctx.device if ctx.device.type == "cuda" else "cpu")  # NCCL reduces GPU tensors only
    dist.all_reduce(values, op=op)
    return values.cpu()


def all_reduce_sum(values: torch.Tensor, ctx: Distributed) -> torch.Tensor:
    """Element-wise sum of `values` over the ranks (keep counts in float64: exact up to 2**53)."""
    return _all_reduce(values, ctx, dist.ReduceOp.SUM)


def all_reduce_max(values: torch.Tensor, ctx: Distributed) -> torch.Tensor:
    """Element-wise maximum of `values` over the ranks."""
    return _all_reduce(values, ctx, dist.ReduceOp.MAX)


def all_gather_lists(items: list[Any], ctx: Distributed) -> list[Any]:
    """The concatenation of every rank's `items` (picklable objects), in rank order."""
    if not ctx.initialized:
        return items
    gathered: list[list[Any]] = [[] for _ in range(ctx.world_size)]
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in part]


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world_size, ... of a dataset: every sample exactly once over the ranks (no padding, unlike
    DistributedSampler, whose repeated samples would be counted twice in an evaluation)."""

    def __init__(self, size: int, ctx: Distributed) -> None:
        self.size = size
        self.rank, self.world_size = ctx.rank, ctx.world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))

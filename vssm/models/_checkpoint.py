"""Checking a converted checkpoint against a model before `load_state_dict`, with a message a user can act on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn


def check_fits(
    state_dict: Mapping[str, Tensor], model: nn.Module, what: str, ignore: Sequence[str] = ("head.",)
) -> None:
    """ValueError naming `what` (the model variant and the checkpoint) and the first missing, unexpected and
    mis-shaped keys. Keys starting with a prefix in `ignore` (the classifier, which timm adapts) are not compared."""
    prefixes = tuple(ignore)
    ours = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(prefixes)}
    theirs = {k: v.shape for k, v in state_dict.items() if not k.startswith(prefixes)}
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    shapes = [f"{k} {tuple(theirs[k])} vs {tuple(ours[k])}" for k in ours if k in theirs and theirs[k] != ours[k]]
    found = (("missing", missing), ("unexpected", unexpected), ("shape (checkpoint vs model)", shapes))
    parts = [f"{name}: {items[:5]}{' ...' if len(items) > 5 else ''}" for name, items in found if items]
    if parts:
        raise ValueError(f"{what}: " + "; ".join(parts))

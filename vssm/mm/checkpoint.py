"""Finding the checkpoint a dense backbone starts from (a local file or a URL) and its weights in any wrapper layout.

Files are read weights-only by `vssm.checkpoints.read_checkpoint` (the originals' training checkpoints, ours, nnU-Net's,
safetensors). The model weights are then chosen by `vssm.checkpoints.select_weights` (never the EMA copy) and, as
mmengine's `Pretrained` init does, taken from under a key `prefix` (`'backbone.'` for a detector or segmentor
checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor

from vssm.checkpoints import select_weights

__all__ = ["is_url", "resolve_checkpoint", "state_dict_of"]


def is_url(source: str | os.PathLike) -> bool:
    return urlparse(str(source)).scheme in ("http", "https")


def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """A local path as is (FileNotFoundError if it does not exist), a URL downloaded once into torch hub's cache."""
    if is_url(source):
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / Path(urlparse(str(source)).path).name
        if not path.exists():
            torch.hub.download_url_to_file(str(source), str(path), progress=True)
        return path
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint {str(source)!r} does not exist (expected a file or a URL)")
    return path


def state_dict_of(checkpoint: Mapping, prefix: str | None = None) -> dict[str, Tensor]:
    """The model weights of a checkpoint (`select_weights`: `model` / `state_dict` / `network_weights` or a bare state
    dict, DDP and torch.compile prefixes stripped), a common `model.` prefix stripped, and with `prefix` only the keys
    under it, the prefix removed (ValueError if none is)."""
    weights, _ = select_weights(checkpoint)
    if weights and all(k.startswith("model.") for k in weights):
        # Hugging Face trust_remote_code wrappers hold the network as `self.model` (MambaVision's releases).
        weights = {k.removeprefix("model."): v for k, v in weights.items()}
    if prefix:
        selected = {k.removeprefix(prefix): v for k, v in weights.items() if k.startswith(prefix)}
        if not selected:
            raise ValueError(f"no checkpoint key starts with prefix {prefix!r}; its keys start with "
                             f"{sorted({k.split('.')[0] + '.' for k in weights})[:8]}")
        weights = selected
    return weights

"""One checkpoint-loading story for every family: read weights-only, take the model weights, convert, check.

1. `read_checkpoint(path)`: a file's contents with `torch.load(weights_only=True)` (or safetensors). The config
   objects the originals pickle into their training checkpoints (argparse `Namespace`, yacs `CfgNode` read as a
   plain `OrderedDict`) and the numpy scalars of nnU-Net's training log are allow-listed as plain data; nothing
   else is unpickled. A broken file (empty, truncated, text, another pickle) is one error naming it and what is
   wrong with it; NaN / inf tensors are warned of (`warn_non_finite`). timm's `pretrained_cfg_overlay=dict(file=...)`
   reads through it too (`vssm.models._registry.build_model`).
2. `select_weights(checkpoint, ema=False)`: the model weights of a training checkpoint (`model`, `state_dict`,
   nnU-Net's `network_weights`) or a bare state dict, wrapper prefixes removed. EMA weights (`model_ema`,
   `state_dict_ema`, `ema_model`) only with `ema=True`: a checkpoint that holds nothing else is a ValueError saying
   so, never a silent substitute.
3. The family's `checkpoint_filter_fn` renames the original's keys to ours.
4. `check_fits` / `check_variant_fits`: a converted state dict that does not fit the model is a ValueError naming the
   model variant, the checkpoint's (when it can be told), the checkpoint's family when it is another one
   (`checkpoint_family`, from the families' key signatures) and the first missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import struct
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

__all__ = [
    "EMA_KEYS",
    "MODEL_KEYS",
    "check_fits",
    "check_variant_fits",
    "checkpoint_family",
    "family_hint",
    "model_name",
    "read_checkpoint",
    "rename_key",
    "select_weights",
    "warn_non_finite",
]

MODEL_KEYS = ("model", "state_dict", "network_weights")
EMA_KEYS = ("model_ema", "state_dict_ema", "ema_model")
# Prefixes wrappers add to every key of the network they hold: DDP (`module.`) and torch.compile (`_orig_mod.`).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# Each family's key signature (the originals' names and ours), the more specific before the one it refines:
# LocalVim's per-route `A_log_k` / channel attention before Vim's, LocalVMamba's channel attention before VMamba's.
_FAMILY_KEYS = (
    ("LocalVim", re.compile(r"(^|\.)layers\.\d+\.mixer\.(A_log_\d+$|attn\.|route_mixer\.)")),
    ("Vim", re.compile(r"(^|\.)layers\.\d+\.mixer\.A_b_log$")),
    ("LocalVMamba", re.compile(r"(^|\.)layers\.\d+\.blocks\.\d+\.op\.(multi_scan\.attn|route_mixer)\.")),
    ("MSVMamba", re.compile(r"(^|\.)layers\.\d+\.blocks\.\d+\.op\.conv2d_b1\.")),
    ("VMamba", re.compile(r"(^|\.)layers\.\d+\.blocks\.\d+\.(op|self_attention)\.")),
    ("MambaVision", re.compile(r"(^|\.)levels\.\d+\.blocks\.\d+\.")),
    ("GroupMamba", re.compile(r"(^|\.)(block\d+\.\d+\.attn\.mamba_g\d\.|stages\.\d+\.blocks\.\d+\.attn\.vsss\.)")),
    ("PlainMamba", re.compile(r"(^|\.)layers\.\d+\.mamba\.direction_Bs$")),
    ("U-Mamba", re.compile(r"(^|\.)(mamba_layer\.mamba\.|mamba_layers\.\d+\.mamba\.|stem\.\d+\.conv1\.)")),
)

_NUMPY_CORE = getattr(np, "_core", None) or np.core
_NUMPY_DTYPES = ("Float16DType", "Float32DType", "Float64DType", "Int32DType", "Int64DType", "BoolDType")
_SAFE_GLOBALS = [
    argparse.Namespace,  # DeiT-style training checkpoints (Vim, LocalVim): `args`
    (OrderedDict, "yacs.config.CfgNode"),  # Swin-style training checkpoints (VMamba): `config`
    _NUMPY_CORE.multiarray.scalar,  # nnU-Net's `logging` entry (U-Mamba): numpy scalars
    np.dtype,
    *(getattr(np.dtypes, name) for name in _NUMPY_DTYPES),
]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The contents of a checkpoint file, read weights-only (a `.safetensors` file gives its state dict).

    Raises FileNotFoundError for a missing file and ValueError naming the file and what is wrong with it for anything
    that is not a weights-only checkpoint holding a dict (empty, truncated, text, another pickle). Warns
    (`warn_non_finite`) when tensors in it hold NaN or inf.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    if not path.is_file():
        raise ValueError(f"checkpoint {path}: not a file (expected a checkpoint file, got a directory or device)")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path}: the file is empty (0 bytes: an interrupted download or save?)")
    if path.suffix == ".safetensors":
        try:
            checkpoint = load_file(path, device="cpu")
        except SafetensorError as exc:
            raise ValueError(f"checkpoint {path}: not a readable safetensors file, truncated or damaged "
                             f"({path.stat().st_size} bytes: {exc})") from None
    else:
        checkpoint = _torch_load(path)
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"checkpoint {path}: expected a dict (a state dict or a training checkpoint), "
                         f"got {type(checkpoint).__name__}")
    warn_non_finite(checkpoint, f"checkpoint {path}")
    return dict(checkpoint)


def _torch_load(path: Path) -> Any:
    with path.open("rb") as file:  # a file we may not read fails here, with the OSError that says so
        head = file.read(16)
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except (ValueError, RuntimeError, OSError, pickle.UnpicklingError):
            unsafe = None
        if not unsafe:
            raise ValueError(f"checkpoint {path}: {_unreadable(head, None)}") from None
        raise ValueError(
            f"checkpoint {path}: holds objects other than tensors and plain containers ({', '.join(unsafe)}); "
            "only weights-only checkpoints are read (re-save its state dict with torch.save(model.state_dict()))"
        ) from None
    # What torch.load raises on a file that is not one of its archives: EOFError (truncated), KeyError (text),
    # RuntimeError or OSError (a damaged zip), ...; none of them names the file.
    except (RuntimeError, OSError, EOFError, KeyError, IndexError, ValueError, OverflowError, struct.error) as exc:
        raise ValueError(f"checkpoint {path}: {_unreadable(head, exc)}") from None


def _unreadable(head: bytes, exc: Exception | None) -> str:
    """What a file torch.load cannot read looks like, from its first bytes `head` and torch's error."""
    error = "" if exc is None else f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if head.startswith(b"PK\x03\x04"):
        return f"a damaged or truncated torch.save archive ({error or 'unreadable'})"
    if head.startswith(b"\x80"):
        return ("a Python pickle, not a torch.save checkpoint (or a truncated legacy one)"
                + (f" ({error})" if error else ""))
    return f"not a PyTorch checkpoint: neither a torch.save archive nor a pickle (it starts with {head!r})"


def warn_non_finite(checkpoint: Mapping[str, Any], what: str) -> None:
    """Warn (UserWarning) naming the tensors of `checkpoint` that hold NaN or inf: the first three and how many in
    all. Nested dicts and lists (a training checkpoint's EMA weights, optimizer state) are searched too, their keys
    joined with dots."""
    shown = 3
    bad = [name for name, tensor in _named_tensors(checkpoint, "")
           if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all())]
    if bad:
        more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
        warnings.warn(f"{what}: {len(bad)} tensor(s) hold NaN or inf values: {', '.join(bad[:shown])}{more}",
                      stacklevel=3)


def _named_tensors(value: Any, prefix: str) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        yield prefix, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _named_tensors(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _named_tensors(item, f"{prefix}.{index}" if prefix else str(index))


def _strip_wrappers(key: str) -> str:
    # Any number, in any order: LocalMamba's training checkpoints nest DDP twice (`module.module.`), which timm's
    # `clean_state_dict` (one of each) leaves half-stripped.
    while key.startswith(_WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def select_weights(
    checkpoint: Mapping[str, Any], ema: bool = False, what: str = "checkpoint"
) -> tuple[dict[str, Tensor], str]:
    """The state dict to load and the key it came from ('' for a bare state dict).

    `ema=False` takes the model weights (`model`, `state_dict`, `network_weights`: what the originals' validation
    reports), `ema=True` the EMA weights (`model_ema`, `state_dict_ema`, `ema_model`). Asking for weights a checkpoint
    does not have is a ValueError listing its keys. DDP `module.` and torch.compile `_orig_mod.` prefixes are removed.
    """
    keys = EMA_KEYS if ema else MODEL_KEYS
    found = next((k for k in keys if isinstance(checkpoint.get(k), Mapping)), None)
    if found is None:
        nested = [k for k, v in checkpoint.items() if isinstance(v, Mapping)]
        tensors = [k for k, v in checkpoint.items() if isinstance(v, Tensor)]
        if ema or not tensors:
            kind = "EMA weights" if ema else "model weights"
            ema_only = [k for k in EMA_KEYS if k in nested] if not ema else []
            hint = (f"; it holds EMA weights ({', '.join(ema_only)}): select them explicitly (vssm.checkpoints."
                    "select_weights(checkpoint, ema=True), the tools' --ema)") if ema_only else ""
            raise ValueError(
                f"{what}: no {kind}: expected one of {list(keys)} (or a bare state dict), found keys {nested[:8]}"
                + (f" and {len(tensors)} tensors" if tensors else "") + hint
            )
        state_dict, found = checkpoint, ""
    else:
        state_dict = checkpoint[found]
    weights = {_strip_wrappers(k): v for k, v in state_dict.items() if isinstance(v, Tensor)}
    if not weights:
        raise ValueError(f"{what}: {found or 'the state dict'} holds no tensors")
    return weights, found


def rename_key(key: str, renames: Iterable[tuple[re.Pattern[str], str]]) -> str:
    """`key` with every (pattern, replacement) of `renames` substituted, in order."""
    for pattern, replacement in renames:
        key = pattern.sub(replacement, key)
    return key


def model_name(model: nn.Module) -> str:
    """The registered name a model was built as (its pretrained config's `architecture`), else its class name."""
    return (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__


def checkpoint_family(state_dict: Mapping[str, Any]) -> str | None:
    """The family whose checkpoints have `state_dict`'s keys (the originals' names or ours), None if none's do."""
    return next((family for family, keys in _FAMILY_KEYS if any(keys.search(k) for k in state_dict)), None)


def family_hint(state_dict: Mapping[str, Any]) -> str:
    """'this looks like a VMamba checkpoint (keys like ...; top level: ...)', for a message about a checkpoint of
    another family; '' when its family cannot be told."""
    family = checkpoint_family(state_dict)
    if family is None:
        return ""
    keys = dict(_FAMILY_KEYS)[family]
    example = next(k for k in state_dict if keys.search(k))
    top = sorted({k.split(".")[0] for k in state_dict})
    return (f"this looks like a {family} checkpoint (keys like {example}; top level: {', '.join(top[:6])}"
            f"{', ...' if len(top) > 6 else ''})")


def check_fits(
    state_dict: Mapping[str, Tensor], model: nn.Module, what: str, ignore: Sequence[str] = ("head.",)
) -> None:
    """ValueError naming `what` (the model variant and the checkpoint) and the first missing, unexpected and
    mis-shaped keys; a checkpoint of another family is named as such (`family_hint`). Keys starting with a prefix in
    `ignore` (the classifier, which timm adapts) are not compared."""
    prefixes = tuple(ignore)
    ours = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(prefixes)}
    theirs = {k: v.shape for k, v in state_dict.items() if not k.startswith(prefixes)}
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    shapes = [f"{k} {tuple(theirs[k])} vs {tuple(ours[k])}" for k in ours if k in theirs and theirs[k] != ours[k]]
    found = (("missing", missing), ("unexpected", unexpected), ("shape (checkpoint vs model)", shapes))
    parts = [f"{name}: {items[:5]}{' ...' if len(items) > 5 else ''}" for name, items in found if items]
    if parts:
        family = checkpoint_family(theirs)
        if family not in (None, checkpoint_family(ours)) and f"a {family} checkpoint" not in what:  # `what` may say
            parts.insert(0, family_hint(theirs))
        raise ValueError(f"{what}: " + "; ".join(parts))


def check_variant_fits(
    state_dict: Mapping[str, Tensor],
    model: nn.Module,
    describe_checkpoint: Callable[[Mapping[str, Tensor]], dict],
    summary: Callable[[dict], str],
    variants: Mapping[str, dict],
    ignore: Sequence[str],
) -> None:
    """`check_fits` with a message naming both networks: the model's architecture and the checkpoint's, read from
    its keys and shapes by `describe_checkpoint`, with the registered variants (`variants`: name -> architecture)
    it equals. `summary` writes an architecture for the message. For the mix-ups of variants that differ only in
    depths or widths (VMamba's s1l8 vs s2l5)."""
    what = f"checkpoint does not fit {model_name(model)} ({summary(describe_checkpoint(model.state_dict()))})"
    try:
        arch = describe_checkpoint(state_dict)
    except (KeyError, ValueError):  # not this family's layout: check_fits lists the keys
        arch = None
    if arch is not None:
        same = [name for name, variant in variants.items() if variant == arch]
        what += f"; the checkpoint is {summary(arch)}" + (f" = {', '.join(same)}" if same else "")
    check_fits(state_dict, model, what, ignore=ignore)

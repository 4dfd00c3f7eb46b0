"""Classification checkpoints: reading the originals' files weights-only, choosing model or EMA weights, and our
training checkpoint format.

Formats read (no code from the file runs: `torch.load(weights_only=True)` with the config classes the originals
embed and nnU-Net's numpy scalars allow-listed as plain data; the reader and the weight selection are
`vssm.models._checkpoint`'s, which the families' checkpoint loading shares):

- DeiT-style training checkpoints (Vim, LocalVim): `{'model', 'model_ema', 'optimizer', ..., 'args': Namespace}`
- Swin-style training checkpoints (VMamba): `{'model', 'model_ema', ..., 'config': yacs CfgNode}`
- timm-style checkpoints (MambaVision, ours): `{'state_dict', 'state_dict_ema', ..., 'args'}`; LocalMamba's
  `{'state_dict'}` and `{'model', 'ema_model'}`
- nnU-Net checkpoints (U-Mamba): `{'network_weights', 'optimizer_state', ..., 'logging', 'init_args'}`
- bare state dicts (`.pth`, `.pt`, `.bin`) and `.safetensors` files

EMA weights are used only when asked for (`select_weights(..., ema=True)`, the tools' `--ema`).

The family's `checkpoint_filter_fn` (applied by timm when the weights are loaded) then converts key names.

Ours (`save_train_checkpoint`) is timm-style, so `timm.create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=PATH))` reads it too, plus what rebuilds the model and its evaluation exactly:
`arch`, `model_kwargs`, `num_classes`, `class_names`, `data_config` (the evaluation preprocessing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from .models._checkpoint import EMA_KEYS, MODEL_KEYS, read_checkpoint, select_weights
from .zoo import check_input_size, resolve_names

__all__ = [
    "EMA_KEYS",
    "MODEL_KEYS",
    "VSSM_FORMAT",
    "LoadedClassifier",
    "is_vssm_checkpoint",
    "load_classifier",
    "model_kwargs_for_size",
    "read_checkpoint",
    "save_train_checkpoint",
    "select_weights",
]

VSSM_FORMAT = "vssm.classification/1"
# Our checkpoint's entries that only resuming needs.
_TRAINING_STATE = ("state_dict", "state_dict_ema", "optimizer", "scaler")


def is_vssm_checkpoint(checkpoint: Mapping[str, Any]) -> bool:
    """Whether `checkpoint` was written by `save_train_checkpoint`."""
    return checkpoint.get("format") == VSSM_FORMAT


def save_train_checkpoint(path: str | os.PathLike, **fields: Any) -> Path:
    """Write our training checkpoint atomically (a temporary file, then a rename, so an interrupted save never
    leaves a truncated `last.pth`). `fields` must hold only tensors, numbers, strings and containers of them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"format": VSSM_FORMAT, **fields}, partial)
    os.replace(partial, path)
    return path


@dataclass
class LoadedClassifier:
    """model: the network with the checkpoint's weights (eval mode); arch: its registered name; weights: the
    checkpoint entry they came from ('' for a bare state dict); meta: the rest of our checkpoint format (None for
    other formats): num_classes, class_names, model_kwargs, data_config, epoch, metrics."""

    model: nn.Module
    arch: str
    weights: str
    meta: dict[str, Any] | None


def model_kwargs_for_size(name: str, img_size: int) -> dict[str, Any]:
    """Constructor kwargs for running `name` at img_size x img_size: a fixed-size model (Vim) is built for it (its
    filter resamples the position embedding); ValueError when the size is below the model's stride."""
    kwargs = check_input_size(name, (3, img_size, img_size))
    if timm.models.get_pretrained_cfg(name).fixed_input_size:
        kwargs["img_size"] = img_size
    return kwargs


def load_classifier(path: str | os.PathLike, model_name: str | None = None, ema: bool = False,
                    img_size: int | None = None, **kwargs: Any) -> LoadedClassifier:
    """Build a classifier from a checkpoint file in any format `read_checkpoint` reads.

    Our checkpoints name their model, classes and constructor arguments; other formats need `model_name` and are
    loaded for its pretrained config's classes (or `num_classes=`). `img_size` rebuilds a fixed-size model for
    another resolution (`model_kwargs_for_size`). The weights go through timm's pretrained
    loading, so the family's `checkpoint_filter_fn` converts official key names and the load is strict. A
    checkpoint that does not fit raises ValueError naming both.
    """
    checkpoint = read_checkpoint(path)
    meta = None
    if is_vssm_checkpoint(checkpoint):
        meta = {k: v for k, v in checkpoint.items() if k not in _TRAINING_STATE}
        if model_name is not None and model_name != meta["arch"]:
            raise ValueError(f"checkpoint {path} holds a {meta['arch']}, not a {model_name} (leave --model out to use "
                             "the checkpoint's)")
        model_name = meta["arch"]
        kwargs = {**meta["model_kwargs"], "num_classes": meta["num_classes"], **kwargs}
    elif model_name is None:
        raise ValueError(f"checkpoint {path} was not written by train_cls.py: name its model (--model)")
    (model_name,) = resolve_names([model_name], allow_timm=True)
    if img_size is not None:
        kwargs.update(model_kwargs_for_size(model_name, img_size))
    weights, key = select_weights(checkpoint, ema, what=f"checkpoint {path}")
    num_classes = kwargs.get("num_classes", timm.models.get_pretrained_cfg(model_name).num_classes)
    overlay = dict(state_dict=weights, num_classes=num_classes)
    try:
        model = timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except RuntimeError as exc:  # strict load_state_dict: a classifier for another number of classes, say
        raise ValueError(f"checkpoint {path} ({key or 'state dict'}) does not fit {model_name} with "
                         f"{num_classes} classes: {exc}") from None
    model.pretrained_cfg.pop("state_dict", None)  # the overlay's weights: do not keep a second copy
    return LoadedClassifier(model.eval(), model_name, key, meta)

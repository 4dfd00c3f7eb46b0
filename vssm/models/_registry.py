"""Building vssm's models through timm, and listing which of timm's registered models are vssm's."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import timm
from timm.models import build_model_with_cfg, resolve_pretrained_cfg
from timm.models._builder import _resolve_pretrained_source
from timm.models._hub import download_from_hf
from torch import nn

from vssm.models._checkpoint import read_checkpoint, select_weights

ModelT = TypeVar("ModelT", bound=nn.Module)
GOOGLE_DRIVE_FOLDER = "https://drive.google.com/drive/folders/"


def build_model(
    model_cls: type[ModelT],
    variant: str,
    pretrained: bool,
    checkpoint_filter_fn: Callable[[dict, nn.Module], dict],
    default_out_indices: int | Sequence[int],
    **kwargs: Any,
) -> ModelT:
    """timm's `build_model_with_cfg` as every family calls it: pretrained weights go through the family's
    `checkpoint_filter_fn`, and `features_only=True` wraps the model in timm's feature getter over its
    `forward_intermediates` at the caller's `out_indices=` (default: the family's dense taps,
    `default_out_indices`). A local pretrained file (`pretrained_cfg_overlay=dict(file=...)`) or a named file on
    the Hugging Face hub (`hf_hub_id` + `hf_hub_filename`, downloaded to the Hugging Face cache, as timm does) is
    read by `read_checkpoint`, as every other loading path reads one."""
    out_indices = kwargs.pop("out_indices", default_out_indices)
    file = _pretrained_file(variant, kwargs) if pretrained else None
    if file is not None:
        # timm's reader gives EOFError, KeyError: 101 or an empty FileNotFoundError for a broken file, takes the EMA
        # weights of a training checkpoint and refuses the plain extras our allow-list reads (numpy scalars in an
        # nnU-Net or mmcv `meta`); ours names the file and what is wrong with it and warns of NaN / inf, and the
        # model weights are taken, as on every other loading path. Only they go on: timm deep-copies its config.
        weights, _ = select_weights(read_checkpoint(file), what=f"checkpoint {file}")
        kwargs["pretrained_cfg_overlay"] = {**(kwargs.get("pretrained_cfg_overlay") or {}), "state_dict": weights}
    model = build_model_with_cfg(
        model_cls,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )
    if file is not None:  # the configs keep the file's name, not a copy of its weights
        for module in model.modules():
            for cfg in (getattr(module, "pretrained_cfg", None), getattr(module, "default_cfg", None)):
                if isinstance(cfg, dict):
                    cfg.pop("state_dict", None)
    return model


def _pretrained_file(variant: str, kwargs: dict[str, Any]) -> str | None:
    """The local file timm would read the pretrained weights from with its own reader (not a family's
    `custom_load`): a given file, or a named hub file, downloaded here; else None (a state dict, a URL, or the hub's
    default names, which timm resolves itself). A ValueError where timm would download a Google Drive folder
    (MSVMamba's releases): it would fetch the folder's web page and fail to unpickle it, far from the cause."""
    cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
    source, location = _resolve_pretrained_source(vars(cfg))  # not to_dict(): it deep-copies a given state dict
    if source == "url" and location.startswith(GOOGLE_DRIVE_FOLDER):
        raise ValueError(
            f"{variant}: pretrained=True needs a local file here: the authors publish the weights as a Google Drive "
            f"folder ({location}), which cannot be downloaded automatically; download its checkpoint and pass "
            f"pretrained_cfg_overlay=dict(file=PATH, custom_load=True)"
        )
    if cfg.custom_load:
        return None
    if source == "file":
        return location
    if source == "hf-hub" and isinstance(location, tuple):  # (hf_hub_id, hf_hub_filename)
        return download_from_hf(*location, cache_dir=kwargs.get("cache_dir"))
    return None


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the models vssm registered with timm that match the fnmatch ``pattern``."""
    return sorted(
        name
        for name in timm.list_models(pattern)
        if timm.models.model_entrypoint(name).__module__.startswith("vssm.")
    )

"""One checkpoint-loading story for every family (`vssm.models._checkpoint`): every `checkpoint_filter_fn` takes the
model weights of a training checkpoint, never its EMA copy, refuses an EMA-only checkpoint with a message saying how
to ask for EMA weights, and strips the wrapper prefixes of DDP and torch.compile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from vssm.checkpoints import read_checkpoint, select_weights
from vssm.models import localmamba, mambavision, umamba, vim, vmamba

FILTERS = {
    "test_vim": vim.checkpoint_filter_fn,
    "test_vmamba": vmamba.checkpoint_filter_fn,
    "test_local_vim": localmamba.checkpoint_filter_fn,
    "test_local_vssm": localmamba.checkpoint_filter_fn,
    "test_mambavision": mambavision.checkpoint_filter_fn,
    "test_umamba_bot_2d": umamba.checkpoint_filter_fn,
}
# (model key, EMA key) of the training-checkpoint formats: DeiT/Swin-style, timm-style (ours), LocalMamba's.
LAYOUTS = [("model", "model_ema"), ("state_dict", "state_dict_ema"), ("model", "ema_model")]


def _shifted(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v + 1 if v.is_floating_point() else v for k, v in state_dict.items()}


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda keys: "+".join(keys))
@pytest.mark.parametrize("name", FILTERS)
def test_training_checkpoints_give_the_model_weights_not_the_ema_copy(name: str, layout: tuple[str, str]) -> None:
    model = timm.create_model(name)
    weights = model.state_dict()
    model_key, ema_key = layout
    out = FILTERS[name]({ema_key: _shifted(weights), model_key: weights, "epoch": 3}, model)
    assert out.keys() == weights.keys()
    assert all(torch.equal(out[k], v) for k, v in weights.items())


@pytest.mark.parametrize("name", FILTERS)
def test_an_ema_only_checkpoint_is_refused_with_the_way_to_ask_for_it(name: str) -> None:
    model = timm.create_model(name)
    checkpoint = {"model_ema": model.state_dict(), "epoch": 3}
    with pytest.raises(ValueError, match=rf"{name}.*no model weights.*EMA weights \(model_ema\).*ema=True"):
        FILTERS[name](checkpoint, model)
    ema, key = select_weights(checkpoint, ema=True)  # the explicit way; its bare state dict then loads
    assert key == "model_ema"
    model.load_state_dict(FILTERS[name](ema, model))


@pytest.mark.parametrize("name", FILTERS)
def test_ddp_and_compile_prefixes_are_stripped(name: str) -> None:
    model = timm.create_model(name)
    weights = model.state_dict()
    wrapped = {f"_orig_mod.module.module.{k}": v for k, v in weights.items()}
    out = FILTERS[name]({"model": wrapped}, model)
    assert out.keys() == weights.keys()


def test_one_reader_for_every_family_format(tmp_path: Path) -> None:
    """nnU-Net's training log holds numpy scalars; the originals' configs are plain containers; both read
    weights-only by the same reader."""
    weights = {"w": torch.randn(2, 3)}
    path = tmp_path / "checkpoint_final.pth"
    log = {"train_losses": [np.float32(0.5), np.float64(0.25)], "epoch_end_timestamps": [np.float64(1.5)]}
    torch.save({"network_weights": weights, "logging": log, "_best_ema": np.float64(0.7), "current_epoch": 2}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint["logging"]["train_losses"] == [0.5, 0.25] and checkpoint["_best_ema"] == 0.7
    selected, key = select_weights(checkpoint)
    assert key == "network_weights" and torch.equal(selected["w"], weights["w"])

"""vssm.checkpoints: the originals' files read weights-only, model / EMA selection, our format, and loading into a
registered model."""

from __future__ import annotations

import argparse
import fractions
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from yacs.config import CfgNode

from vssm.checkpoints import VSSM_FORMAT, load_classifier, read_checkpoint, save_train_checkpoint, select_weights


def _state() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.randn(3, 2), "a.bias": torch.randn(3)}


def test_reads_the_originals_pickled_configs_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    config = CfgNode({"MODEL": CfgNode({"TYPE": "vssm"}), "AMP_ENABLE": True})
    torch.save({"model": _state(), "args": argparse.Namespace(lr=1e-3), "config": config}, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint["args"].lr == 1e-3
    assert checkpoint["config"]["MODEL"]["TYPE"] == "vssm" and checkpoint["config"]["AMP_ENABLE"] is True
    assert not isinstance(checkpoint["config"], CfgNode)  # read as a plain mapping, no yacs code ran


def test_refuses_other_objects_and_non_checkpoints(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save({"model": _state(), "ratio": fractions.Fraction(1, 3)}, path)
    with pytest.raises(ValueError, match=r"holds objects other than tensors .*fractions.Fraction"):
        read_checkpoint(path)
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        read_checkpoint(path)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match=r"expected a dict .* got list"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_checkpoint(tmp_path / "missing.pth")


def test_safetensors(tmp_path: Path) -> None:
    state = _state()
    save_file(state, tmp_path / "w.safetensors")
    weights, key = select_weights(read_checkpoint(tmp_path / "w.safetensors"))
    assert key == "" and all(torch.equal(weights[k], v) for k, v in state.items())


def test_select_weights() -> None:
    model, ema = _state(), _state()
    checkpoint = {"model": {f"module.{k}": v for k, v in model.items()}, "model_ema": ema, "epoch": 3}
    weights, key = select_weights(checkpoint)
    assert key == "model" and set(weights) == set(model)  # DDP prefix removed
    weights, key = select_weights(checkpoint, ema=True)
    assert key == "model_ema" and torch.equal(weights["a.bias"], ema["a.bias"])
    assert select_weights({"state_dict": model, "state_dict_ema": ema}, ema=True)[1] == "state_dict_ema"
    assert select_weights({"state_dict": model, "ema_model": ema}, ema=True)[1] == "ema_model"
    assert select_weights(model)[1] == ""
    with pytest.raises(ValueError, match=r"no EMA weights: expected one of .* found keys \['model'\]"):
        select_weights({"model": model, "epoch": 1}, ema=True)
    with pytest.raises(ValueError, match="no model weights"):
        select_weights({"optimizer": {"state": {}}, "epoch": 1})
    with pytest.raises(ValueError, match="holds no tensors"):
        select_weights({"model": {"note": "empty"}})


def test_our_format_round_trip_and_loading(tmp_path: Path) -> None:
    model = timm.create_model("test_vmamba", num_classes=4)
    path = save_train_checkpoint(
        tmp_path / "run" / "last.pth", arch="test_vmamba", model_kwargs={"drop_path_rate": 0.1}, num_classes=4,
        class_names=["a", "b", "c", "d"], data_config={"input_size": [3, 32, 32]}, state_dict=model.state_dict(),
        epoch=2)
    assert not (tmp_path / "run" / "last.pth.partial").exists()
    assert read_checkpoint(path)["format"] == VSSM_FORMAT
    loaded = load_classifier(path)
    assert loaded.arch == "test_vmamba" and loaded.weights == "state_dict" and loaded.model.num_classes == 4
    assert loaded.meta["class_names"] == ["a", "b", "c", "d"] and "state_dict" not in loaded.meta
    assert "state_dict" not in loaded.model.pretrained_cfg  # the overlay's copy of the weights is not kept
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v), k
    with pytest.raises(ValueError, match="holds a test_vmamba, not a test_vim"):
        load_classifier(path, "test_vim")
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(ValueError, match="name its model"):
        load_classifier(tmp_path / "bare.pth")
    assert load_classifier(tmp_path / "bare.pth", "test_vmamba", num_classes=4).weights == ""


def test_fixed_size_models_are_rebuilt_for_another_resolution(tmp_path: Path) -> None:
    torch.save({"model": timm.create_model("test_vim").state_dict()}, tmp_path / "vim.pth")
    loaded = load_classifier(tmp_path / "vim.pth", "test_vim", img_size=96)
    assert tuple(loaded.model.patch_embed.img_size) == (96, 96)
    assert loaded.model(torch.randn(1, 3, 96, 96)).shape == (1, 1000)
    with pytest.raises(ValueError, match="smaller than the model's stride"):
        load_classifier(tmp_path / "vim.pth", "test_vim", img_size=8)

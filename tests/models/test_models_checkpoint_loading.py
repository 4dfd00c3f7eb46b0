"""One checkpoint-loading story for every family (`vssm.models._checkpoint`): every `checkpoint_filter_fn` takes the
model weights of a training checkpoint, never its EMA copy, refuses an EMA-only checkpoint with a message saying how
to ask for EMA weights, and strips the wrapper prefixes of DDP and torch.compile. Every loading path (timm's
`pretrained_cfg_overlay=dict(file=...)`, `read_checkpoint` and what it serves) refuses a broken file with one error
naming it and what is wrong with it, and warns once of NaN / inf weights; a checkpoint of another family is named."""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from vssm.checkpoints import load_classifier, read_checkpoint, select_weights
from vssm.models import groupmamba, localmamba, mambavision, msvmamba, plainmamba, umamba, vim, vmamba
from vssm.models._checkpoint import checkpoint_family

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

FILTERS = {
    "test_vim": vim.checkpoint_filter_fn,
    "test_vmamba": vmamba.checkpoint_filter_fn,
    "test_local_vim": localmamba.checkpoint_filter_fn,
    "test_local_vssm": localmamba.checkpoint_filter_fn,
    "test_mambavision": mambavision.checkpoint_filter_fn,
    "test_umamba_bot_2d": umamba.checkpoint_filter_fn,
    "test_msvmamba": msvmamba.checkpoint_filter_fn,
    "test_plainmamba": plainmamba.checkpoint_filter_fn,
    "test_groupmamba": groupmamba.checkpoint_filter_fn,
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


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda keys: "+".join(keys))
@pytest.mark.parametrize("name", FILTERS)
def test_timms_file_path_reads_like_every_other(tmp_path: Path, name: str, layout: tuple[str, str]) -> None:
    """`pretrained_cfg_overlay=dict(file=...)` goes through `read_checkpoint` and the filter: the model weights of a
    training checkpoint (timm's own reader would take the EMA copy), and the config keeps no copy of them."""
    weights = timm.create_model(name).state_dict()
    model_key, ema_key = layout
    path = tmp_path / "checkpoint.pth"
    torch.save({model_key: weights, ema_key: _shifted(weights), "epoch": 3}, path)
    model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert model.pretrained_cfg["file"] == str(path) and "state_dict" not in model.pretrained_cfg
    features = timm.create_model(name, pretrained=True, features_only=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert not any("state_dict" in (getattr(m, "pretrained_cfg", None) or {}) for m in features.modules())


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


# ------------------------------------------------------------------------------------------------ broken files


def _timm_file(name: str, **overlay: object) -> Callable[[Path], object]:
    return lambda path: timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path), **overlay))


# Every way a file is read: timm's pretrained file for each family, VMamba's own loader (custom_load), and
# read_checkpoint with the loaders it serves.
LOADERS = {
    "read_checkpoint": read_checkpoint,
    **{f"timm-{name}": _timm_file(name) for name in FILTERS},
    "timm-test_vmamba-custom_load": _timm_file("test_vmamba", custom_load=True),
    "load_classifier": lambda path: load_classifier(path, model_name="test_vim"),
    "from_nnunet_checkpoint": lambda path: umamba.UMamba.from_nnunet_checkpoint(path, placement="bot"),
}


def _write_broken(kind: str, folder: Path) -> Path:
    """A file of `kind` (a key of BROKEN) in folder."""
    if kind == "missing":
        return folder / "missing.pth"
    path = folder / ("cut.safetensors" if kind == "truncated-safetensors" else "broken.pth")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":  # what a failed download saves
        path.write_text("<!DOCTYPE html><html>rate limited</html>")
    elif kind == "list":
        torch.save([torch.randn(2)], path)
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"w": [0.5]}))
    elif kind == "truncated-zip":
        torch.save({"w": torch.randn(4096)}, path)
    else:
        save_file({"w": torch.randn(4096)}, path)
    if kind.startswith("truncated"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


# kind -> (the error, what its message says after "checkpoint PATH: ").
BROKEN = {
    "missing": (FileNotFoundError, "no such file"),
    "empty": (ValueError, "the file is empty"),
    "text": (ValueError, "not a PyTorch checkpoint: neither a torch.save archive nor a pickle (it starts with b'<!DOC"),
    "list": (ValueError, "expected a dict (a state dict or a training checkpoint), got list"),
    "pickle": (ValueError, "a Python pickle, not a torch.save checkpoint"),
    "truncated-zip": (ValueError, "a damaged or truncated torch.save archive"),
    "truncated-safetensors": (ValueError, "not a readable safetensors file, truncated or damaged"),
}


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_file_is_one_error_naming_it_and_its_fault(tmp_path: Path, kind: str, loader: str) -> None:
    error, fault = BROKEN[kind]
    path = _write_broken(kind, tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Detected pickle protocol")  # torch's note on the plain pickle
        with pytest.raises(error, match="^" + re.escape(f"checkpoint {path}: {fault}")):
            LOADERS[loader](path)


# ------------------------------------------------------------------------------------------------ NaN / inf


def _with_non_finite(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """state_dict with one NaN in its first float tensor and one inf in each of the next four; their keys."""
    keys = [k for k, v in state_dict.items() if v.is_floating_point()][:5]
    out = dict(state_dict)
    for key, value in zip(keys, (float("nan"), *[float("inf")] * 4)):
        out[key] = out[key].clone()
        out[key].view(-1)[0] = value
    return out, keys


# loader -> the model whose weights its file holds
NON_FINITE_LOADERS = {name: name.removeprefix("timm-").removesuffix("-custom_load") for name in LOADERS
                      if name.startswith("timm-")}
NON_FINITE_LOADERS.update({"read_checkpoint": "test_vim", "load_classifier": "test_vim"})


@pytest.mark.parametrize("loader", NON_FINITE_LOADERS)
def test_non_finite_weights_warn_once_naming_them(tmp_path: Path, loader: str) -> None:
    weights, keys = _with_non_finite(timm.create_model(NON_FINITE_LOADERS[loader]).state_dict())
    path = tmp_path / "nan.pth"
    torch.save({"model": weights, "epoch": 3}, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LOADERS[loader](path)
    found = [str(w.message) for w in caught if "NaN or inf" in str(w.message)]
    shown = ", ".join(f"model.{k}" for k in keys[:3])
    assert found == [f"checkpoint {path}: 5 tensor(s) hold NaN or inf values: {shown} and 2 more"]


def test_non_finite_optimizer_state_is_named_too(tmp_path: Path) -> None:
    path = tmp_path / "last.pth"
    optimizer = {"state": {0: {"exp_avg": torch.tensor([1.0, float("inf")])}}}
    torch.save({"state_dict": {"w": torch.randn(3)}, "optimizer": optimizer}, path)
    with pytest.warns(UserWarning, match=re.escape(": 1 tensor(s) hold NaN or inf values: optimizer.state.0.exp_avg")):
        read_checkpoint(path)


def test_finite_checkpoints_load_without_a_word(tmp_path: Path) -> None:
    path = tmp_path / "ok.pth"
    torch.save({"model": timm.create_model("test_vim").state_dict()}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _timm_file("test_vim")(path)


# ------------------------------------------------------------------------------------------------ another family


# The original code's checkpoints of each family (the golden fixtures) and the family they are.
ORIGINALS = {
    "vim_test": "Vim",
    "vmamba_test_s1l8": "VMamba",
    "local_vim_test": "LocalVim",
    "local_vssm_test": "LocalVMamba",
    "mambavision_test": "MambaVision",
    "umamba_bot_2d_test": "U-Mamba",
    "umamba_enc_2d_test": "U-Mamba",
    "msvmamba_test": "MSVMamba",
    "plainmamba_test": "PlainMamba",
    "groupmamba_test": "GroupMamba",
}
FAMILIES = {"test_vim": "Vim", "test_vmamba": "VMamba", "test_local_vim": "LocalVim", "test_local_vssm": "LocalVMamba",
            "test_mambavision": "MambaVision", "test_umamba_bot_2d": "U-Mamba", "test_msvmamba": "MSVMamba",
            "test_plainmamba": "PlainMamba", "test_groupmamba": "GroupMamba"}


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    return {name: timm.create_model(name) for name in FILTERS}


def _original(fixture: str) -> dict:
    return read_checkpoint(FIXTURES / fixture / "state_dict.pt")


@pytest.mark.parametrize("fixture", ORIGINALS)
def test_the_family_of_each_original_checkpoint_is_told_by_its_keys(fixture: str) -> None:
    assert checkpoint_family(select_weights(_original(fixture))[0]) == ORIGINALS[fixture]


@pytest.mark.parametrize("name", FILTERS)
def test_the_family_of_our_state_dicts_is_told_by_their_keys(name: str, models: dict) -> None:
    assert checkpoint_family(models[name].state_dict()) == FAMILIES[name]


@pytest.mark.parametrize(("name", "fixture"), [(name, fixture) for name in FILTERS for fixture in ORIGINALS
                                               if FAMILIES[name] != ORIGINALS[fixture]])
def test_another_familys_checkpoint_is_named_as_such(name: str, fixture: str, models: dict) -> None:
    with pytest.raises(ValueError, match=re.escape(f"a {ORIGINALS[fixture]} checkpoint")) as info:
        FILTERS[name](_original(fixture), models[name])
    assert "early no-class-token" not in str(info.value)

"""tools/eval_imagenet.py end to end: the originals' checkpoint formats against a hand computation over the model's
logits, the printed preprocessing against the originals' evaluation settings, and bad input."""

from __future__ import annotations

import argparse
import csv
import fractions
import json
import math
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from cls_tool_helpers import single_thread, write_image, write_image_folder
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, ImageNetInfo
from tool_modules import load_tool
from torchvision import transforms
from yacs.config import CfgNode

import vssm  # noqa: F401

eval_tool = load_tool("eval_imagenet")
pytestmark = pytest.mark.usefixtures(single_thread.__name__)

SYNSETS = ImageNetInfo().label_names()
# A subset of ImageNet's classes (labels 3, 7 and 9, not 0-2): synset folders must keep ImageNet-1k's label numbers.
CLASSES = {SYNSETS[3]: 3, SYNSETS[7]: 7, SYNSETS[9]: 9}
ORIGINALS_EVAL = ("Resize(size=256, interpolation=bicubic) -> CenterCrop(size=[224, 224]) -> MaybeToTensor() -> "
                  "Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])")


@pytest.fixture(scope="module")
def val_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("val")
    write_image_folder(root, list(CLASSES), per_class=4, seed=1)
    return root


def _hand_preprocess(items: list[tuple[Path, int]], size: int, crop_pct: float) -> torch.Tensor:
    """The originals' evaluation preprocessing written out with torchvision: shorter side to floor(size / crop_pct),
    bicubic; center crop; ImageNet mean/std. -> (N, 3, size, size)."""
    pipeline = transforms.Compose([
        transforms.Resize(math.floor(size / crop_pct), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
    ])
    return torch.stack([pipeline(Image.open(path).convert("RGB")) for path, _ in items])


def _weights(name: str, seed: int, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Random weights with a unit-normal classifier, centred on the mean feature of `images` (which random networks
    give every image alike), plus a bias lifting 6 classes (3, 7, 9: the labels, and 10-12) equally above the rest:
    the predictions vary between images among those 6, so top-1 (chance 1/6) and top-5 (5/6) are informative."""
    torch.manual_seed(seed)
    model = timm.create_model(name).eval()
    with torch.no_grad():
        mean_feature = model.forward_head(model.forward_features(images), pre_logits=True).mean(0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    head = model.pretrained_cfg["classifier"]
    weight = torch.randn_like(state[f"{head}.weight"])
    state[f"{head}.weight"] = weight
    state[f"{head}.bias"] = -weight @ mean_feature
    state[f"{head}.bias"][[3, 7, 9, 10, 11, 12]] += 1000.0
    return state


def _official_checkpoint(family: str, model: dict, ema: dict) -> dict:
    """The originals' training-checkpoint layouts (Vim: DeiT's main.py; VMamba: Swin's utils.py; MambaVision: timm's
    train.py with a DDP prefix), with the config objects they pickle."""
    if family == "vim":
        return {"model": model, "model_ema": ema, "optimizer": {"state": {}, "param_groups": []}, "epoch": 299,
                "scaler": {}, "args": argparse.Namespace(model="vim_small_patch16", lr=5e-4, model_ema=True)}
    if family == "vmamba":
        config = CfgNode({"MODEL": CfgNode({"TYPE": "vssm", "NUM_CLASSES": 1000}), "AMP_ENABLE": True})
        return {"model": model, "model_ema": ema, "optimizer": {}, "lr_scheduler": {}, "max_accuracy": 82.5,
                "max_accuray_ema": 82.6, "epoch": 264, "config": config}
    return {"state_dict": {f"module.{k}": v for k, v in model.items()}, "state_dict_ema": ema, "epoch": 300,
            "arch": "mamba_vision_T", "args": argparse.Namespace(model="mamba_vision_T", amp=True)}


def _hand_metrics(name: str, state: dict, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """top-1 / top-5 (%) and mean cross-entropy computed from the model's logits for the hand-preprocessed images."""
    model = timm.create_model(name)
    model.load_state_dict(state)
    with torch.no_grad():
        logits = model.eval()(images)
    top5 = logits.topk(5, dim=1).indices
    assert len(set(top5[:, 0].tolist())) > 1, "the test's logits should not predict one class for every image"
    return {
        "top1": 100.0 * (top5[:, 0] == labels).float().mean().item(),
        "top5": 100.0 * (top5 == labels[:, None]).any(dim=1).float().mean().item(),
        "loss": F.cross_entropy(logits, labels).item(),
    }


@pytest.mark.parametrize(("family", "name", "size", "crop_pct"), [
    ("vim", "test_vim", 64, 1.0),
    ("vmamba", "test_vmamba", 64, 0.875),
    ("mambavision", "test_mambavision", 96, 1.0),
])
def test_official_checkpoint_matches_hand_computation(family: str, name: str, size: int, crop_pct: float,
                                                      val_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    items = [(p, CLASSES[p.parent.name]) for p in sorted(val_dir.rglob("img_*"))]
    images, labels = _hand_preprocess(items, size, crop_pct), torch.tensor([label for _, label in items])
    model, ema = _weights(name, 0, images), _weights(name, 1, images)
    path = tmp_path / f"{family}.pth"
    torch.save(_official_checkpoint(family, model, ema), path)
    for weights, state in (("model", model), ("EMA", ema)):
        out_json, out_csv = tmp_path / f"{weights}.json", tmp_path / f"{weights}.csv"
        argv = ["--model", name, "--checkpoint", str(path), "--data", str(val_dir), "--batch-size", "5",
                "--workers", "0", "--device", "cpu", "--no-progress", "--json", str(out_json), "--csv", str(out_csv)]
        assert eval_tool.main(argv + (["--ema"] if weights == "EMA" else [])) == 0
        printed = capsys.readouterr().out
        expected = _hand_metrics(name, state, images, labels)
        result = json.loads(out_json.read_text())
        assert result["images"] == len(items) == 12 and result["classes"] == 1000
        assert result["top1"] == pytest.approx(expected["top1"], abs=1e-3)
        assert result["top5"] == pytest.approx(expected["top5"], abs=1e-3)
        assert result["loss"] == pytest.approx(expected["loss"], abs=1e-4)
        assert result["weights"] == ({"model": "model", "EMA": "model_ema"} if family != "mambavision" else
                                     {"model": "state_dict", "EMA": "state_dict_ema"})[weights]
        row = next(csv.DictReader(out_csv.open()))
        assert float(row["top1"]) == result["top1"] and int(row["images"]) == 12
        assert f"preprocessing: {row['preprocessing']}\n" in printed
        assert f" {result['top1']} |" in printed and f"weights: {result['weights']}" in printed
        steps = result["preprocessing"]["steps"]
        assert steps[0] == {"op": "Resize", "size": math.floor(size / crop_pct), "interpolation": "bicubic"}
        assert steps[1] == {"op": "CenterCrop", "size": [size, size]}


def _printed_preprocessing(capsys: pytest.CaptureFixture, *argv: str) -> str:
    assert eval_tool.main([*argv, "--print-preprocessing"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return next(line for line in lines if line.startswith("preprocessing: ")).removeprefix("preprocessing: ")


@pytest.mark.parametrize("name", ["vim_small", "vmamba_tiny"])
def test_printed_preprocessing_is_the_originals(name: str, capsys: pytest.CaptureFixture) -> None:
    """Vim (DeiT's main.py) and VMamba (Swin's build_transform): resize the shorter side to 256 bicubic, center crop
    224, ImageNet mean/std (vim.md, vmamba.md section 5)."""
    assert _printed_preprocessing(capsys, "--model", name) == ORIGINALS_EVAL


def test_preprocessing_overrides(capsys: pytest.CaptureFixture) -> None:
    printed = _printed_preprocessing(capsys, "--model", "vmamba_tiny", "--img-size", "160", "--crop-pct", "0.9",
                                     "--interpolation", "bilinear")
    assert printed.startswith("Resize(size=177, interpolation=bilinear) -> CenterCrop(size=[160, 160])")
    # a fixed-size model (Vim) is rebuilt for the new resolution rather than refused
    assert "CenterCrop(size=[160, 160])" in _printed_preprocessing(capsys, "--model", "vim_small", "--img-size", "160")
    assert _printed_preprocessing(capsys, "--model", "mambavision_tiny").startswith(
        "Resize(size=224, interpolation=bicubic) -> CenterCrop(size=[224, 224])")  # MambaVision-T: crop_pct 1.0


# ------------------------------------------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "test_vmamba.pth"
    torch.save(timm.create_model("test_vmamba").state_dict(), path)
    return path


def _fails(capsys: pytest.CaptureFixture, *argv: str) -> str:
    assert eval_tool.main([*argv, "--workers", "0", "--device", "cpu", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def _eval(checkpoint: Path, data: Path, *extra: str) -> list[str]:
    return ["--model", "test_vmamba", "--checkpoint", str(checkpoint), "--data", str(data), *extra]


def test_bad_data_directories_name_the_expected_layout(checkpoint: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    layout = "one sub-folder of images per class"
    err = _fails(capsys, *_eval(checkpoint, tmp_path / "missing"))
    assert "no such directory" in err and layout in err
    (tmp_path / "empty").mkdir()
    err = _fails(capsys, *_eval(checkpoint, tmp_path / "empty"))
    assert "empty (no class sub-folders)" in err and layout in err
    flat = tmp_path / "flat"
    write_image(flat / "a.png", (32, 32), np.random.default_rng(0))
    err = _fails(capsys, *_eval(checkpoint, flat))
    assert "found images directly in it (a.png)" in err and layout in err
    (tmp_path / "hollow" / "cat").mkdir(parents=True)
    (tmp_path / "hollow" / "cat" / "notes.txt").write_text("no images here")
    err = _fails(capsys, *_eval(checkpoint, tmp_path / "hollow"))
    assert "class folders without images: ['cat']" in err
    listing = tmp_path / "val.txt"
    listing.write_text("a.png 0\nb.png\n")
    err = _fails(capsys, *_eval(checkpoint, listing))
    assert "line 2: expected '<image path> <integer label>', got 'b.png'" in err


def _with_corrupt_images(root: Path) -> list[Path]:
    write_image_folder(root, ["n01440764", "n01443537"], per_class=3, seed=2)
    truncated = root / "n01440764" / "truncated.JPEG"
    truncated.write_bytes((root / "n01440764" / "img_1.JPEG").read_bytes()[:200])
    not_an_image = root / "n01443537" / "text.png"
    not_an_image.write_text("this is not a PNG")
    return [truncated, not_an_image]


def test_corrupt_images_fail_by_default_naming_the_path(checkpoint: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    corrupt = _with_corrupt_images(tmp_path / "val")
    err = _fails(capsys, *_eval(checkpoint, tmp_path / "val"))
    assert f"cannot read image {corrupt[0]}" in err and "--bad-images skip" in err


def test_corrupt_images_are_skipped_and_reported_by_flag(checkpoint: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    corrupt = _with_corrupt_images(tmp_path / "val")
    out_json = tmp_path / "result.json"
    argv = _eval(checkpoint, tmp_path / "val", "--bad-images", "skip", "--workers", "2", "--batch-size", "4",
                 "--device", "cpu", "--json", str(out_json))
    assert eval_tool.main(argv) == 0
    printed = capsys.readouterr()
    result = json.loads(out_json.read_text())
    assert result["images"] == 6 and result["skipped"] == 2
    assert sorted(s["path"] for s in result["skipped_images"]) == sorted(map(str, corrupt))
    for path in corrupt:
        assert f"skipped: {path}" in printed.out


def test_bad_checkpoints_and_models_are_explained(checkpoint: Path, val_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    err = _fails(capsys, *_eval(tmp_path / "nope.pth", val_dir))
    assert "nope.pth: no such file" in err
    err = _fails(capsys, *_eval(checkpoint, val_dir, "--ema"))
    assert "no EMA weights: expected one of ['model_ema', 'state_dict_ema', 'ema_model']" in err
    err = _fails(capsys, "--model", "test_mambavision", "--checkpoint", str(checkpoint), "--data", str(val_dir))
    assert "does not fit test_mambavision" in err
    err = _fails(capsys, "--model", "test_vim", "--checkpoint", str(checkpoint), "--data", str(val_dir))
    assert "test_vim" in err and "looks like a VMamba checkpoint" in err
    err = _fails(capsys, "--model", "test_vmambaa", "--checkpoint", str(checkpoint), "--data", str(val_dir))
    assert "did you mean test_vmamba" in err
    pickled = tmp_path / "pickled.pth"
    torch.save({"model": timm.create_model("test_vmamba").state_dict(), "extra": fractions.Fraction(1, 3)}, pickled)
    err = _fails(capsys, *_eval(pickled, val_dir))
    assert "holds objects other than tensors" in err and "fractions.Fraction" in err
    ten_classes = tmp_path / "ten.pth"
    torch.save(timm.create_model("test_vmamba", num_classes=10).state_dict(), ten_classes)
    err = _fails(capsys, *_eval(ten_classes, val_dir))
    assert "does not fit test_vmamba with 1000 classes" in err and "size mismatch" in err

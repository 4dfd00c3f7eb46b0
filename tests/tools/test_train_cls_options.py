"""train_cls.py's options on a tiny digits set (80 training images, one or two epochs): the full augmentation recipe
with AMP / clipping / gradient checkpointing / channels-last, our checkpoint format, resuming an interrupted run,
the torchrun code path with a world of one, and bad input."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cls_tool_helpers import single_thread
from tool_modules import TOOLS, load_tool

from vssm.checkpoints import VSSM_FORMAT, read_checkpoint
from vssm.engine import distributed

train_tool = load_tool("train_cls")
eval_tool = load_tool("eval_imagenet")
demo_tool = load_tool("make_demo_data")
pytestmark = pytest.mark.usefixtures(single_thread.__name__)

QUICK = ["--model", "test_vmamba", "--img-size", "32", "--batch-size", "16", "--lr", "1e-3", "--warmup-epochs", "1",
         "--device", "cpu", "--workers", "0", "--no-progress"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits_small")
    assert demo_tool.main([str(root), "--size", "32", "--per-class", "10"]) == 0
    return root


def _log(output: Path) -> list[dict[str, str]]:
    return list(csv.DictReader((output / "log.csv").open()))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_epochs_are_numbered_from_one_in_progress_bars_and_log_lines(digits: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    argv = [a for a in QUICK if a != "--no-progress"]
    assert train_tool.main([*argv, "--epochs", "2", "--model-ema", "--data", str(digits), "--output",
                            str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    bars = {line.split(":")[0].strip() for line in captured.err.replace("\r", "\n").splitlines() if "batch" in line}
    assert bars == {"train epoch 1/2", "train epoch 2/2", "val epoch 1/2", "val epoch 2/2", "val ema epoch 1/2",
                    "val ema epoch 2/2"}
    log_lines = [line for line in captured.out.splitlines() if " train_loss " in line]
    assert [line.split(" lr ")[0] for line in log_lines] == ["epoch 1/2", "epoch 2/2"]
    assert "final evaluation after epoch 2/2 (20 images):" in captured.out
    assert [row["epoch"] for row in _log(tmp_path / "run")] == ["1", "2"]


def test_resuming_a_finished_run_changes_nothing(digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """'--resume auto' on a run that reached --epochs says so in one line and leaves every file as it was (it used
    to overwrite summary.json's final metrics with {})."""
    output = tmp_path / "run"
    argv = [*QUICK, "--epochs", "1", "--data", str(digits), "--output", str(output), "--resume", "auto"]
    assert train_tool.main(argv) == 0
    before = _files(output)
    assert json.loads(before["summary.json"])["final"]["top1"] >= 0
    capsys.readouterr()
    assert train_tool.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{output / 'last.pth'}: already trained 1 epochs (--epochs 1); nothing to do, no file changed"]
    assert _files(output) == before
    assert train_tool.main([*argv, "--seed", "1"]) == 0  # other arguments: args.json stays the finished run's too
    assert _files(output) == before


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_full_recipe_with_amp_clipping_checkpointing_channels_last(amp: str, digits: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """The defaults (Mixup 0.8 / CutMix 1.0, label smoothing, RandAugment-like m9, random erasing) plus the options
    that change the step; the checkpoint is our weights-only format."""
    output = tmp_path / "run"
    argv = [*QUICK, "--epochs", "1", "--amp", amp, "--clip-grad", "1.0", "--grad-checkpointing", "--channels-last",
            "--model-ema", "--data", str(digits), "--output", str(output)]
    assert train_tool.main(argv) == 0
    printed = capsys.readouterr().out
    assert "rand_ops=2, rand_magnitude=9.0, erase_prob=0.25" in printed and f", {amp}" in printed
    (row,) = _log(output)
    assert math.isfinite(float(row["train_loss"])) and int(row["train_images"]) == 80
    checkpoint = read_checkpoint(output / "last.pth")
    assert checkpoint["format"] == VSSM_FORMAT and checkpoint["arch"] == "test_vmamba"
    assert checkpoint["class_names"] == [str(d) for d in range(10)] and checkpoint["num_classes"] == 10
    assert checkpoint["data_config"]["input_size"] == [3, 32, 32]
    assert {"state_dict", "state_dict_ema", "optimizer", "epoch", "num_updates", "args"} <= set(checkpoint)
    assert ("scaler" in checkpoint) == (amp == "fp16")
    assert checkpoint["epoch"] == 1 and checkpoint["num_updates"] == 5


def test_resume_continues_an_interrupted_run(digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    """A run stopped after its first epoch and resumed ('--resume auto') follows the same schedule as one that ran
    through."""
    argv = [*QUICK, "--epochs", "3", "--mixup", "0", "--cutmix", "0", "--data", str(digits)]
    assert train_tool.main([*argv, "--output", str(tmp_path / "straight")]) == 0

    real_epoch, calls = train_tool.train_one_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_tool, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_tool.main([*argv, "--output", str(tmp_path / "resumed")])
    monkeypatch.setattr(train_tool, "train_one_epoch", real_epoch)
    assert [row["epoch"] for row in _log(tmp_path / "resumed")] == ["1"]
    capsys.readouterr()
    assert train_tool.main([*argv, "--output", str(tmp_path / "resumed"), "--resume", "auto"]) == 0
    printed = capsys.readouterr().out
    assert (f"resumed from {tmp_path / 'resumed' / 'last.pth'}: epoch 1/3 done (5 updates), continuing with epoch 2/3"
            in printed.splitlines())

    straight, resumed = _log(tmp_path / "straight"), _log(tmp_path / "resumed")
    assert [row["epoch"] for row in resumed] == ["1", "2", "3"]
    assert [row["lr"] for row in resumed] == [row["lr"] for row in straight]
    checkpoint = read_checkpoint(tmp_path / "resumed" / "last.pth")
    assert checkpoint["epoch"] == 3 and checkpoint["num_updates"] == 15


def test_torchrun_code_path_with_a_world_of_one(digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    """What torchrun --nproc_per_node 1 sets up: a gloo process group, DDP, sharded evaluation."""
    joined = []
    real_init = distributed.dist.init_process_group

    def init(*args, **kwargs):
        joined.append(kwargs)
        return real_init(*args, **kwargs)

    monkeypatch.setattr(distributed.dist, "init_process_group", init)
    for key, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(29500 + torch.randint(0, 2000, ()).item())}.items():
        monkeypatch.setenv(key, value)
    output = tmp_path / "ddp"
    assert train_tool.main([*QUICK, "--epochs", "1", "--data", str(digits), "--output", str(output)]) == 0
    assert eval_tool.main(["--checkpoint", str(output / "last.pth"), "--data", str(digits / "val"), "--workers",
                           "0", "--device", "cpu", "--no-progress", "--json", str(tmp_path / "ddp.json")]) == 0
    assert [kw["backend"] for kw in joined] == ["gloo", "gloo"]
    assert not torch.distributed.is_initialized()
    checkpoint = read_checkpoint(output / "last.pth")
    assert not any(k.startswith("module.") for k in checkpoint["state_dict"])  # saved without the DDP wrapper
    monkeypatch.delenv("WORLD_SIZE")
    assert eval_tool.main(["--checkpoint", str(output / "last.pth"), "--data", str(digits / "val"), "--workers",
                           "0", "--device", "cpu", "--no-progress", "--json", str(tmp_path / "single.json")]) == 0
    capsys.readouterr()
    sharded, single = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("ddp", "single"))
    assert (sharded["top1"], sharded["loss"], sharded["images"]) == (single["top1"], single["loss"], single["images"])


@pytest.mark.slow
def test_torchrun_two_processes(digits: Path, tmp_path: Path) -> None:
    """Real torchrun with two CPU processes: the ranks train on halves of each epoch, and the sharded evaluation of
    the checkpoint equals a single-process one."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    output = tmp_path / "ddp2"
    subprocess.run([*launch, str(TOOLS / "train_cls.py"), *QUICK, "--epochs", "1", "--batch-size", "8", "--data",
                    str(digits), "--output", str(output)], env=env, check=True, timeout=900)
    (row,) = _log(output)
    assert row["train_images"] == "80"  # 2 ranks x 5 batches x 8
    evaluate = [str(TOOLS / "eval_imagenet.py"), "--checkpoint", str(output / "last.pth"), "--data",
                str(digits / "val"), "--batch-size", "3", "--workers", "0", "--device", "cpu", "--no-progress"]
    subprocess.run([*launch, *evaluate, "--json", str(tmp_path / "two.json")], env=env, check=True, timeout=900)
    subprocess.run([sys.executable, *evaluate, "--json", str(tmp_path / "one.json")], env=env, check=True,
                   timeout=900)
    two, one = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("two", "one"))
    assert two["images"] == one["images"] == 20
    assert (two["top1"], two["top5"]) == (one["top1"], one["top5"]) and two["loss"] == pytest.approx(one["loss"])


def _fails(capsys: pytest.CaptureFixture, *argv: str) -> str:
    assert train_tool.main([*QUICK, "--epochs", "1", *argv]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_bad_input_is_explained(digits: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = ["--output", str(tmp_path / "out")]
    err = _fails(capsys, "--data", str(tmp_path), *out)
    assert f"{tmp_path / 'train'}: no such directory" in err and "one sub-folder of images per class" in err
    err = _fails(capsys, "--data", str(digits), "--batch-size", "100", *out)
    assert "80 images, fewer than one batch of 100" in err
    extra = tmp_path / "val_extra"
    (extra / "7").mkdir(parents=True)
    (extra / "7" / "a.png").write_bytes((next((digits / "val" / "7").iterdir())).read_bytes())
    (extra / "letter_a").mkdir()
    (extra / "letter_a" / "a.png").write_bytes((extra / "7" / "a.png").read_bytes())
    err = _fails(capsys, "--train", str(digits / "train"), "--val", str(extra), *out)
    assert "class folders ['letter_a'] are not among the model's 10 classes" in err
    err = _fails(capsys, "--data", str(digits), "--model-kwargs", "=3", *out)
    assert "--model-kwargs: expected KEY=VALUE, got '=3'" in err
    err = _fails(capsys, "--data", str(digits), "--model-kwargs", "bogus=1", *out)
    assert "test_vmamba: cannot be built with" in err and "bogus" in err
    foreign = tmp_path / "foreign.pth"
    torch.save({"model": {}}, foreign)
    err = _fails(capsys, "--data", str(digits), "--resume", str(foreign), *out)
    assert "not a train_cls.py checkpoint" in err


def test_unreadable_training_images_fail_or_are_skipped(digits: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    train = tmp_path / "train"
    for image in (digits / "train").rglob("*.png"):
        (train / image.parent.name).mkdir(parents=True, exist_ok=True)
        (train / image.parent.name / image.name).write_bytes(image.read_bytes())
    broken = train / "3" / "broken.png"
    broken.write_bytes(b"")
    argv = ["--train", str(train), "--val", str(digits / "val"), "--output", str(tmp_path / "out")]
    err = _fails(capsys, *argv)
    assert f"cannot read image {broken}" in err
    assert train_tool.main([*QUICK, "--epochs", "1", *argv, "--bad-images", "skip"]) == 0
    assert f"skipped unreadable image {broken}" in capsys.readouterr().err
    (row,) = _log(tmp_path / "out")
    assert row["skipped"] == "1"

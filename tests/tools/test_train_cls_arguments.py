"""train_cls.py's command line, parsed without training: every numeric option is range-checked by argparse (one
`error: argument --x: expected ..., got ...` line, exit 2), --workers follows the machine, --amp is `{bf16,fp16}`;
and the engine's step refuses a clipping threshold that would flip the gradients."""

from __future__ import annotations

import argparse
import os

import pytest
from tool_modules import load_tool

from vssm.engine import Precision, Range, StepOptions

train_tool = load_tool("train_cls")
REQUIRED = ["--model", "test_vmamba", "--data", "data", "--output", "out"]

# A value out of each numeric option's range, and what the error says is expected.
OUT_OF_RANGE = {
    "--drop-path": ("1.5", "a number in [0, 1)"),
    "--img-size": ("0", "an integer >= 1"),
    "--eval-crop-pct": ("0", "a number in (0, 1]"),
    "--batch-size": ("0", "an integer >= 1"),
    "--val-batch-size": ("-2", "an integer >= 1"),
    "--workers": ("-1", "an integer >= 0"),
    "--hflip": ("1.5", "a number in [0, 1]"),
    "--color-jitter": ("-0.1", "a number >= 0"),
    "--rand-ops": ("-1", "an integer >= 0"),
    "--rand-magnitude": ("11", "a number in [0, 10]"),
    "--reprob": ("-0.25", "a number in [0, 1]"),
    "--mixup": ("-1", "a number >= 0"),
    "--cutmix": ("-1", "a number >= 0"),
    "--mixup-prob": ("2", "a number in [0, 1]"),
    "--mixup-switch-prob": ("-0.5", "a number in [0, 1]"),
    "--smoothing": ("2", "a number in [0, 1)"),
    "--lr": ("0", "a number > 0"),
    "--weight-decay": ("-0.05", "a number >= 0"),
    "--momentum": ("1.1", "a number in [0, 1]"),
    "--clip-grad": ("-1", "a number > 0"),
    "--epochs": ("0", "an integer >= 1"),
    "--warmup-epochs": ("-1", "an integer >= 0"),
    "--warmup-lr": ("-0.001", "a number >= 0"),
    "--min-lr": ("-0.001", "a number >= 0"),
    "--cooldown-epochs": ("-1", "an integer >= 0"),
    "--model-ema-decay": ("5", "a number in [0, 1]"),
    "--seed": ("-1", "an integer in [0, 2147483647]"),
    "--eval-every": ("0", "an integer >= 1"),
}
PAIRS = {"--scale": ("0", "a number in (0, 1]"), "--ratio": ("-1", "a number > 0")}  # nargs=2: MIN MAX


def _error(capsys: pytest.CaptureFixture, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        train_tool.parse_args([*REQUIRED, *argv])
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("option", sorted(OUT_OF_RANGE))
def test_each_numeric_option_is_range_checked(option: str, capsys: pytest.CaptureFixture) -> None:
    bad, expected = OUT_OF_RANGE[option]
    assert _error(capsys, option, bad).endswith(f"error: argument {option}: expected {expected}, got {bad}")
    # not a number, or (for a float) not finite: the same line
    if expected.startswith("a number"):
        assert _error(capsys, option, "nan").endswith(f"error: argument {option}: expected {expected}, got nan")
    assert _error(capsys, option, "x").endswith(f"error: argument {option}: expected {expected}, got 'x'")


@pytest.mark.parametrize("option", sorted(PAIRS))
def test_range_pairs_are_checked_each_and_in_order(option: str, capsys: pytest.CaptureFixture) -> None:
    bad, expected = PAIRS[option]
    assert _error(capsys, option, bad, "1").endswith(f"error: argument {option}: expected {expected}, got {bad}")
    assert _error(capsys, option, "0.9", "0.5").endswith(f"error: argument {option}: expected MIN <= MAX, got 0.9 0.5")


def test_every_numeric_option_has_a_range_and_a_test() -> None:
    numeric = {}
    for action in train_tool.build_parser()._actions:
        option = action.option_strings[-1] if action.option_strings else action.dest
        assert action.type not in (int, float), f"{option}: a bare {action.type.__name__}, no range check"
        if isinstance(action.type, Range):
            numeric[option] = action.type
    assert set(numeric) == set(OUT_OF_RANGE) | set(PAIRS)


def test_values_on_the_bounds_are_accepted() -> None:
    args = train_tool.parse_args([*REQUIRED, "--drop-path", "0", "--smoothing", "0", "--hflip", "1", "--reprob", "0",
                                  "--mixup", "0", "--model-ema-decay", "1", "--clip-grad", "0.5", "--warmup-epochs",
                                  "0", "--workers", "0", "--scale", "1", "1", "--rand-magnitude", "10"])
    assert (args.drop_path, args.smoothing, args.hflip, args.model_ema_decay, args.clip_grad) == (0, 0, 1, 1, 0.5)
    assert (args.warmup_epochs, args.workers, args.scale, args.rand_magnitude) == (0, 0, [1, 1], 10)
    assert isinstance(args.warmup_epochs, int) and isinstance(args.drop_path, float)


@pytest.mark.parametrize(("cpus", "local_processes", "expected"), [(64, None, 8), (16, "4", 4), (2, None, 2),
                                                                     (4, "8", 0)])
def test_workers_default_to_the_cpus_this_process_has(cpus: int, local_processes: str | None, expected: int,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    if local_processes is None:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_processes)
    assert train_tool.parse_args(REQUIRED).workers == expected
    with pytest.raises(SystemExit):
        train_tool.parse_args(["--help"])
    assert f"default here: {expected}," in " ".join(capsys.readouterr().out.split())


def test_amp_takes_bf16_or_fp16_and_defaults_to_fp32(capsys: pytest.CaptureFixture) -> None:
    assert Precision.from_flag(train_tool.parse_args(REQUIRED).amp) is Precision.FP32
    for value in ("bf16", "fp16"):
        assert Precision.from_flag(train_tool.parse_args([*REQUIRED, "--amp", value]).amp) is Precision(value)
    for value in ("none", "bfloat16", "fp32"):
        assert "argument --amp: invalid choice" in _error(capsys, "--amp", value)
    (amp,) = (a for a in train_tool.build_parser()._actions if "--amp" in a.option_strings)
    assert list(amp.choices) == ["bf16", "fp16"]


@pytest.mark.parametrize("clip_grad", [-1.0, 0.0, float("nan")])
def test_step_refuses_a_clipping_threshold_that_is_not_positive(clip_grad: float) -> None:
    with pytest.raises(ValueError, match=rf"clip_grad: expected a positive threshold or None \(off\), got {clip_grad}"):
        StepOptions(clip_grad=clip_grad)
    with pytest.raises(ValueError, match="clip_mode: expected one of"):
        StepOptions(clip_grad=1.0, clip_mode="norm2")
    assert StepOptions(clip_grad=0.5).clip_grad == 0.5


def test_range_names_what_it_expects() -> None:
    assert Range(int, 1)("3") == 3 and Range(float, 0, 1, high_open=True)("0.25") == 0.25
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected an integer >= 1, got '2.5'$"):
        Range(int, 1)("2.5")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a number in \(0, 0.5\), got inf$"):
        Range(float, 0, 0.5, low_open=True, high_open=True)("inf")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^expected a number < 0, got 0$"):
        Range(float, high=0, high_open=True)("0")

"""tools/make_demo_data.py: scikit-learn's digits as an ImageFolder with list files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits
from tool_modules import load_tool

from vssm.data import find_samples
from vssm.data.demo import render_digit, split_digits

demo_tool = load_tool("make_demo_data")


def test_writes_a_stratified_image_folder_with_list_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert demo_tool.main([str(tmp_path), "--size", "24", "--per-class", "20", "--val-fraction", "0.25"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [cell.strip() for cell in table[2].split("|")[1:4]] == ["train", "150", "10"]
    assert [cell.strip() for cell in table[3].split("|")[1:4]] == ["val", "50", "10"]
    train, val = find_samples(tmp_path / "train"), find_samples(tmp_path / "val")
    assert train.classes == val.classes == [str(d) for d in range(10)]
    assert Counter(label for _, label in train.items) == dict.fromkeys(range(10), 15)
    assert Counter(label for _, label in val.items) == dict.fromkeys(range(10), 5)
    listed = find_samples(tmp_path / "val.txt")
    assert sorted(listed.items) == sorted(val.items)
    train_names = {p.name for p, _ in train.items}
    assert not train_names & {p.name for p, _ in val.items}  # a digit is in one split only
    image = Image.open(train.items[0][0])
    assert image.size == (24, 24) and image.mode == "RGB"


def test_rendering_and_split() -> None:
    digits = load_digits()
    image = np.asarray(render_digit(digits.images[0], 32))
    assert image.shape == (32, 32, 3) and (image[..., 0] == image[..., 1]).all()
    small = np.asarray(render_digit(digits.images[0], 8))[..., 0]
    np.testing.assert_array_equal(small, np.rint(digits.images[0] * 255 / 16))  # 8 px: the digit itself
    split = split_digits(digits.target, 0.2, seed=0)
    assert len(split) == len(digits.target) == 1797
    assert split == split_digits(digits.target, 0.2, seed=0) != split_digits(digits.target, 0.2, seed=1)


def test_refuses_overwriting_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "train").mkdir()
    assert demo_tool.main([str(tmp_path)]) == 2
    assert "already exist" in capsys.readouterr().err
    assert demo_tool.main([str(tmp_path / "new"), "--size", "4"]) == 2
    assert "size: expected at least 8" in capsys.readouterr().err
    assert demo_tool.main([str(tmp_path / "new"), "--val-fraction", "1.0"]) == 2
    assert "val_fraction: expected a fraction in (0, 1)" in capsys.readouterr().err
    assert demo_tool.main([str(tmp_path / "new"), "--per-class", "1"]) == 2
    assert "per_class: expected at least 2" in capsys.readouterr().err

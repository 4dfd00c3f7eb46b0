"""vssm.data for the tools: dataset layouts and label orders, unreadable images, evaluation preprocessing, and the
accuracy meters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cls_tool_helpers import write_image, write_image_folder
from PIL import Image
from timm.data import ImageNetInfo

from vssm.data import (
    BadImages,
    DatasetLayoutError,
    ImageSamples,
    Unreadable,
    UnreadableImageError,
    check_unreadable,
    collate_samples,
    eval_preprocessing,
    find_samples,
    image_folder_samples,
    imagenet_class_names,
)
from vssm.engine import AccuracyMeter, Distributed, RealLabels


def test_image_folder_labels_follow_sorted_folders_or_a_given_order(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path, ["b", "a", "c"], per_class=2, seed=0)
    (tmp_path / "a" / "nested").mkdir()
    write_image(tmp_path / "a" / "nested" / "deep.png", (8, 8), np.random.default_rng(0))
    (tmp_path / "a" / "readme.txt").write_text("not an image")
    samples = image_folder_samples(tmp_path)
    assert samples.classes == ["a", "b", "c"] and len(samples) == len(written) + 1
    assert {(p.parent.name, label) for p, label in samples.items if p.parent.name != "nested"} == {
        ("a", 0), ("b", 1), ("c", 2)}
    assert (tmp_path / "a" / "nested" / "deep.png", 0) in samples.items
    ordered = image_folder_samples(tmp_path, class_names=["c", "x", "b", "a"])
    assert {(p.parent.name, label) for p, label in ordered.items if p.parent.name != "nested"} == {
        ("a", 3), ("b", 2), ("c", 0)}
    with pytest.raises(DatasetLayoutError, match=r"class folders \['c'\] are not among the model's 2 classes"):
        image_folder_samples(tmp_path, class_names=["a", "b"])


def test_numbered_class_folders_are_their_labels(tmp_path: Path) -> None:
    write_image_folder(tmp_path, ["2", "10", "007"], per_class=1, seed=0)
    samples = image_folder_samples(tmp_path)
    assert sorted((p.parent.name, label) for p, label in samples.items) == [("007", 7), ("10", 10), ("2", 2)]
    assert len(samples.classes) == 11 and samples.classes[7] == "007"
    write_image_folder(tmp_path, ["7"], per_class=1, seed=0)
    with pytest.raises(DatasetLayoutError, match="class folders '007' and '7' are the same number"):
        image_folder_samples(tmp_path)


def test_imagenet_synset_folders_keep_imagenet_labels(tmp_path: Path) -> None:
    synsets = ImageNetInfo().label_names()
    write_image_folder(tmp_path, [synsets[500], synsets[2]], per_class=1, seed=0)
    names = imagenet_class_names(tmp_path)
    assert names == synsets
    samples = find_samples(tmp_path, class_names=names)
    assert sorted(label for _, label in samples.items) == [2, 500]
    write_image_folder(tmp_path, ["not_a_synset"], per_class=1, seed=0)
    assert imagenet_class_names(tmp_path) is None


def test_list_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "imgs" / "x.png", (8, 8), rng)
    write_image(tmp_path / "imgs" / "y z.png", (8, 8), rng)
    listing = tmp_path / "meta" / "val.txt"
    listing.parent.mkdir()
    listing.write_text("# path label\nimgs/x.png 4\n\nimgs/y z.png 1\n")
    samples = find_samples(listing, root=tmp_path)
    assert samples.items == [(tmp_path / "imgs" / "x.png", 4), (tmp_path / "imgs" / "y z.png", 1)]
    assert samples.classes == [str(i) for i in range(5)]
    with pytest.raises(DatasetLayoutError, match=r"2 listed images do not exist .*paths are relative to .*meta"):
        find_samples(listing)  # relative to the list file's folder by default
    with pytest.raises(DatasetLayoutError, match="line 2: expected a label >= 0 < 3, got 4"):
        find_samples(listing, root=tmp_path, class_names=["a", "b", "c"])
    listing.write_text("")
    with pytest.raises(DatasetLayoutError, match="no samples; expected a list file with one"):
        find_samples(listing)
    listing.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(DatasetLayoutError, match="not a text file"):
        find_samples(listing)


def test_unreadable_images_are_reported_not_substituted(tmp_path: Path) -> None:
    write_image_folder(tmp_path, ["a"], per_class=2, seed=0, sizes=((20, 30),))
    jpeg = tmp_path / "a" / "img_1.JPEG"
    truncated = tmp_path / "a" / "truncated.jpg"
    truncated.write_bytes(jpeg.read_bytes()[:150])
    empty = tmp_path / "a" / "empty.png"
    empty.write_bytes(b"")
    samples = image_folder_samples(tmp_path)
    dataset = ImageSamples(samples, lambda image: torch.tensor(np.asarray(image)).permute(2, 0, 1).float())
    items = [dataset[i] for i in range(len(dataset))]
    bad = {str(item[0].path) for item in items if isinstance(item[0], Unreadable)}
    assert bad == {str(truncated), str(empty)}
    batch = collate_samples(items)
    assert batch.images.shape == (2, 3, 30, 20) and len(batch) == 2 and len(batch.unreadable) == 2
    assert batch.indices.tolist() == [i for i, item in enumerate(items) if not isinstance(item[0], Unreadable)]
    reports = []
    check_unreadable(batch, BadImages.SKIP, reports.append)
    assert len(reports) == 2 and all("skipped unreadable image" in r for r in reports)
    with pytest.raises(UnreadableImageError, match=f"cannot read image {batch.unreadable[0].path}"):
        check_unreadable(batch, BadImages.FAIL, reports.append)
    only_bad = collate_samples([item for item in items if isinstance(item[0], Unreadable)])
    assert only_bad.images is None and len(only_bad) == 0


def test_eval_preprocessing_steps_and_what_they_do() -> None:
    cfg = {"input_size": (3, 224, 224), "crop_pct": 0.875, "interpolation": "bicubic",
           "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    pre = eval_preprocessing(cfg)
    assert [s["op"] for s in pre.steps()] == ["Resize", "CenterCrop", "MaybeToTensor", "Normalize"]
    assert pre.steps()[0] == {"op": "Resize", "size": 256, "interpolation": "bicubic"}
    image = Image.fromarray(np.full((300, 400, 3), 191, dtype=np.uint8))
    out = pre.transform(image)
    assert out.shape == (3, 224, 224)
    torch.testing.assert_close(out, torch.full_like(out, (191 / 255 - 0.5) / 0.25))
    squash = eval_preprocessing(cfg, {"crop_mode": "squash", "img_size": 160, "crop_pct": 1.0})
    assert squash.steps()[0]["size"] == [160, 160] and squash.config["input_size"] == (3, 160, 160)
    assert squash.transform(image).shape == (3, 160, 160)
    assert eval_preprocessing(cfg, {"crop_pct": None}).config["crop_pct"] == 0.875  # None = keep the model's
    with pytest.raises(ValueError, match=r"crop_pct: expected a fraction in \(0, 1\], got 1.5"):
        eval_preprocessing(cfg, {"crop_pct": 1.5})
    with pytest.raises(ValueError, match="crop_mode: expected one of"):
        eval_preprocessing(cfg, {"crop_mode": "corner"})


def test_accuracy_meter_matches_a_direct_computation() -> None:
    logits = torch.randn(37, 12)
    targets = torch.randint(0, 12, (37,))
    meter = AccuracyMeter()
    for start in range(0, 37, 8):
        meter.update(logits[start:start + 8], targets[start:start + 8])
    result = meter.result(Distributed())
    top5 = logits.topk(5, dim=1).indices
    assert result.images == 37
    assert result.top1 == pytest.approx(100 * (logits.argmax(1) == targets).float().mean().item())
    assert result.top5 == pytest.approx(100 * (top5 == targets[:, None]).any(1).float().mean().item())
    assert result.loss == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    few = AccuracyMeter()  # fewer classes than 5: top-5 is every class
    few.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    assert few.result(Distributed()).top5 == 100.0


def test_real_labels(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text(json.dumps([[1], [], [2, 3], [4]]))
    paths = [f"val/x/ILSVRC2012_val_0000000{i}.JPEG" for i in (1, 2, 3, 4)]
    labels = RealLabels(real, paths)
    logits = torch.full((4, 6), -10.0)
    logits[0, 1] = logits[1, 0] = logits[2, 3] = 10.0  # image 4: class 4 not first
    logits[3, 5] = 10.0
    logits[3, 4] = 5.0
    labels.update(logits, torch.arange(4))
    assert labels.result(Distributed()) == pytest.approx((100 * 2 / 3, 100.0))  # image 2 has no labels: not counted
    with pytest.raises(ValueError, match="no labels for 1 images"):
        RealLabels(real, ["val/x/other.JPEG"])

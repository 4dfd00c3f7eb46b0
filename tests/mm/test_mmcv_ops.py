"""mmcv's compiled ops really work (CPU) and agree with torchvision; mmdet and mmseg import their models."""

import importlib

import pytest
import torch
import torchvision

pytestmark = pytest.mark.mm


def _random_boxes(n: int, size: float = 64.0) -> torch.Tensor:
    xy = torch.rand(n, 2) * size
    wh = torch.rand(n, 2) * size / 2 + 1.0
    return torch.cat([xy, xy + wh], dim=1)


def test_nms_matches_torchvision() -> None:
    from mmcv.ops import nms

    boxes, scores = _random_boxes(300), torch.rand(300)
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    expected = torchvision.ops.nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == expected.tolist()


@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_matches_torchvision(aligned: bool) -> None:
    from mmcv.ops import roi_align

    features = torch.randn(2, 5, 32, 32)
    boxes = _random_boxes(20, size=100.0)
    rois = torch.cat([torch.randint(0, 2, (20, 1)).float(), boxes], dim=1)
    ours = roi_align(features, rois, (7, 7), 0.25, 2, "avg", aligned)
    expected = torchvision.ops.roi_align(features, rois, (7, 7), 0.25, 2, aligned)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module", ["mmcv.ops", "mmdet.models", "mmseg.models"])
def test_openmmlab_models_import(module: str) -> None:
    importlib.import_module(module)

"""Peak memory on a GPU is each model's own, also when several models are timed together."""

import pytest
from torch import nn

from vssm.analysis.benchmark import BenchSettings, Mode, measure_alternately

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("mode", [Mode.INFERENCE, Mode.TRAIN])
def test_each_model_gets_its_own_peak(mode: Mode) -> None:
    small = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    large = nn.Sequential(nn.Conv2d(3, 512, 3, padding=1), nn.Conv2d(512, 512, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(512, 10))
    settings = BenchSettings(mode=mode, batch=8, image_size=(64, 64), repeats=2, warmup=1, device="cuda")
    result = measure_alternately({"small": small, "large": large}, settings)
    small_mb, large_mb = result["small"].peak_memory_mb, result["large"].peak_memory_mb
    weights_mb = sum(p.numel() * p.element_size() for p in large.parameters()) / 2**20
    activation_mb = 8 * 512 * 64 * 64 * 4 / 2**20  # one (8, 512, 64, 64) float32 map
    assert large_mb >= weights_mb + activation_mb
    assert small_mb < activation_mb / 4, f"the small model's peak ({small_mb:.1f} MB) includes the large one's"

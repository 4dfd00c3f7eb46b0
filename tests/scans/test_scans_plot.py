"""`scans.plot` writes a PNG with one panel per route."""

import sys
from pathlib import Path

import matplotlib.image
import pytest

from vssm import scans


@pytest.mark.parametrize(
    ("order", "height", "width"),
    [("cross", 5, 9), (scans.Hilbert.all_variants(), 8, 8), (scans.Windowed(directions=("w2", "w7")), 7, 7),
     ("atrous", 3, 4), ("raster", 1, 6), ("zigzag", 30, 30)],
)  # fmt: skip
def test_plot_writes_a_png(tmp_path: Path, order: str | scans.ScanOrder, height: int, width: int) -> None:
    path = scans.plot(order, height, width, tmp_path / "sub" / "routes.png")
    assert path == tmp_path / "sub" / "routes.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.05  # not a blank canvas


def test_plot_refuses_other_formats_and_unknown_orders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PNG"):
        scans.plot("cross", 3, 4, tmp_path / "routes.svg")
    with pytest.raises(ValueError, match="unknown scan order"):
        scans.plot("spiral", 3, 4, tmp_path / "routes.png")


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # what an install without the `plot` extra gives
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'vssm\[plot\]'"):
        scans.plot("cross", 4, 4, tmp_path / "routes.png")
    assert not (tmp_path / "routes.png").exists()

"""`tri_cross` (MSVMamba's coarse routes) and `MultiScale` (routes on a map and on its downsampled copy)."""

from __future__ import annotations

import pytest
import torch

from vssm import scans
from vssm.scans.multiscale import MultiScale


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 4), (5, 2), (7, 7)])
def test_tri_cross_is_msvmamba_s_three_sequences(height: int, width: int) -> None:
    """The original builds them as flatten().flip(), transpose().flatten() and its flip (its SS2D.forward)."""
    x = torch.randn(2, 3, height, width)
    rows_reversed = x.flatten(2).flip(-1)
    columns = x.transpose(2, 3).flatten(2)
    expected = torch.stack([rows_reversed, columns, columns.flip(-1)], dim=1)
    assert torch.equal(scans.get("tri_cross").scan(x), expected)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 4), (5, 2), (7, 7)])
def test_chain_is_the_routes_back_to_back_and_unchain_its_adjoint(height: int, width: int) -> None:
    scan = MultiScale()
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    chain = scan.chain(x)
    assert torch.equal(chain, torch.cat(list(scans.get("tri_cross").scan(x).unbind(1)), dim=-1))
    ys = torch.randn_like(chain)
    # <chain(x), ys> == <x, unchain(ys)>
    torch.testing.assert_close((chain * ys).sum(), (x * scan.unchain(ys, height, width)).sum())


@pytest.mark.parametrize(("size", "coarse"), [((56, 56), (28, 28)), ((7, 7), (4, 4)), ((2, 3), (1, 2))])
def test_the_coarse_grid_is_what_a_padded_stride_2_conv_gives(size: tuple[int, int], coarse: tuple[int, int]) -> None:
    conv = torch.nn.Conv2d(1, 1, 7, stride=2, padding=3)
    assert MultiScale().coarse_size(*size) == coarse == tuple(conv(torch.randn(1, 1, *size)).shape[-2:])


def test_upsample_is_bilinear_without_corner_alignment() -> None:
    y = torch.randn(1, 2, 3, 4)
    expected = torch.nn.functional.interpolate(y, size=(6, 7), mode="bilinear", align_corners=False)
    assert torch.equal(MultiScale().upsample(y, 6, 7), expected)


def test_orders_by_name_and_parameter_sets() -> None:
    scan = MultiScale(full="cross", coarse="tri_cross")
    assert scan.full == scans.Cross() and scan.num_parameter_sets == 5


@pytest.mark.parametrize(("stride", "error"), [(0, ValueError), (1.5, TypeError), (True, TypeError)])
def test_a_bad_stride_is_refused(stride: object, error: type) -> None:
    with pytest.raises(error, match=r"MultiScale\.stride: expected an int >= 1"):
        MultiScale(stride=stride)


def test_tri_cross_plots_its_routes(tmp_path) -> None:
    path = scans.plot("tri_cross", 4, 5, tmp_path / "routes.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

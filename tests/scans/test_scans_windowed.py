"""Windowed (LocalMamba) directions: parsing, per-layer lists, oversized windows, bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vssm import scans
from vssm.scans.windowed import window_major


@pytest.mark.parametrize("name", ["h", "h_flip", "v", "v_flip", "w2", "w2_flip", "w7", "w7_flip", "w13"])
def test_direction_names_round_trip(name: str) -> None:
    direction = scans.Direction.parse(name)
    assert str(direction) == name
    assert scans.Direction.parse(direction) is direction


def test_direction_fields_are_typed() -> None:
    assert scans.Direction.parse("w7_flip") == scans.Direction(scans.Axis.WINDOWS, 7, flip=True)
    assert scans.Direction.parse("v") == scans.Direction(scans.Axis.COLUMNS)


@pytest.mark.parametrize("name", ["x", "w", "w0", "w-2", "h_flipped", "H", "w2flip", ""])
def test_unknown_direction_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unknown direction"):
        scans.Direction.parse(name)


def test_bad_direction_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="window size is required"):
        scans.Direction(scans.Axis.WINDOWS)
    with pytest.raises(ValueError, match="window size is required"):
        scans.Direction(scans.Axis.ROWS, 3)
    with pytest.raises(ValueError, match=">= 1"):
        scans.Direction(scans.Axis.WINDOWS, 0)
    with pytest.raises(TypeError, match="Axis"):
        scans.Direction("h")


def test_windowed_accepts_names_directions_and_a_single_name() -> None:
    by_name = scans.Windowed(directions=["h", "w7_flip"])
    by_object = scans.Windowed(directions=(scans.Direction(scans.Axis.ROWS), scans.Direction.parse("w7_flip")))
    assert by_name == by_object and hash(by_name) == hash(by_object)
    assert scans.Windowed(directions="v").num_routes == 1
    assert scans.get("windowed", directions=("h", "v")).num_routes == 2
    assert scans.Windowed().directions == tuple(map(scans.Direction.parse, ("h", "h_flip", "w2", "w2_flip")))


def test_windowed_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="at least one direction"):
        scans.Windowed(directions=())
    with pytest.raises(ValueError, match="v_reverse must be one of 'correct', 'official', got 'transpose'"):
        scans.Windowed(v_reverse="transpose")
    with pytest.raises(TypeError, match="pad_oversized_windows must be a bool"):
        scans.Windowed(pad_oversized_windows="yes")
    with pytest.raises(TypeError, match="name like 'w7_flip'"):
        scans.Windowed(directions=(7,))


def test_a_window_larger_than_the_grid_in_both_dimensions_names_both() -> None:
    order = scans.Windowed(directions=("h", "w7"))
    with pytest.raises(ValueError, match=r"window 7 of direction 'w7' is larger than the 4 x 6 grid.*<= 6"):
        order.route(4, 6)
    with pytest.raises(ValueError, match="window 7"):
        order.scan(torch.randn(1, 2, 2, 2))
    assert order.route(7, 3).shape == (2, 49)  # as large as one side: still windows along it
    assert order.route(3, 7).shape == (2, 49)
    padded = scans.Windowed(directions=("h", "w7"), pad_oversized_windows=True)
    assert padded.route(2, 2).shape == (2, 49)  # LocalVMamba's 64 px stage 4


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 20), width=st.integers(1, 20), window=st.integers(1, 9))
def test_window_major_visits_windows_row_major_with_bottom_right_padding(height: int, width: int, window: int) -> None:
    route = window_major(height, width, window)
    rows, cols = -(-height // window), -(-width // window)
    assert len(route) == rows * cols * window * window
    for step, token in enumerate(route):
        block, inside = divmod(step, window * window)
        i = (block // cols) * window + inside // window
        j = (block % cols) * window + inside % window
        assert token == (i * width + j if i < height and j < width else scans.PAD)


def test_route_lengths_are_per_direction_and_routes_right_padded() -> None:
    order = scans.Windowed(directions=("h", "w2", "w7_flip"), pad_oversized_windows=True)
    assert order.route_lengths(7, 7) == (49, 64, 49)
    assert order.route(7, 7).shape == (3, 64)
    assert (order.route(7, 7)[0, 49:] == scans.PAD).all()


LOCAL_VIM_TINY_FIRST_LAYERS = [
    ["h", "v_flip", "w7", "w7_flip"],
    ["h_flip", "w2_flip", "w7", "w7_flip"],
    ["h", "h_flip", "v", "w7"],
]


def test_windowed_schedule_reproduces_searched_lists_with_parameter_slots_in_list_order() -> None:
    schedule = scans.windowed_schedule(LOCAL_VIM_TINY_FIRST_LAYERS, v_reverse="official", pad_oversized_windows=True)
    assert len(schedule) == 3
    for layer, names in enumerate(LOCAL_VIM_TINY_FIRST_LAYERS):
        order = schedule.for_layer(layer)
        assert [str(d) for d in order.directions] == names
        assert order.v_reverse is scans.VReverse.OFFICIAL and order.pad_oversized_windows
    with pytest.raises(ValueError, match="lists 3 layers, layer 3"):
        schedule.for_layer(3)
    with pytest.raises(TypeError, match="per-layer direction lists"):
        scans.windowed_schedule(["h", "v"])


@settings(max_examples=40, deadline=None)
@given(height=st.integers(1, 16), width=st.integers(1, 16), window=st.integers(1, 9))
def test_default_windowed_either_routes_every_token_or_refuses_an_oversized_window(
    height: int, width: int, window: int
) -> None:
    order = scans.Windowed(directions=(f"w{window}", f"w{window}_flip", "v"))
    if window > height and window > width:
        with pytest.raises(ValueError, match=f"window {window} "):
            order.route(height, width)
        return
    route = order.route(height, width)
    for k in range(3):
        tokens = route[k][route[k] >= 0]
        assert sorted(tokens.tolist()) == list(range(height * width))
    x = torch.randn(1, 2, height, width, dtype=torch.float64)
    assert torch.equal(order.merge(order.scan(x), height, width), 3 * x)

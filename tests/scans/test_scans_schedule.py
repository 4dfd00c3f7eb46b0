"""Per-layer schedules: ZigMa's path rotation, fixed lists, and how a model's `scan=` argument is read."""

import pytest

from vssm import scans


def test_zigzag_schedule_uses_path_i_mod_k() -> None:
    schedule = scans.zigzag_schedule(4)
    for layer in range(12):
        order = schedule.for_layer(layer)
        assert order == scans.Zigzag(paths=(layer % 4,))
        assert order.num_routes == 1
        assert schedule[layer] is order
    assert scans.zigzag_schedule().for_layer(15) == scans.Zigzag(paths=(7,))


@pytest.mark.parametrize("bad", [0, 9, 2.0, True])
def test_zigzag_schedule_refuses_bad_path_counts(bad: object) -> None:
    with pytest.raises(ValueError, match=r"num_paths must be an int in 1\.\.8"):
        scans.zigzag_schedule(bad)


def test_as_schedule_reads_names_orders_and_schedules() -> None:
    assert scans.as_schedule("cross").for_layer(5) == scans.Cross()
    order = scans.Hilbert()
    assert scans.as_schedule(order).for_layer(0) is order
    schedule = scans.zigzag_schedule(2)
    assert scans.as_schedule(schedule) is schedule
    with pytest.raises(ValueError, match="unknown scan order 'snake'"):
        scans.as_schedule("snake")
    with pytest.raises(TypeError, match="order name, a ScanOrder or a Schedule"):
        scans.as_schedule(3)


def test_cycle_and_per_layer_accept_names_and_check_layers() -> None:
    cycle = scans.Cycle(("cross", scans.Raster()))
    assert [cycle.for_layer(i) for i in range(4)] == [scans.Cross(), scans.Raster()] * 2
    per_layer = scans.PerLayer(["raster", "bidirectional"])
    assert per_layer.for_layer(1) == scans.Bidirectional()
    with pytest.raises(ValueError, match="lists 2 layers, layer 2"):
        per_layer.for_layer(2)
    with pytest.raises(ValueError, match=">= 0"):
        cycle.for_layer(-1)
    with pytest.raises(TypeError, match="layer index is an int"):
        cycle.for_layer(1.0)
    with pytest.raises(ValueError, match="at least one order"):
        scans.Cycle(())


def test_zigzag_paths_are_validated() -> None:
    with pytest.raises(ValueError, match=r"0\.\.7"):
        scans.Zigzag(paths=(8,))
    with pytest.raises(ValueError, match="at least one path"):
        scans.Zigzag(paths=())
    assert scans.Zigzag(paths=3).paths == (3,)


def test_hilbert_variants_are_validated() -> None:
    assert scans.Hilbert(variants=("rot90", scans.Symmetry.TRANSPOSE)).num_routes == 2
    with pytest.raises(ValueError, match="unknown Hilbert variant 'rot45'"):
        scans.Hilbert(variants=("rot45",))
    with pytest.raises(ValueError, match="at least one variant"):
        scans.Hilbert(variants=())


@pytest.mark.parametrize("symmetry", list(scans.Symmetry))
def test_symmetry_invert_undoes_apply(symmetry: scans.Symmetry) -> None:
    import numpy as np

    grid = np.arange(12).reshape(3, 4)
    assert (symmetry.invert(symmetry.apply(grid)) == grid).all()

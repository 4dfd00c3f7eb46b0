"""benchmarks/triton_static.py compiles the Triton kernels for sm_90 without a GPU and counts their loops.

Besides checking the tool, the counts pin the layout: the scans stay inside the thread. At N = 8 the rule puts N on 4
lanes, so the forward shuffles only for its sum over N (2 rounds per step and channel, one per element, against 15.5
with the first design's time on the lanes), and the backward also for its two sums over channels (dB, dC).
"""

import csv
import os
import sys
from pathlib import Path

import pytest
import triton

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
PTXAS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"

pytestmark = [
    pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1", reason="the interpreter does not compile kernels"),
    pytest.mark.skipif(not PTXAS.exists(), reason="Triton's wheel has no ptxas"),
]


def _tool():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import triton_static
    finally:
        sys.path.remove(str(BENCHMARKS))
    return triton_static


def test_innermost_loops_are_the_storing_bodies_of_loops_without_inner_loops() -> None:
    sass = "\n".join(f"        /*{address:04x}*/   {text} ;" for address, text in [
        (0x00, "MOV R1, c[0x0][0x28]"),
        (0x10, "FADD R2, R2, R3"),  # outer loop starts
        (0x20, "MUFU.EX2 R4, R5"),  # first inner loop: loads only (a segment-combining loop)
        (0x30, "@P0 BRA 0x20"),
        (0x40, "SHFL.BFLY PT, R6, R7, 0x1, 0x1f"),  # second inner loop, storing (a chunk loop)
        (0x50, "STG.E desc[UR4][R2.64], R6"),
        (0x60, "@P1 BRA 0x40"),
        (0x70, "@P2 BRA 0x10"),
        (0x80, "EXIT"),
    ])
    assert _tool().innermost_loops(sass) == ["SHFL.BFLY PT, R6, R7, 0x1, 0x1f", "STG.E desc[UR4][R2.64], R6",
                                             "@P1 BRA 0x40"]


def test_counts_the_rule_tiles_of_a_zoo_shape(tmp_path: Path) -> None:
    _tool().main(["--shapes", "mambavision_t stage 3 (N 8)", "--out", str(tmp_path)])
    rows = {r["kernel"]: r for r in csv.DictReader((tmp_path / "triton_static.csv").open())}
    assert set(rows) == {"forward", "backward"}
    for row in rows.values():
        assert row["rule"] == "yes"
        assert int(row["registers"]) > 0
        assert float(row["instr/elt"]) > float(row["MUFU/elt"]) > 0
        assert 0 < float(row["exp floor %"]) <= 100
    assert 0 < float(rows["forward"]["SHFL/elt"]) <= 1.25
    assert 0 < float(rows["backward"]["SHFL/elt"]) <= 10
    text = (tmp_path / "triton_static.md").read_text()
    assert "python benchmarks/triton_static.py --shapes" in text
    assert "| mambavision_t stage 3 (N 8) | forward |" in text


def test_counts_the_state_1_kernels_the_backend_runs_at_n_1(tmp_path: Path) -> None:
    _tool().main(["--shapes", "vmamba_t stage 1 (K 4, N 1)", "--out", str(tmp_path)])
    rows = {(r["kernel"], r["rule"]): r for r in csv.DictReader((tmp_path / "triton_static.csv").open())}
    assert set(rows) == {(kernel, rule) for kernel in ("forward", "backward") for rule in ("yes", "state 1")}
    for kernel in ("forward", "backward"):
        # kernels/triton_scan_state1.py: fewer instructions per element than the generic kernel's N = 1 tiles
        assert 0 < float(rows[kernel, "state 1"]["instr/elt"]) < 0.9 * float(rows[kernel, "yes"]["instr/elt"])

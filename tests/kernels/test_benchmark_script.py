"""The selective-scan benchmark runs end to end on a small zoo shape and writes its CSV and markdown."""

import csv
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_benchmark_writes_table(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_selective_scan
    finally:
        sys.path.remove(str(BENCHMARKS))
    bench_selective_scan.main(["--device", "cpu", "--shapes", "mambavision_t stage 4", "--cpu-batch", "1",
                               "--repeats", "1", "--backends", "loop", "cpu", "--machine", "test", "--out",
                               str(tmp_path)])
    rows = list(csv.DictReader((tmp_path / "selective_scan_cpu.csv").open()))
    assert [r["backend"] for r in rows] == ["loop", "cpu"]
    assert all(float(r["fwd_ms"]) > 0 and float(r["fwd_bwd_ms"]) > 0 for r in rows)
    assert float(rows[1]["speedup_fwd"]) > 0
    assert "| mambavision_t stage 4 (N 8) | cpu |" in (tmp_path / "selective_scan_cpu.md").read_text()

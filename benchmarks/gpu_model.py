"""The GPU cost model's table (`vssm.analysis.roofline`): predicted H100 time of every headline model, on the CPU.

    python benchmarks/gpu_model.py                        # headline models + baselines: runs/gpu_model/gpu_model.*
    python benchmarks/gpu_model.py vmamba_tiny --top 20   # some models, more contributors
    python benchmarks/gpu_model.py --test-variants --output /tmp/gpu_model     # the tiny test variants (seconds)
    python benchmarks/gpu_model.py --update-repo          # refresh the committed benchmarks/gpu_model.{md,csv}
    python benchmarks/gpu_model.py --measured OUT --output OUT   # check against a fresh H100 run (run_gpu.sh)

For each model (each family's `HEADLINE_VARIANT`, every model of the committed H100 throughput files, and timm's
DeiT-S, Swin-T and ConvNeXt-T), inference and training step (bf16 autocast, batch 128, the model's default input
size: 224² for the classifiers, as `tools/benchmark.py` timed them): bytes read + written and GFLOPs per image,
kernel launches per step, the predicted time per step and images/s, the predicted ratio to Swin-T and DeiT-S, and
the largest contributors by predicted time; and the same step compiled (`torch.compile`, estimated by
`Profile.compiled`: inductor's fusion of the elementwise glue between the library kernels, see
vssm/analysis/roofline.py): its launches, predicted time and ratio to Swin-T compiled.

Calibration: the cost model's two constants (`roofline.H100_CALIBRATION`: the share of the roofs a kernel reaches,
and the cost of a launch) are fitted here by least squares on the relative error over the H100 throughput rows
(`--measured`, default the committed `benchmarks/h100/throughput_cuda*.csv`) of the timm baselines and of the vssm
models whose measured code is today's (`in_fit`); the table gives the fit and the error of the library's constants
on every measured row. Results go to runs/gpu_model/ unless `--output` names another folder; only `--update-repo`
writes the committed benchmarks/ files.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vssm.analysis.roofline import Calibration, Profile

# torch, timm and the models take 5-50 s to import (more on a loaded machine): they are imported in `run`, after the
# arguments are parsed, so that --help and argument errors answer at once.
COMMITTED = Path(__file__).resolve().parent
OUTPUT = Path("runs") / "gpu_model"
MEASURED = COMMITTED / "h100"
FIT_FILE = "throughput_cuda.csv"  # the run of the current kernels; the other files timed earlier kernel designs
BASELINES = ("deit_small_patch16_224", "swin_tiny_patch4_window7_224", "convnext_tiny")
RATIO_TO = ("swin_tiny_patch4_window7_224", "deit_small_patch16_224")
MODES = ("inference", "train")


@dataclass(frozen=True)
class Measured:
    """One committed H100 throughput row: the file, model, mode and median ms per step of `batch` images."""

    file: str
    model: str
    mode: str
    batch: int
    ms: float


def measured_rows(folder: Path = MEASURED) -> list[Measured]:
    """The committed rows the cost model predicts: bf16 autocast, eager, 224², NCHW."""
    rows = []
    for path in sorted(folder.glob("throughput_cuda*.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                if (row["precision"] == "amp bfloat16" and row["compiled"] == "False"
                        and row["channels_last"] == "False" and row["height"] == row["width"] == "224"):
                    rows.append(Measured(path.name, row["model"], row["mode"], int(row["batch"]),
                                         float(row["ms_median"])))
    return rows


# The committed `throughput_cuda.csv` read VMamba's scattered routes inside the kernels, 2 to 5 times slower than the
# gathers the code does now (benchmarks/h100/README.md), and ran Vim's causal conv as the CPU's shifted multiply-adds
# (vssm/layers/mamba_mixer.py now runs one grouped conv on CUDA): its vmamba and vim rows timed code the cost model
# does not price.
COMMITTED_STALE = ("vmamba_tiny", "vim_small")


def in_fit(row: Measured, committed: bool = True) -> bool:
    """Whether the constants are fitted to `row`: every timm baseline's row, and `FIT_FILE`'s rows of the code the
    cost model prices (`committed`: the rows are benchmarks/h100/'s)."""
    from vssm import zoo

    if zoo.family_of(row.model) == "timm":
        return True
    return row.file == FIT_FILE and not (committed and row.model in COMMITTED_STALE)


def fit(profiles: dict[tuple[str, str], Profile], rows: list[Measured]) -> Calibration:
    """The two constants minimising the squared relative error of the predicted step times of `rows`: a prediction,
    roof_s / efficiency + launches x launch_s, is linear in (1 / efficiency, launch_s)."""
    import numpy as np

    from vssm.analysis.roofline import Calibration

    used = [r for r in rows if (r.model, r.mode) in profiles]
    if not used:
        raise ValueError("fit: none of the measured rows' models were profiled")

    design = np.array([[profiles[r.model, r.mode].roof_s, profiles[r.model, r.mode].launches] for r in used])
    design /= np.array([[r.ms / 1e3] for r in used])
    inverse_efficiency, launch_s = (float(v) for v in np.linalg.lstsq(design, np.ones(len(used)), rcond=None)[0])
    if launch_s < 0:  # launches explain nothing: the roofs alone
        inverse_efficiency, launch_s = float(np.sum(design[:, 0]) / np.sum(design[:, 0] ** 2)), 0.0
    return Calibration(efficiency=min(1.0, 1 / inverse_efficiency), launch_s=launch_s)


def _ms(profile: Profile, calibration: Calibration) -> float:
    return profile.predicted_s(calibration) * 1e3


def summary_rows(profiles: dict[tuple[str, str], Profile], calibration: Calibration,
                 measured: list[Measured]) -> list[dict]:
    current = {(r.model, r.mode): r for r in measured if r.file == FIT_FILE}
    compiled = {key: p.compiled() for key, p in profiles.items()}
    rows = []
    for (name, mode), p in profiles.items():
        ms = _ms(p, calibration)
        compiled_ms = _ms(compiled[name, mode], calibration)
        row = {
            "model": name, "mode": mode, "batch": p.batch, "input": "x".join(map(str, p.input_size)),
            "mb_per_image": round(p.bytes / p.batch / 1e6, 2), "gflops_per_image": round(p.flops / p.batch / 1e9, 3),
            "launches": p.launches, "roofline_ms": round(p.roof_s * 1e3, 3), "predicted_ms": round(ms, 3),
            "predicted_images_per_s": round(p.batch / ms * 1e3, 1),
        }
        for baseline in RATIO_TO:
            other = profiles.get((baseline, mode))
            row[f"predicted_ratio_to_{baseline}"] = round(_ms(other, calibration) / ms, 3) if other else None
        row["compiled_launches"] = compiled[name, mode].launches
        row["compiled_predicted_ms"] = round(compiled_ms, 3)
        swin = compiled.get((RATIO_TO[0], mode))
        row[f"compiled_ratio_to_{RATIO_TO[0]}"] = round(_ms(swin, calibration) / compiled_ms, 3) if swin else None
        seen = current.get((name, mode))
        row["measured_ms"] = seen.ms if seen else None
        row["error_pct"] = round(100 * (ms / seen.ms - 1), 1) if seen else None
        rows.append(row)
    return rows


def _short(name: str) -> str:
    return {"deit_small_patch16_224": "DeiT-S", "swin_tiny_patch4_window7_224": "Swin-T"}.get(name, name)


def markdown(profiles: dict[tuple[str, str], Profile], rows: list[dict], calibration: Calibration,
             fitted: Calibration | None, measured: list[Measured], fitted_rows: list[Measured], top: int,
             command: str, failures: dict[str, str], measured_folder: Path) -> str:
    committed = measured_folder.resolve() == MEASURED
    import timm
    import torch

    from vssm.analysis.roofline import H100
    from vssm.analysis.tables import markdown_table

    gpu = H100
    lines = [
        "# GPU cost model (predicted, not measured)", "",
        f"`vssm.analysis.roofline` on the CPU: every aten op of a step on the meta device, priced as max(bytes / "
        f"{gpu.bandwidth / 1e12:g} TB/s, FLOPs / peak) / efficiency + launches x launch cost ({gpu.name}: "
        f"{gpu.matmul_peak[next(iter(gpu.matmul_peak))] / 1e12:g} TFLOP/s bf16 matmuls, "
        f"{gpu.vector_peak / 1e12:g} TFLOP/s CUDA cores), bf16 autocast, models in eval mode as `tools/benchmark.py` "
        f"times them (training step: forward, backward of the output's mean, SGD with momentum). "
        f"The compiled columns estimate `torch.compile` (inductor, default mode) by `Profile.compiled`: each run of "
        f"elementwise ops, reductions, norms and copies between two library kernels (matmuls, convolutions, "
        f"attention, the scan) fused, reading its inputs and writing what later ops read once, one launch per "
        f"dependent chain; an estimate with the eager constants, no measured compiled row checks it yet.",
        f"Constants used (`roofline.H100_CALIBRATION`): {_constants(calibration)}."
        + (f" This run's least-squares fit to the committed rows marked below: {_constants(fitted)}."
           if fitted else ""),
        f"torch {torch.__version__}, timm {timm.__version__} (the aten ops a forward decomposes into follow torch's "
        f"version). Command: `{command}`", "",
        markdown_table(
            ["model", "mode", "MB / image", "GFLOPs / image", "launches", "roofline ms", "predicted ms",
             "predicted img/s", *(f"ratio to {_short(b)}" for b in RATIO_TO), "compiled launches", "compiled ms",
             f"compiled ratio to {_short(RATIO_TO[0])}", "measured ms", "error"],
            [[r["model"], r["mode"], f"{r['mb_per_image']:.1f}", f"{r['gflops_per_image']:.2f}", r["launches"],
              f"{r['roofline_ms']:.2f}", f"{r['predicted_ms']:.2f}", f"{r['predicted_images_per_s']:.0f}",
              *(_ratio(r[f"predicted_ratio_to_{b}"]) for b in RATIO_TO), r["compiled_launches"],
              f"{r['compiled_predicted_ms']:.2f}", _ratio(r[f"compiled_ratio_to_{RATIO_TO[0]}"]),
              "-" if r["measured_ms"] is None else f"{r['measured_ms']:.1f}",
              "-" if r["error_pct"] is None else f"{r['error_pct']:+.0f} %"] for r in rows],
            right=[False, False, *([True] * 14)]),
    ]
    if failures:
        lines += ["", "Not profiled: " + "; ".join(f"{name}: {why}" for name, why in failures.items())]
    errors = [(r, _ms(profiles[r.model, r.mode], calibration)) for r in measured if (r.model, r.mode) in profiles]
    note = (f"Fitted to every timm row and to the vssm rows of `{FIT_FILE}`"
            + (" (today's kernels) whose code is the one priced: that run read VMamba's scattered routes inside the "
               "kernels, 2 to 5 times slower than the gathers the code does now (benchmarks/h100/README.md), and ran "
               "Vim's causal conv as shifted multiply-adds where CUDA now runs one grouped conv, so its vmamba and vim "
               "rows are not; `throughput_cuda_more.csv` and `throughput_cuda_pre_tuning.csv` timed the first "
               "kernel design." if committed else f" in {measured_folder}."))
    if errors:
        lines += ["", "## Error on every committed H100 row", "",
                  note, "",
                  markdown_table(["file", "model", "mode", "measured ms", "predicted ms", "error", "in the fit"],
                                 [[r.file, r.model, r.mode, f"{r.ms:.1f}", f"{ms:.1f}",
                                   f"{100 * (ms / r.ms - 1):+.0f} %", "yes" if r in fitted_rows else "no"]
                                  for r, ms in errors],
                                 right=[False, False, False, True, True, True, False])]
    for (name, mode), p in profiles.items():
        total = p.predicted_s(calibration)
        lines += ["", f"## {name}, {mode}: largest {top} contributors ({total * 1e3:.2f} ms predicted)", "",
                  markdown_table(["module", "op", "calls", "launches", "MB / image", "GFLOPs / image", "ms", "share"],
                                 [[c.module or "-", c.op, c.calls, c.launches, f"{c.bytes / p.batch / 1e6:.1f}",
                                   f"{c.flops / p.batch / 1e9:.2f}", f"{c.seconds * 1e3:.2f}", f"{c.share:.0%}"]
                                  for c in p.contributors(top, calibration)],
                                 right=[False, False, True, True, True, True, True, True])]
    return "\n".join(lines) + "\n"


def _constants(calibration: Calibration) -> str:
    return f"efficiency {calibration.efficiency:.3f}, launch {calibration.launch_s * 1e6:.2f} µs"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="models (default: every family's headline variant, the committed "
                                                  "H100 files' models and the timm baselines)")
    parser.add_argument("--test-variants", action="store_true", help="the tiny test variants instead (seconds)")
    parser.add_argument("--batch", type=int, default=128, help="images per step (default 128)")
    parser.add_argument("--top", type=int, default=10, help="contributors listed per model and mode (default 10)")
    parser.add_argument("--measured", type=Path, default=MEASURED,
                        help="folder of the H100 throughput_cuda*.csv to fit and check against (default "
                             "benchmarks/h100/; run_gpu.sh passes its fresh run's)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--output", type=Path, default=OUTPUT, help=f"output folder (default {OUTPUT}/)")
    where.add_argument("--update-repo", action="store_true", help="refresh the committed files in benchmarks/ instead")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.top < 1:
        parser.error(f"expected --batch >= 1 and --top >= 1, got {args.batch}, {args.top}")
    if args.test_variants and args.models:
        parser.error("give models or --test-variants, not both")
    if args.update_repo:
        args.output = COMMITTED
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv), argv)


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    from tqdm import tqdm

    from vssm import zoo
    from vssm.analysis.roofline import H100_CALIBRATION, profile_model
    from vssm.analysis.tables import write_csv

    measured = measured_rows(args.measured)
    if args.test_variants:
        names = zoo.test_variants()
    elif args.models:
        names = zoo.resolve_names(args.models, allow_timm=True)
    else:
        names = list(dict.fromkeys([*zoo.headline_variants(), *(r.model for r in measured), *BASELINES]))
    profiles: dict[tuple[str, str], Profile] = {}
    failures: dict[str, str] = {}
    for name, mode in tqdm([(n, m) for n in names for m in MODES], desc="profiling on meta", leave=False):
        if name in failures:
            continue
        try:
            profiles[name, mode] = profile_model(name, mode, batch=args.batch)
        except Exception as exc:  # one family that cannot run on meta must not hide the others' rows
            failures[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    if args.test_variants:
        measured = []
    measured = [r for r in measured if r.batch == args.batch]
    committed = args.measured.resolve() == MEASURED
    fit_rows = [r for r in measured if (r.model, r.mode) in profiles and in_fit(r, committed)]
    fitted = fit(profiles, fit_rows) if fit_rows else None
    rows = summary_rows(profiles, H100_CALIBRATION, measured)
    command = shlex.join(["python", "benchmarks/gpu_model.py", *(sys.argv[1:] if argv is None else argv)])
    text = markdown(profiles, rows, H100_CALIBRATION, fitted, measured, fit_rows, args.top, command, failures,
                    args.measured)
    stem = "gpu_model_test_variants" if args.test_variants else "gpu_model"
    write_csv(args.output / f"{stem}.csv", rows)
    (args.output / f"{stem}.md").write_text(text)
    print(text)
    print(f"wrote {args.output / stem}.md and .csv", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Export a model to ONNX or to a torch.export program (.pt2), reload it, and check it against eager.

    python tools/export.py vim_small --format onnx --out vim_small.onnx
    python tools/export.py vmamba_tiny --format pt2 --input-size 256 --dynamic-batch --out vmamba_tiny.pt2
    python tools/export.py vim_small --format onnx --checkpoint vim_s_midclstok_80p5acc.pth --out vim_small.onnx

The artefact is reloaded (ONNX: checked by `onnx.checker` and run by ONNX Runtime's CPU execution provider; pt2:
`torch.export.load`) and run on a random batch next to the eager float32 model and its float64 copy. The error must
satisfy the project's rule for fast paths (`vssm.kernels.tolerances`: within 2× the eager float32 error against
float64 plus atol); the tool prints the errors and the file size and exits 1 when it does not. Bad arguments (an
unknown model or format, an input size the model cannot take, an output that cannot be written) exit 2 with a
one-line message. ONNX needs the `export` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import argparse
import enum
import os
import sys
from pathlib import Path

# torch and the models take 5-50 s to import: imported in `run`, after the arguments are checked.
FORMATS = ("onnx", "pt2")
ONNX_OPSET = 18
CHECK_BATCH = 2  # the exported program is run at this batch (with --dynamic-batch, at another one as well)


class ExportFormat(enum.Enum):
    ONNX = "onnx"
    PT2 = "pt2"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--format", default="onnx", choices=FORMATS, help="artefact format (default onnx)")
    parser.add_argument("--input-size", help="'S', 'HxW' or 'CxHxW' (default: the model's own)")
    parser.add_argument("--dynamic-batch", action="store_true", help="export with a dynamic batch dimension")
    parser.add_argument("--opset", type=int, default=ONNX_OPSET, help=f"ONNX opset (default {ONNX_OPSET})")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--checkpoint", type=Path, help="weights to load (any format tools/eval_imagenet.py reads)")
    args = parser.parse_args(argv)
    if args.opset < ONNX_OPSET:
        parser.error(f"--opset: the translation uses opset {ONNX_OPSET} operators, got {args.opset}")
    out_dir = args.out.resolve().parent
    if args.out.is_dir() or not out_dir.is_dir() or not os.access(out_dir, os.W_OK):
        parser.error(f"--out: cannot write {args.out} (expected a file in an existing, writable folder)")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"--checkpoint: no such file {args.checkpoint}")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> int:
    import torch

    from vssm import zoo
    from vssm.checkpoints import load_classifier
    from vssm.kernels.tolerances import three_way_error

    try:
        (name,) = zoo.resolve_names([args.model])
        size = zoo.parse_input_size(args.input_size) if args.input_size else zoo.default_input_size(name)
        kwargs = zoo.check_input_size(name, size)
        if args.checkpoint is not None:
            model = load_classifier(args.checkpoint, name, **kwargs).model
        else:
            model = zoo.create(name, size)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    fmt = ExportFormat(args.format)
    x = torch.randn(CHECK_BATCH, *size)
    batches = (CHECK_BATCH, CHECK_BATCH + 1) if args.dynamic_batch else (CHECK_BATCH,)
    export = _export_onnx if fmt is ExportFormat.ONNX else _export_pt2
    load = _onnx_runner if fmt is ExportFormat.ONNX else _pt2_runner
    export(model, x, args.out, args.dynamic_batch, args.opset)
    runner = load(args.out)
    model64 = _double_copy(model)
    ok = True
    for batch in batches:
        x = torch.randn(batch, *size)
        with torch.no_grad():
            eager, eager64 = model(x), model64(x.double())
        exported = runner(x)
        error = three_way_error(exported, eager, eager64)
        scale = float(eager64.abs().max())
        print(f"{name} {fmt.value} batch {batch}: max abs error {error.fast:.3e}, max rel error "
              f"{error.fast / max(scale, 1e-30):.3e} (eager float32: {error.reference:.3e}, bound {error.bound:.3e})"
              f" {'ok' if error.ok else 'FAILED'}")
        ok &= error.ok
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB)")
    return 0 if ok else 1


def _double_copy(model):
    import copy

    return copy.deepcopy(model).double()


def _export_onnx(model, x, out: Path, dynamic_batch: bool, opset: int) -> None:
    from vssm.kernels.onnx import export_onnx

    export_onnx(model, (x,), _dynamic_shapes(dynamic_batch), opset).save(str(out), external_data=False)


def _export_pt2(model, x, out: Path, dynamic_batch: bool, opset: int) -> None:
    import torch

    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=_dynamic_shapes(dynamic_batch)), out)


def _dynamic_shapes(dynamic_batch: bool):
    import torch

    return ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None


def _onnx_runner(path: Path):
    import onnx
    import onnxruntime
    import torch

    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


def _pt2_runner(path: Path):
    import torch

    module = torch.export.load(path).module()

    def run(x):
        with torch.no_grad():
            return module(x)

    return run


if __name__ == "__main__":
    sys.exit(main())

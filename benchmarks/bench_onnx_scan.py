"""CPU time of the selective scan alone: ONNX Runtime running the scan's ONNX translation (vssm.kernels.onnx) against
torch eager (our C scan), on the scan shapes of the headline models at batch 8, for a few ONNX Runtime session options.

    python benchmarks/bench_onnx_scan.py                       # every shape, every session option
    python benchmarks/bench_onnx_scan.py vim_small --rounds 5 --markdown onnx_scan.md

Each shape is one `selective_scan` call of the named model (read from the model: channels, state size, groups,
routes, shared u; the routes are random permutations of the tokens). Each column is the median of `--rounds` calls
after one warm-up (export and session start are not timed). The table names the machine and the load average.

"ORT Scan alone" times the translation's `Scan` node by itself (one thread; its inputs made by one run of the whole
translation): the recurrence's share of the op, measured without ONNX Runtime's profiler, whose per-node events
inflate the Scan's subgraph nodes several times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path


@dataclass(frozen=True)
class ScanShape:
    """One selective_scan call: u (batch, channels / u_copies, length), delta (batch, channels, length), A (channels,
    state), B/C (batch, groups, state, length), routes x length route table (0 = no route)."""

    name: str
    channels: int
    length: int
    state: int
    groups: int
    routes: int = 0
    u_copies: int = 1


SHAPES = (
    ScanShape("vim_small", 1536, 197, 16, 2),
    ScanShape("vmamba_tiny stage 1", 384, 3136, 1, 4, routes=4, u_copies=4),
    ScanShape("vmamba_tiny stage 3", 1536, 196, 1, 4, routes=4, u_copies=4),
    ScanShape("mambavision_tiny stage 3", 160, 196, 8, 1),
    ScanShape("mambavision_tiny stage 4", 320, 49, 8, 1),
    ScanShape("local_vssm_tiny stage 1", 768, 3136, 16, 4, routes=4, u_copies=4),
    ScanShape("local_vssm_tiny stage 3", 3072, 196, 16, 4, routes=4, u_copies=4),
)

SESSION_OPTIONS = ("default", "default without spinning", "1 thread", "no graph optimization")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shapes", nargs="*", help="shape names or their model prefix (default: all)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per measurement (default 5)")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.rounds < 1:
        parser.error("--batch and --rounds: expected positive integers")
    known = {s.name for s in SHAPES}
    for name in args.shapes:
        if not any(s.startswith(name) for s in known):
            parser.error(f"unknown shape {name!r}; expected one of {sorted(known)} or a model prefix")
    return args


def _milliseconds(run, rounds: int) -> float:
    run()  # warm-up: first-touch allocations, the C scan's first compile
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _options(option: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if option == "1 thread":
        options.intra_op_num_threads = 1
    elif option == "default without spinning":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    elif option == "no graph optimization":
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def _session(model: Path | bytes, option: str):
    import onnxruntime

    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, _options(option), providers=["CPUExecutionProvider"])


def _outer_names(graph) -> set[str]:
    """The names a (sub)graph reads from its enclosing graphs."""
    import onnx

    defined = {v.name for v in graph.input} | {v.name for v in graph.initializer}
    used: set[str] = set()
    for node in graph.node:
        used |= {name for name in node.input if name}
        defined |= set(node.output)
        used |= {name for a in node.attribute if a.type == onnx.AttributeProto.GRAPH for name in _outer_names(a.g)}
    return used - defined


def _scan_alone(path: Path, feed: dict):
    """A session running only the model's `Scan` node, and its feed: the Scan's inputs and the values its body reads
    from the enclosing graph, computed by one run of the whole model."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    (scan,) = [node for node in model.graph.node if node.op_type == "Scan"]
    (body,) = [a.g for a in scan.attribute if a.name == "body"]
    names = list(dict.fromkeys([*scan.input, *sorted(_outer_names(body))]))
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    values = dict(zip(names, _session(probe.SerializeToString(), "1 thread").run(names, feed)))
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for name, v in values.items()]
    outputs = [helper.make_empty_tensor_value_info(name) for name in scan.output]
    graph = helper.make_graph([scan], "scan_alone", inputs, outputs)
    alone = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return _session(alone.SerializeToString(), "1 thread"), values


def measure(shape: ScanShape, batch: int, rounds: int, workdir: Path) -> dict[str, str]:
    import torch
    from torch import nn

    from vssm.kernels import selective_scan
    from vssm.kernels.onnx import export_onnx
    from vssm.kernels.testing import random_route, random_scan_inputs

    route = random_route(shape.routes, shape.length, pad=0) if shape.routes else None
    i = random_scan_inputs(batch, shape.channels, shape.length, shape.state, shape.groups, has_z=False, route=route,
                           u_copies=shape.u_copies if route is not None else None)

    class Scan(nn.Module):
        def forward(self, u: torch.Tensor, delta: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
            return selective_scan(u, delta, i.A, B, C, D=i.D, delta_bias=i.delta_bias, delta_softplus=True,
                                  route=i.route)

    scan, args = Scan().eval(), (i.u, i.delta, i.B, i.C)
    with torch.no_grad():
        row = {"shape": shape.name, "eager C scan ms": f"{_milliseconds(lambda: scan(*args), rounds):.1f}"}
    path = workdir / "scan.onnx"
    export_onnx(scan, args).save(str(path))
    for option in SESSION_OPTIONS:
        session = _session(path, option)
        feed = {node.name: t.numpy() for node, t in zip(session.get_inputs(), args)}
        row[f"ORT {option} ms"] = f"{_milliseconds(partial(session.run, None, feed), rounds):.1f}"
    alone, scan_feed = _scan_alone(path, feed)
    row["ORT Scan alone ms"] = f"{_milliseconds(partial(alone.run, None, scan_feed), rounds):.1f}"
    return row


def main(argv: list[str] | None = None) -> int:
    import tempfile

    import torch
    from tqdm import tqdm

    from vssm.analysis.tables import busy_warning, load_average, machine_description, markdown_table

    args = parse_args(argv)
    warning = busy_warning(torch.get_num_threads())
    if warning:
        print(warning, file=sys.stderr)
    shapes = [s for s in SHAPES if not args.shapes or any(s.name.startswith(n) for n in args.shapes)]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for shape in tqdm(shapes, desc="timing", unit="shape", file=sys.stderr):
            rows.append(measure(shape, args.batch, args.rounds, Path(workdir)))
    headers = list(rows[0])
    table = markdown_table(headers, [list(r.values()) for r in rows], right=[h != "shape" for h in headers])
    text = (f"{table}\n\nBatch {args.batch}. Machine: {machine_description('cpu')}; load average {load_average()} at "
            f"the end; median of {args.rounds} calls after a warm-up.\n")
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

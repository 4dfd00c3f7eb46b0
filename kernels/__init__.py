"""kernels: the selective-scan op shared by every family.

    from vssm.kernels import selective_scan, use_backend
    y = selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True, route=route)
    with use_backend("reference"):
        y64 = selective_scan(u.double(), ...)

Backends (kernels.backends): `reference` (sequential PyTorch, float64 capable, the ground truth), `cpu` (a C loop
compiled on first use, the default for CPU tensors), `triton` (the default for CUDA tensors). Override with
`VSSM_SCAN_BACKEND=reference|cpu|triton` or the `use_backend` context manager.

The op is `torch.ops.vssm.selective_scan` (kernels.op): autograd, fake kernels, torch.compile(fullgraph=True),
FlopCounterMode (9·batch·L·KD·N + batch·KD·L with D) and fvcore via
`FlopCountAnalysis(model, x).set_op_handle(**kernels.fvcore_handles())`. Plain eager calls, which nothing of that
watches, skip the dispatcher through an autograd.Function running the same backend code (kernels.eager);
`with use_custom_op(): ...` sends them through the op too. The triton backend reads the inputs of a route whose
steps mostly jump gathered into route order first (kernels.route_order); `with use_route_reading("in_kernel")`
(or "gathered") decides that for every backend.
Tolerances for every numerical test of the project: `kernels.tolerances`; random inputs and the backend-vs-reference
check: `kernels.testing`.
"""

from .backends import Backend, requested_backend, select_backend, use_backend
from .eager import use_custom_op
from .interface import selective_scan
from .op import fvcore_handles
from .reference import compute_dtype, selective_scan_ref
from .route_order import RouteReading, use_route_reading

__all__ = [
    "Backend",
    "RouteReading",
    "compute_dtype",
    "fvcore_handles",
    "requested_backend",
    "select_backend",
    "selective_scan",
    "selective_scan_ref",
    "use_backend",
    "use_custom_op",
    "use_route_reading",
]

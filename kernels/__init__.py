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
watches, skip the dispatcher through an autograd.Function running the same backend code (kernels.eager).
Tolerances for every numerical test of the project: `kernels.tolerances`; random inputs and the backend-vs-reference
check: `kernels.testing`.
"""

from .backends import Backend, requested_backend, select_backend, use_backend
from .interface import selective_scan
from .op import fvcore_handles
from .reference import compute_dtype, selective_scan_ref

__all__ = [
    "Backend",
    "compute_dtype",
    "fvcore_handles",
    "requested_backend",
    "select_backend",
    "selective_scan",
    "selective_scan_ref",
    "use_backend",
]

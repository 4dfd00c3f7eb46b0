"""kernels: the selective-scan op shared by every family.

    from kernels import selective_scan, use_backend
    y = selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True, route=route)
    with use_backend("reference"):
        y64 = selective_scan(u.double(), ...)

Backends: `reference` (sequential PyTorch, float64 capable), `cpu` (compiled loop), `triton` (GPU).
Tolerances for every numerical test of the project: `kernels.tolerances`.
"""

from kernels.backends import Backend, requested_backend, select_backend, use_backend
from kernels.interface import selective_scan
from kernels.reference import selective_scan_ref

__all__ = ["Backend", "requested_backend", "select_backend", "selective_scan", "selective_scan_ref", "use_backend"]

"""Backend selection: automatic by device/dtype, `VSSM_SCAN_BACKEND`, the `use_backend` context manager, and the
table of the backends' functions."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vssm import kernels
from vssm.kernels.backends import ENV_VAR, IMPLEMENTATIONS, Backend, select_backend


def test_float64_always_selects_reference() -> None:
    assert select_backend(torch.device("cpu"), torch.float64) is Backend.REFERENCE


def test_context_manager_overrides_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "cpu")
    with kernels.use_backend("reference") as chosen:
        assert chosen is Backend.REFERENCE
        assert select_backend(torch.device("cpu"), torch.float32) is Backend.REFERENCE
    assert kernels.requested_backend() is Backend.CPU


def test_env_var_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "Reference")
    assert kernels.requested_backend() is Backend.REFERENCE
    monkeypatch.setenv(ENV_VAR, "auto")
    assert kernels.requested_backend() is None


def test_unknown_env_value_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "cuda")
    with pytest.raises(ValueError, match=r"VSSM_SCAN_BACKEND: expected one of .*'reference'.*got 'cuda'"):
        select_backend(torch.device("cpu"), torch.float32)


def test_unknown_context_value_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"backend: expected one of"), kernels.use_backend("fast"):
        pass
    with pytest.raises(TypeError, match=r"backend: expected a Backend"), kernels.use_backend(3):
        pass


def test_forcing_a_backend_that_cannot_run_raises() -> None:
    with kernels.use_backend("triton"), pytest.raises(ValueError, match="triton"):
        select_backend(torch.device("cpu"), torch.float64)


def test_cpu_without_compiler_falls_back_to_reference_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from vssm.kernels import cpu

    monkeypatch.setattr(cpu, "unavailable_reason", lambda: "backend 'cpu' needs a C compiler (test)")
    with pytest.warns(RuntimeWarning, match="falls back to the slow 'reference' backend.*C compiler"):
        assert select_backend(torch.device("cpu"), torch.float32) is Backend.REFERENCE
    with kernels.use_backend("cpu"), pytest.raises(ValueError, match="needs a C compiler"):
        select_backend(torch.device("cpu"), torch.float32)


def test_every_backend_has_one_row_of_functions() -> None:
    assert list(IMPLEMENTATIONS) == list(Backend)
    assert [b for b, row in IMPLEMENTATIONS.items() if row.float64] == [Backend.REFERENCE]
    assert IMPLEMENTATIONS["cpu"] is IMPLEMENTATIONS[Backend.CPU]  # the op's schema carries the backend's name


def test_triton_is_imported_and_the_c_loop_built_only_when_their_backend_runs(tmp_path: Path) -> None:
    code = """if True:
        import sys, torch
        from vssm import kernels
        from vssm.kernels import cpu
        x = torch.randn(1, 2, 3)
        with kernels.use_backend("reference"):
            kernels.selective_scan(x, x.sigmoid(), -torch.rand(2, 1), torch.randn(1, 1, 3), torch.randn(1, 1, 3))
        assert "vssm.kernels.triton_scan" not in sys.modules
        assert cpu._library.cache_info().currsize == 0
    """
    env = {**os.environ, "VSSM_CACHE_DIR": str(tmp_path)}
    env.pop(ENV_VAR, None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not any(tmp_path.iterdir())

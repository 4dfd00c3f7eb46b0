"""Backend selection: automatic by device/dtype, `VSSM_SCAN_BACKEND`, and the `use_backend` context manager."""

import pytest
import torch

from vssm import kernels
from vssm.kernels.backends import ENV_VAR, Backend, select_backend


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

"""tools/install_mmcv.py: cached-wheel fast path, C++20 patch, failure reporting, and (slow) the real source build."""

import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "install_mmcv.py"

_spec = importlib.util.spec_from_file_location("install_mmcv", SCRIPT)
install_mmcv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(install_mmcv)


def _wheel_name() -> str:
    tag = install_mmcv.python_tag()
    return f"mmcv-{install_mmcv.MMCV_VERSION}-{tag}-{tag}-{install_mmcv.platform_tag()}.whl"


def test_cached_wheel_is_installed_without_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheelhouse, shared = tmp_path / "house", tmp_path / "shared"
    wheelhouse.mkdir()
    shared.mkdir()
    wheel = shared / _wheel_name()
    wheel.write_bytes(b"not really a wheel")
    (shared / "SHA256SUMS").write_text(f"{hashlib.sha256(wheel.read_bytes()).hexdigest()}  {wheel.name}\n")
    installed = []
    monkeypatch.setattr(install_mmcv, "installed_with_ops", lambda: False)
    monkeypatch.setattr(install_mmcv, "build_wheel", lambda *a: pytest.fail("built although a wheel was cached"))
    monkeypatch.setattr(install_mmcv, "install_wheel", installed.append)
    assert install_mmcv.main(["--wheelhouse", str(wheelhouse), "--find-links", str(shared)]) == 0
    assert installed == [wheel]


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_wheel_in_a_pip_find_links_directory_is_used(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = tmp_path / "links"
    links.mkdir()
    wheel = links / _wheel_name()
    wheel.write_bytes(b"not really a wheel")
    entry = str(links) if form == "path" else links.as_uri()
    monkeypatch.setenv("PIP_FIND_LINKS", f"https://example.invalid/simple {entry} {tmp_path / 'missing'}")
    monkeypatch.delenv("VSSM_FIND_LINKS", raising=False)
    installed = []
    monkeypatch.setattr(install_mmcv, "installed_with_ops", lambda: False)
    monkeypatch.setattr(install_mmcv, "build_wheel", lambda *a: pytest.fail("built although pip's find-links had one"))
    monkeypatch.setattr(install_mmcv, "install_wheel", installed.append)
    assert install_mmcv.main(["--wheelhouse", str(tmp_path / "house")]) == 0
    assert installed == [wheel]


def test_wheel_with_a_wrong_checksum_is_ignored(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    wheel = tmp_path / _wheel_name()
    wheel.write_bytes(b"tampered")
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {wheel.name}\n")
    assert install_mmcv.find_cached_wheel([tmp_path]) is None
    assert "does not match SHA256SUMS" in capsys.readouterr().err


def test_wheel_for_another_interpreter_is_not_used(tmp_path: Path) -> None:
    (tmp_path / f"mmcv-{install_mmcv.MMCV_VERSION}-cp27-cp27-{install_mmcv.platform_tag()}.whl").write_bytes(b"x")
    assert install_mmcv.find_cached_wheel([tmp_path]) is None


def test_cxx_standard_is_raised_to_cxx20(tmp_path: Path) -> None:
    setup_py = tmp_path / "setup.py"
    setup_py.write_text("a = ['-std=c++14']\nb = ['-Wall', '-std=c++17']\nc = ['/std:c++17']\n")
    assert install_mmcv.raise_cxx_standard(setup_py) == 3
    text = setup_py.read_text()
    assert "c++14" not in text and "c++17" not in text
    assert text.count("-std=c++20") == 2 and "/std:c++20" in text


def test_setup_py_without_flags_is_an_error(tmp_path: Path) -> None:
    setup_py = tmp_path / "setup.py"
    setup_py.write_text("print('no flags')\n")
    with pytest.raises(RuntimeError, match="no C\\+\\+ standard flag"):
        install_mmcv.raise_cxx_standard(setup_py)


def test_failed_build_shows_the_compiler_error_and_installs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    failing_compiler = [sys.executable, "-c", "import sys; print('x.cpp:3:1: error: expected ;'); sys.exit(1)"]
    log = tmp_path / "build.log"
    with pytest.raises(SystemExit) as exit_info:
        install_mmcv._run(failing_compiler, log=log)
    assert exit_info.value.code == 1
    assert "x.cpp:3:1: error: expected ;" in capsys.readouterr().err

    def failing_build(*args):
        install_mmcv._run(failing_compiler)

    monkeypatch.setattr(install_mmcv, "installed_with_ops", lambda: False)
    monkeypatch.setattr(install_mmcv, "build_wheel", failing_build)
    monkeypatch.setattr(install_mmcv, "install_wheel", lambda wheel: pytest.fail("installed after a failed build"))
    with pytest.raises(SystemExit):
        install_mmcv.main(["--wheelhouse", str(tmp_path / "empty"), "--find-links", str(tmp_path / "none")])


@pytest.mark.mm
def test_second_run_is_a_no_op_in_this_environment() -> None:
    result = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "already installed" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
def test_build_from_source_produces_a_wheel_with_compiled_ops(tmp_path: Path) -> None:
    """The real thing: 8 minutes on a quiet 2-core CPU with ninja (77 C++ files)."""
    result = subprocess.run(
        [sys.executable, SCRIPT, "--force-build", "--no-install", "--wheelhouse", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    (wheel,) = tmp_path.glob("mmcv-2.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert any(name.startswith("mmcv/_ext") and name.endswith(".so") for name in archive.namelist())

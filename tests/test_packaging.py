"""The wheel installs one top-level package, `vssm` (the op and the scan orders inside it), beside any other
distribution's `kernels` or `scans`; the set-up guards its interpreter."""

import importlib
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Run in the fresh environment: the stand-in keeps its own `kernels`, vssm's op comes from the wheel and runs.
_IMPORT_BOTH = textwrap.dedent("""
    import kernels, torch, vssm, vssm.kernels, vssm.scans
    from pathlib import Path
    assert kernels.STAND_IN == "huggingface-kernels", kernels.__file__
    site = Path(vssm.__file__).parents[1]
    assert Path(vssm.kernels.__file__).parent == site / "vssm" / "kernels", vssm.kernels.__file__
    assert Path(vssm.scans.__file__).parent == site / "vssm" / "scans", vssm.scans.__file__
    u = torch.randn(1, 4, 8)
    with vssm.kernels.use_backend("cpu"):
        y = vssm.kernels.selective_scan(u, torch.rand(1, 4, 8), -torch.rand(4, 2), torch.randn(1, 2, 8),
                                        torch.randn(1, 2, 8))
    assert y.shape == (1, 4, 8) and bool(torch.isfinite(y).all())
    route = vssm.scans.get("cross").route(3, 3, "cpu")
    assert route.shape == (4, 9)
    print("ok")
""")


@pytest.mark.parametrize("name", ["vssm", "vssm.scans", "vssm.kernels"])
def test_packages_import_from_the_checkout(name: str) -> None:
    module = importlib.import_module(name)
    assert Path(module.__file__).resolve().is_relative_to(ROOT), module.__file__


def _tracked_files() -> list[str]:
    """The working tree's files that git tracks or would (not ignored), as a fresh clone of this change has them."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [path for path in listed if (ROOT / path).is_file()]


def _source_modules(tracked: list[str]) -> set[str]:
    """Every tracked module of the three source folders, named as the wheel must hold it."""
    sources = [path for path in tracked if path.startswith(("vssm/", "kernels/", "scans/"))]
    return {path if path.startswith("vssm/") else f"vssm/{path}" for path in sources if path.endswith((".py", ".c"))}


def test_the_wheel_installs_only_vssm_beside_another_kernels_package(tmp_path: Path) -> None:
    """Hugging Face's `kernels` (and any other top-level `kernels` / `scans`) survives installing vssm."""
    if shutil.which("git") is None:
        pytest.skip("needs git to list the tracked sources")
    # setuptools builds in the source tree (build/, *.egg-info): build a copy of the working tree's tracked files.
    tracked = _tracked_files()
    source = tmp_path / "source"
    for path in tracked:
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", wheels, source], check=True, capture_output=True)
    (wheel,) = wheels.glob("vssm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    distribution, version = wheel.name.split("-")[:2]
    assert {name.split("/")[0] for name in names} == {"vssm", f"{distribution}-{version}.dist-info"}, names
    assert _source_modules(tracked) <= set(names), sorted(_source_modules(tracked) - set(names))

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    stand_in = site / "kernels"
    stand_in.mkdir()
    (stand_in / "__init__.py").write_text('STAND_IN = "huggingface-kernels"\n')
    # vssm's dependencies (torch, timm, ...) come from this environment, after the fresh one's own packages.
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], check=True,
                   capture_output=True)
    assert (stand_in / "__init__.py").read_text() == 'STAND_IN = "huggingface-kernels"\n'
    result = subprocess.run([python, "-c", _IMPORT_BOTH], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_old_top_level_names_are_gone() -> None:
    result = subprocess.run([sys.executable, "-c", "import kernels"], capture_output=True, text=True, cwd="/")
    assert "No module named 'kernels'" in result.stderr


def test_supported_python_passes_the_check() -> None:
    result = subprocess.run([sys.executable, ROOT / "tools" / "check_python.py"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _working_interpreter(version: str) -> str | None:
    candidates = [str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")]
    candidates.append(shutil.which(f"python{version}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


@pytest.mark.parametrize("version", ["3.9", "3.13"])
def test_unsupported_python_stops_with_the_supported_range(version: str) -> None:
    interpreter = _working_interpreter(version)
    if interpreter is None:
        pytest.skip(f"no working python{version} on this machine")
    result = subprocess.run([interpreter, ROOT / "tools" / "check_python.py"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "supports Python 3.10 to 3.12" in result.stderr
    assert f"is Python {version}" in result.stderr

"""Install mmcv 2.1.0 with its compiled ops into the running Python environment.

PyPI carries only the source release of mmcv 2.1.0, and its ``setup.py`` hard-codes ``-std=c++14``/``c++17``,
which torch 2.14's headers reject. This step, in order:

1. does nothing when mmcv 2.1.0 with ``mmcv._ext`` already imports;
2. installs a cached wheel when one matching this interpreter and platform lies in the wheelhouse
   (``$VSSM_WHEELHOUSE``, default ``~/.cache/vssm/wheels``), in a ``--find-links`` directory
   (also ``$VSSM_FIND_LINKS``, ``:``-separated) or in a local directory of pip's own ``$PIP_FIND_LINKS``;
3. otherwise downloads the sdist with pip, raises the C++ standard to C++20, builds a wheel with
   ``MMCV_WITH_OPS=1`` (CUDA ops too when nvcc and a GPU are present), stores it in the wheelhouse and installs it.

A failed build prints the compiler's error and exits non-zero before anything is installed, so the environment is
never left half-installed. The from-source build of the 77 CPU extension files took 8 minutes on a quiet 2-core CPU
with ninja (installed for the build when missing); a machine busy with other work takes several times longer.

Usage: ``python tools/install_mmcv.py [--find-links DIR] [--wheelhouse DIR] [--jobs N] [--force-build] [--no-install]``
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

MMCV_VERSION = "2.1.0"
DEFAULT_WHEELHOUSE = Path.home() / ".cache" / "vssm" / "wheels"
_STD_FLAG = re.compile(r"(-std=|/std:)c\+\+1[47]")


def python_tag() -> str:
    """The wheel tag of this interpreter, e.g. ``cp311``."""
    return f"cp{sys.version_info.major}{sys.version_info.minor}"


def platform_tag() -> str:
    """The wheel platform tag of this machine, e.g. ``linux_x86_64``."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def installed_with_ops() -> bool:
    """True when mmcv 2.1.0 and its compiled extension import in this interpreter (checked in a subprocess)."""
    probe = f"import mmcv, mmcv._ext; assert mmcv.__version__ == '{MMCV_VERSION}', mmcv.__version__"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def _sha256_ok(wheel: Path) -> bool:
    """Check a wheel against a ``SHA256SUMS`` file beside it, when there is one."""
    sums = wheel.parent / "SHA256SUMS"
    if not sums.is_file():
        return True
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == wheel.name:
            return hashlib.sha256(wheel.read_bytes()).hexdigest() == parts[0]
    return True


def find_cached_wheel(dirs: list[Path]) -> Path | None:
    """The first mmcv 2.1.0 wheel for this interpreter and platform in ``dirs`` (checksum-verified when possible)."""
    pattern = f"mmcv-{MMCV_VERSION}-{python_tag()}-{python_tag()}-{platform_tag()}.whl"
    for directory in dirs:
        candidate = directory / pattern
        if candidate.is_file():
            if _sha256_ok(candidate):
                return candidate
            print(f"install_mmcv: ignoring {candidate}: its SHA256 does not match SHA256SUMS", file=sys.stderr)
    return None


def raise_cxx_standard(setup_py: Path) -> int:
    """Rewrite every ``-std=c++14``/``c++17`` flag in mmcv's setup.py to C++20; returns how many were changed."""
    text = setup_py.read_text()
    patched, count = _STD_FLAG.subn(r"\1c++20", text)
    if count == 0:
        raise RuntimeError(f"{setup_py}: no C++ standard flag found to raise; has mmcv's setup.py changed?")
    setup_py.write_text(patched)
    return count


def _cuda_available() -> bool:
    if shutil.which("nvcc") is None:
        return False
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def _run(
    cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, log: Path | None = None
) -> None:
    """Run a command; on failure print the tail of its output (the compiler's error) and exit."""
    if log is None:
        result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
        output = result.stdout + result.stderr
    else:
        with log.open("w") as handle:
            result = subprocess.run(cmd, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, text=True)
        output = log.read_text()
    if result.returncode != 0:
        errors = [line for line in output.splitlines() if "error" in line.lower()]
        print(f"install_mmcv: command failed ({result.returncode}): {' '.join(cmd)}", file=sys.stderr)
        print("\n".join((errors or output.splitlines())[-40:]), file=sys.stderr)
        if log is not None:
            print(f"install_mmcv: full log: {log}", file=sys.stderr)
        sys.exit(result.returncode or 1)


def build_wheel(wheelhouse: Path, jobs: int) -> Path:
    """Download, patch and build mmcv 2.1.0; returns the wheel, stored in ``wheelhouse``."""
    work = Path(tempfile.mkdtemp(prefix="vssm-mmcv-"))
    pip = [sys.executable, "-m", "pip"]
    print(f"install_mmcv: downloading the mmcv {MMCV_VERSION} source release into {work}")
    _run(
        [
            *pip,
            "download",
            f"mmcv=={MMCV_VERSION}",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            "-d",
            str(work),
        ]
    )
    if shutil.which("ninja") is None:
        # torch's extension builder compiles in parallel only through ninja; without it setuptools compiles the
        # 77 files one at a time (with ninja: 8 min on a quiet 2-core CPU).
        _run([*pip, "install", "--quiet", "ninja"])
    sdist = work / f"mmcv-{MMCV_VERSION}.tar.gz"
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    source = work / f"mmcv-{MMCV_VERSION}"
    changed = raise_cxx_standard(source / "setup.py")
    env = dict(os.environ, MMCV_WITH_OPS="1", MAX_JOBS=str(jobs))
    if _cuda_available():
        env["FORCE_CUDA"] = "1"
        kind = "CPU + CUDA"
    else:
        env["FORCE_CUDA"] = "0"
        env.setdefault("CUDA_VISIBLE_DEVICES", "")
        kind = "CPU"
    log = work / "build.log"
    print(
        f"install_mmcv: raised {changed} C++ standard flags to C++20; building {kind} ops with {jobs} jobs "
        f"(8 min on a quiet 2-core CPU, longer on a busy one); log: {log}",
        flush=True,
    )
    dist = work / "dist"
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)], env=env, log=log)
    built = sorted(dist.glob(f"mmcv-{MMCV_VERSION}-*.whl"))
    if not built:
        print(f"install_mmcv: the build finished but wrote no wheel into {dist}", file=sys.stderr)
        sys.exit(1)
    wheelhouse.mkdir(parents=True, exist_ok=True)
    target = wheelhouse / built[0].name
    shutil.copy2(built[0], target)
    shutil.rmtree(work, ignore_errors=True)
    return target


def install_wheel(wheel: Path) -> None:
    # With its runtime requirements (mmengine, opencv, yapf, ...): `import mmcv._ext` needs them.
    _run([sys.executable, "-m", "pip", "install", "--quiet", str(wheel)])
    if not installed_with_ops():
        print(f"install_mmcv: installed {wheel.name} but `import mmcv._ext` fails", file=sys.stderr)
        sys.exit(1)


def _split_dirs(value: str | None) -> list[Path]:
    return [Path(part).expanduser() for part in (value or "").split(os.pathsep) if part]


def _pip_find_links_dirs(value: str | None) -> list[Path]:
    """The local directories among pip's ``PIP_FIND_LINKS`` entries (whitespace-separated paths, ``file:`` URLs or
    remote URLs; a remote index is pip's business, not a wheel cache)."""
    dirs = []
    for entry in (value or "").split():
        parsed = urllib.parse.urlparse(entry)
        if parsed.scheme in ("", "file"):
            path = Path(urllib.request.url2pathname(parsed.path) if parsed.scheme else entry).expanduser()
            if path.is_dir():
                dirs.append(path)
    return dirs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=Path(os.environ.get("VSSM_WHEELHOUSE", DEFAULT_WHEELHOUSE)).expanduser(),
        help="where built wheels are cached and looked for (env VSSM_WHEELHOUSE)",
    )
    parser.add_argument(
        "--find-links",
        type=Path,
        action="append",
        default=None,
        help="extra read-only directories holding prebuilt wheels (env VSSM_FIND_LINKS)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile jobs")
    parser.add_argument("--force-build", action="store_true", help="build from source even if a wheel is cached")
    parser.add_argument("--no-install", action="store_true", help="only make the wheel available in the wheelhouse")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.force_build or args.no_install) and installed_with_ops():
        print(f"install_mmcv: mmcv {MMCV_VERSION} with compiled ops is already installed")
        return 0
    search = [
        args.wheelhouse,
        *(args.find_links or _split_dirs(os.environ.get("VSSM_FIND_LINKS"))),
        *_pip_find_links_dirs(os.environ.get("PIP_FIND_LINKS")),
    ]
    wheel = None if args.force_build else find_cached_wheel(search)
    if wheel is None:
        wheel = build_wheel(args.wheelhouse, args.jobs)
        print(f"install_mmcv: built {wheel}")
    else:
        print(f"install_mmcv: using cached wheel {wheel}")
    if args.no_install:
        return 0
    install_wheel(wheel)
    print(f"install_mmcv: mmcv {MMCV_VERSION} with compiled ops installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

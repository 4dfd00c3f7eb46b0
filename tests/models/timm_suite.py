"""timm's own model test suite (`tests/test_models.py` of the installed timm's sdist), run over vssm's registry.

The file is not copied into this repository: it is read from timm's sdist, downloaded once with pip into a cache
(`~/.cache/vssm/timm-<version>/`, or the file named by `VSSM_TIMM_TEST_MODELS`), and imported as timm's CI imports it
(`GITHUB_ACTIONS` set: timm's CI exclusions, no tests that download weights). While it is imported, its
`list_models` / `list_pretrained` answer with vssm's models instead of timm's, with timm's own filters applied, so
every test timm parametrises over its registry is parametrised over ours. Tests that name timm's models explicitly
(`convnext_atto`, ...) are not taken.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from unittest import mock

import timm

import vssm

_TIMM_LIST_PRETRAINED = timm.list_pretrained
_VSSM_MODELS = tuple(vssm.list_models())

# timm's `module=` filter names the timm modules whose models implement `forward_intermediates` and the getter
# feature wrapper; every vssm family implements both, so the filter is read as "the models of such families".
# TorchScript: timm keeps families that cannot be scripted out of its TorchScript tests with EXCLUDE_JIT_FILTERS
# (hiera, naflexvit, hrnet, ...); vssm's families are in that position: their forward goes through a
# `torch.library` custom op with autograd and Python scan-order objects, and TorchScript is in maintenance mode
# upstream (torch.compile / torch.export are the supported paths).
NOT_SCRIPTABLE = ("test_model_forward_torchscript", "test_model_forward_fx_torchscript")

# timm names its ViT-style families, whose features are tokens rather than a map (no `pool_size`, no
# `global_pool=''` map), by name patterns (its NON_STD_FILTERS, recognised by 'vit_*'): their config test is
# `test_model_default_cfgs_non_std` and `features_only` is not asked of them. Vim, LocalVim and PlainMamba are vssm's.
TOKEN_OUTPUT_FAMILIES = ("vim_*", "local_vim_*", "test_vim", "test_local_vim", "plainmamba_*", "test_plainmamba")

# What CI runs: the `test_*` variants and one released variant per family; the rest of the registry is marked slow.
CI_VARIANTS = (
    "vim_tiny",
    "vmamba_tiny",
    "local_vim_tiny",
    "local_vssm_tiny",
    "mambavision_tiny",
    "umamba_bot_2d",
    "groupmamba_tiny",
    "plainmamba_l1",
    "msvmamba_nano",
)


# timm's CI leaves out its pruning contract test (slow: it prunes at every feature index); ours runs it on the `test_*`
# variants only.
TEST_VARIANTS_ONLY = ("test_prune_intermediate_layers_contract",)


def is_ci_variant(name: str, test: str) -> bool:
    """Whether CI runs timm's `test` on model `name`."""
    if test in TEST_VARIANTS_ONLY:
        return name.startswith("test_")
    return name.startswith("test_") or name in CI_VARIANTS


def _matches(name: str, patterns: str | Iterable[str]) -> bool:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if "vit_*" in patterns:
        patterns += TOKEN_OUTPUT_FAMILIES
    return any(fnmatch.fnmatch(name, p) for p in patterns if p)


def _vssm_list_models(
    filter: str | Iterable[str] = "",
    module: str | Iterable[str] = "",
    pretrained: bool = False,
    exclude_filters: str | Iterable[str] = "",
    name_matches_cfg: bool = False,
    include_tags: bool | None = None,
) -> list[str]:
    """timm.list_models over vssm's registry (see the module docstring for `module`)."""
    del module, name_matches_cfg, include_tags  # every vssm model matches them (one config per name, no tags)
    names = list(_VSSM_MODELS)
    if filter:
        names = [n for n in names if _matches(n, filter)]
    if exclude_filters:
        names = [n for n in names if not _matches(n, exclude_filters)]
    if pretrained:
        with_weights = {tagged.split(".")[0] for tagged in _TIMM_LIST_PRETRAINED()}
        names = [n for n in names if n in with_weights]
    return names


def _vssm_list_pretrained(filter: str | Iterable[str] = "", exclude_filters: str | Iterable[str] = "") -> list[str]:
    return _vssm_list_models(filter, pretrained=True, exclude_filters=exclude_filters)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vssm" / f"timm-{timm.__version__}"


def timm_test_models_path() -> Path:
    """Path of timm's `tests/test_models.py` for the installed timm, downloaded from its sdist when not cached."""
    override = os.environ.get("VSSM_TIMM_TEST_MODELS")
    if override:
        return Path(override)
    target = _cache_dir() / "test_models.py"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        spec = f"timm=={timm.__version__}"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:", spec, "-d", work],
            capture_output=True,
            text=True,
        )
        archives = list(Path(work).glob("timm-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise RuntimeError(
                f"could not download timm's source release ({spec}) for its model test suite: {result.stderr.strip()}"
                "; set VSSM_TIMM_TEST_MODELS to a copy of its tests/test_models.py"
            )
        with tarfile.open(archives[0]) as archive:
            member = archive.getmember(f"timm-{timm.__version__}/tests/test_models.py")
            data = archive.extractfile(member).read()
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def load_timm_test_models() -> ModuleType:
    """timm's test module, imported with its model listings answering with vssm's registry."""
    path = timm_test_models_path()
    spec = importlib.util.spec_from_file_location("timm_test_models", path)
    module = importlib.util.module_from_spec(spec)
    with (
        mock.patch.dict(os.environ, {"GITHUB_ACTIONS": "true"}),
        mock.patch.object(timm, "list_models", _vssm_list_models),
        mock.patch.object(timm, "list_pretrained", _vssm_list_pretrained),
    ):
        spec.loader.exec_module(module)
    return module


def parametrized_model_names(function: object) -> list[str] | None:
    """The `model_name` values a timm test is parametrised with, or None when it takes no `model_name`."""
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize" and mark.args[0] in ("model_name", "model_name,model_kwargs"):
            return [value if isinstance(value, str) else value[0] for value in mark.args[1]]
    return None


def registry_tests(module: ModuleType) -> dict[str, object]:
    """timm's tests parametrised over the registry (all their model names are vssm's), by name."""
    ours = set(_VSSM_MODELS)
    tests = {}
    for name, function in vars(module).items():
        if not name.startswith("test_") or not callable(function) or name in NOT_SCRIPTABLE:
            continue
        names = parametrized_model_names(function)
        if names and set(names) <= ours:
            tests[name] = function
    return tests

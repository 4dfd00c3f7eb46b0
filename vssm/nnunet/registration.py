"""Making vssm's trainers findable by nnU-Net, which looks trainers up by class name in its own package (and, from
nnU-Net 2.8, in the folders of the `nnUNet_extTrainer` environment variable).

`EXT_TRAINER_DIR` holds one module that re-exports the trainers: give it to `nnUNet_extTrainer` (nnU-Net >= 2.8), or
let `register` copy it into nnU-Net's trainer package, inside nnU-Net's installation (site-packages), for nnU-Net 2.7,
which pip resolves next to vssm's timm pin and which has no `nnUNet_extTrainer`.
"""

from __future__ import annotations

import importlib.util
import shutil
from importlib.metadata import version
from pathlib import Path

EXT_TRAINER_DIR = Path(__file__).resolve().parent / "ext_trainers"
SHIM_NAME = "vssm_umamba_trainers.py"


def _nnunet_trainer_dir() -> Path:
    try:
        import nnunetv2
    except ImportError:
        raise ImportError("nnunetv2 is not installed: pip install 'vssm[nnunet]'") from None
    return Path(nnunetv2.__path__[0]) / "training" / "nnUNetTrainer"


def nnunet_version() -> str:
    """The installed nnU-Net's version (ImportError naming the extra when it is not installed)."""
    _nnunet_trainer_dir()
    return version("nnunetv2")


def nnunet_reads_ext_trainer() -> bool:
    """Whether the installed nnU-Net searches the `nnUNet_extTrainer` folders (from 2.8: its training and prediction
    commands find trainers through `nnunetv2.utilities.find_objects`)."""
    _nnunet_trainer_dir()
    return importlib.util.find_spec("nnunetv2.utilities.find_objects") is not None


def register(trainer_dir: str | Path | None = None) -> Path:
    """Copy the re-exporting module into `trainer_dir` (default: nnU-Net's trainer package, in its installation in
    site-packages); returns its path."""
    folder = _nnunet_trainer_dir() if trainer_dir is None else Path(trainer_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"trainer folder {folder} does not exist")
    target = folder / SHIM_NAME
    shutil.copyfile(EXT_TRAINER_DIR / SHIM_NAME, target)
    return target


def unregister(trainer_dir: str | Path | None = None) -> Path | None:
    """Remove the module `register` wrote; returns its path, or None if there was none."""
    folder = _nnunet_trainer_dir() if trainer_dir is None else Path(trainer_dir)
    target = folder / SHIM_NAME
    if not target.exists():
        return None
    target.unlink()
    return target

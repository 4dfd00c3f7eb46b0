"""Making vssm's trainers findable by nnU-Net, which looks trainers up by class name in its own package (and, from
nnU-Net 2.8, in the folders of the `nnUNet_extTrainer` environment variable).

`EXT_TRAINER_DIR` holds one module that re-exports the trainers: give it to `nnUNet_extTrainer`, or let `register`
copy it into nnU-Net's trainer package.
"""

from __future__ import annotations

import shutil
from pathlib import Path

EXT_TRAINER_DIR = Path(__file__).resolve().parent / "ext_trainers"
SHIM_NAME = "vssm_umamba_trainers.py"


def _nnunet_trainer_dir() -> Path:
    try:
        import nnunetv2
    except ImportError:
        raise ImportError("nnunetv2 is not installed: pip install 'vssm[nnunet]'") from None
    return Path(nnunetv2.__path__[0]) / "training" / "nnUNetTrainer"


def register(trainer_dir: str | Path | None = None) -> Path:
    """Copy the re-exporting module into `trainer_dir` (default: nnU-Net's trainer package); returns its path."""
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

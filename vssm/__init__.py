"""vssm: vision state-space backbones on one scan-order module (`scans`) and one selective-scan op (`kernels`).

Importing `vssm` registers every family with timm (`timm.create_model("vim_small")`).
"""

from . import models
from .models import list_models

__version__ = "0.1.0"
__all__ = ["list_models", "models"]

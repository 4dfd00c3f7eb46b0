"""Model families. Importing a family module registers its models with timm."""

from . import localmamba, mambavision, umamba, vim, vmamba  # noqa: F401  (each family module registers its models)
from ._registry import list_models

__all__ = ["list_models"]

"""Model families. Importing a family module registers its models with timm."""

# Each family module registers its models.
from . import groupmamba, localmamba, mambavision, msvmamba, plainmamba, umamba, vim, vmamba  # noqa: F401
from ._registry import list_models

__all__ = ["list_models"]

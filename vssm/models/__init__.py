"""Model families. Importing a family module registers its models with timm."""

from . import vim  # noqa: F401  (registers the Vim family)
from . import vmamba  # noqa: F401  (registers the VMamba family)
from ._registry import list_models

__all__ = ["list_models"]

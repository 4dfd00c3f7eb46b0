"""Model families. Importing a family module registers its models with timm."""

from ._registry import list_models

__all__ = ["list_models"]

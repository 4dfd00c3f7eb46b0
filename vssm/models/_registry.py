"""Which of timm's registered models are vssm's."""

from __future__ import annotations

import timm


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the models vssm registered with timm that match the fnmatch ``pattern``."""
    return sorted(
        name
        for name in timm.list_models(pattern)
        if timm.models.model_entrypoint(name).__module__.startswith("vssm.")
    )

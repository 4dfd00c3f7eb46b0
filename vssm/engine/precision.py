"""Numeric precision of a run: fp32, or autocast to bf16 / fp16."""

from __future__ import annotations

import contextlib
import enum

import torch


class Precision(enum.Enum):
    """fp32: no autocast (Vim's, LocalMamba's and MambaVision's evaluation); bf16 / fp16: torch.autocast (VMamba's
    evaluation ran under fp16 autocast). The selective scan keeps a float32 state either way."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    @classmethod
    def from_flag(cls, amp: str | None) -> Precision:
        """An `--amp` value (`add_amp_argument`: bf16 or fp16; None: fp32) -> Precision."""
        if amp is None:
            return cls.FP32
        try:
            return cls(amp)
        except ValueError:
            raise ValueError(f"amp: expected 'bf16', 'fp16' or None (fp32), got {amp!r}") from None

    @property
    def dtype(self) -> torch.dtype:
        return {Precision.FP32: torch.float32, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}[self]


def autocast(precision: Precision, device: torch.device) -> contextlib.AbstractContextManager:
    """torch.autocast to `precision` on `device`'s type, or nothing for fp32."""
    if precision is Precision.FP32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.dtype)

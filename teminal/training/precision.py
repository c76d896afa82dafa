"""The numeric precision training and its benchmarks run in: bf16 autocast where it is native
(SPEC §3; paper B.5 trains in bf16 on CUDA), fp32 elsewhere and under the deterministic mode."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .. import determinism


def bf16_native(device: torch.device) -> bool:
    """True on CUDA and on a CPU whose oneDNN runs bf16 matmuls natively (AVX512-BF16 / AMX):
    there bf16 autocast is ~2× faster; on other CPUs it would be emulated, slower than fp32.
    Never under the deterministic CPU mode (``teminal.determinism``: bf16 off)."""
    if device.type == "cuda":
        return True
    try:
        return device.type == "cpu" and not determinism.active() \
            and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@dataclass(frozen=True, kw_only=True)
class Precision:
    """bf16 autocast on ``device_type`` when ``bf16`` (already checked against the device)."""

    device_type: str  # torch device type: "cuda" | "cpu" | …
    bf16: bool  # autocast to bfloat16 (else fp32, autocast off)

    @classmethod
    def of(cls, *, bf16: bool, device: torch.device) -> "Precision":
        """``TrainConfig.bf16`` on ``device``: on only where bf16 is native (``bf16_native``)."""
        return cls(device_type=device.type, bf16=bf16 and bf16_native(device))

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast region every training and validation loss runs in."""
        return torch.autocast(device_type=self.device_type, dtype=torch.bfloat16,
                              enabled=self.bf16)

"""The torch device a ``--device`` value names."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA, then MPS, then CPU; a named device must exist here (ValueError)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or mps") from e
    available = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    if not available.get(device.type, False):
        raise ValueError(f"device {name!r} is not available here: use auto or cpu")
    return device


def cuda_autocast_dtype() -> torch.dtype:
    """Mixed-precision type on this CUDA GPU: bf16 where supported, else fp16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

"""Inference-time rewrites of a generator that keep its output (to float rounding).

BatchNorm with running statistics is an affine map per channel at inference, so it folds into
the convolution before it: one pass over the activations fewer. BatchNorm that normalises each
tile by its own statistics (``TileBatchNorm`` with ``inference_stats="tile"``) cannot be folded
and is left alone.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _fusable(conv: nn.Module, norm: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d | nn.ConvTranspose2d)
        and isinstance(norm, nn.BatchNorm2d)
        and norm.running_mean is not None
        and getattr(norm, "inference_stats", "running") == "running"
        and not conv.training
        and not norm.training
    )


def fuse_batchnorm(module: nn.Module) -> int:
    """Fold each eval-mode BatchNorm2d with running statistics into the Conv2d or
    ConvTranspose2d just before it in an ``nn.Sequential``; returns how many were folded.

    The BatchNorm is replaced by ``nn.Identity`` in place; call on a module in eval mode.
    """
    fused = 0
    for seq in list(module.modules()):
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(1, len(seq)):
            if _fusable(seq[i - 1], seq[i]):
                transpose = isinstance(seq[i - 1], nn.ConvTranspose2d)
                seq[i - 1] = fuse_conv_bn_eval(seq[i - 1], seq[i], transpose=transpose)
                seq[i] = nn.Identity()
                fused += 1
    return fused

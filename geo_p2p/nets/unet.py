"""pix2pix networks: U-Net generator and PatchGAN discriminator (Isola et al. 2017).

Layer for layer the architecture of the paper's reference PyTorch code (``unet_256`` and the
``basic`` 70x70 PatchGAN with BatchNorm): at ``ngf=64`` the generator has 54,413,955 parameters
and the discriminator (``ndf=64``) 2,768,705.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

InferenceStats = Literal["running", "tile"]


class TileBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose statistics at inference are either the running ones or each tile's own.

    In training it is plain BatchNorm. In eval mode, ``inference_stats == "tile"`` normalises every
    sample by its own per-channel mean and variance (what BatchNorm computes in training at batch
    size 1), so the result never depends on which tiles share a batch.
    """

    inference_stats: InferenceStats = "running"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.inference_stats == "running":
            return super().forward(x)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


def levels_for_tile(tile: int) -> int:
    """Number of stride-2 levels of the U-Net for a square tile (256 -> 8).

    >>> levels_for_tile(256), levels_for_tile(64)
    (8, 6)
    """
    levels = int(round(math.log2(tile)))
    if 2**levels != tile or levels < 5:
        raise ValueError(f"tile size must be a power of two >= 32, got {tile}")
    return levels


class UNetGenerator(nn.Module):
    """U-Net generator mapping (N, in_ch, T, T) in [-1, 1] to (N, out_ch, T, T) in [-1, 1].

    ``levels`` stride-2 4x4 convolutions take the tile down to 1x1 (8 for 256 px tiles); channels
    grow ngf, 2ngf, 4ngf, then 8ngf. The decoder mirrors it with transposed convolutions and skip
    concatenations; Dropout(0.5) sits in the ``levels - 5`` decoder blocks next to the innermost.
    """

    def __init__(
        self, ngf: int = 64, levels: int = 8, in_ch: int = 3, out_ch: int = 3, dropout: float = 0.5
    ) -> None:
        super().__init__()
        if levels < 5:
            raise ValueError("the U-Net needs at least 5 levels")
        chans = [ngf * min(2**k, 8) for k in range(levels)]
        self.encoder = nn.ModuleList()
        for k in range(levels):
            if k == 0:
                self.encoder.append(nn.Conv2d(in_ch, chans[0], 4, 2, 1, bias=False))
                continue
            block: list[nn.Module] = [
                nn.LeakyReLU(0.2),
                nn.Conv2d(chans[k - 1], chans[k], 4, 2, 1, bias=False),
            ]
            if k < levels - 1:
                block.append(TileBatchNorm(chans[k]))
            self.encoder.append(nn.Sequential(*block))
        self.decoder = nn.ModuleList()
        for k in range(levels):
            c_in = chans[k] if k == levels - 1 else 2 * chans[k]
            if k == 0:
                block = [nn.ReLU(), nn.ConvTranspose2d(c_in, out_ch, 4, 2, 1), nn.Tanh()]
            else:
                block = [
                    nn.ReLU(),
                    nn.ConvTranspose2d(c_in, chans[k - 1], 4, 2, 1, bias=False),
                    TileBatchNorm(chans[k - 1]),
                ]
                if 4 <= k < levels - 1 and dropout > 0:
                    block.append(nn.Dropout(dropout))
            self.decoder.append(nn.Sequential(*block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for enc in self.encoder:
            x = enc(x)
            skips.append(x)
        x = self.decoder[-1](skips[-1])
        for k in range(len(self.decoder) - 2, -1, -1):
            x = self.decoder[k](torch.cat([skips[k], x], 1))
        return x


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN on concat(A, B): (N, in_ch, 256, 256) -> (N, 1, 30, 30) logits."""

    def __init__(self, ndf: int = 64, in_ch: int = 6, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = ndf
        for n in range(1, n_layers + 1):
            c_next = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(c, c_next, 4, stride, 1, bias=False),
                nn.BatchNorm2d(c_next),
                nn.LeakyReLU(0.2),
            ]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Initialise as the paper: convolutions N(0, std), BatchNorm scale N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def set_inference_stats(module: nn.Module, stats: InferenceStats) -> None:
    """Choose running or per-tile BatchNorm statistics for every TileBatchNorm in ``module``."""
    if stats not in ("running", "tile"):
        raise ValueError(f"inference statistics must be 'running' or 'tile', got {stats!r}")
    for m in module.modules():
        if isinstance(m, TileBatchNorm):
            m.inference_stats = stats


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

"""Test-time adaptation: BatchNorm statistics from the raster being rendered (AdaBN), and the
eight-fold dihedral average of a generator.

AdaBN (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain Adaptation")
replaces a network's BatchNorm statistics by those of the target domain's data. Here one
forward pass over a sample of the input's tiles gives, for every ``TileBatchNorm`` in order,
the per-channel mean and variance of its input (each layer seeing the layers before it already
normalised by the sample's statistics); :func:`use_statistics` then makes every tile use them,
as fixed ("running") statistics, so the result is deterministic, the same for every tile (no
seams from statistics) and foldable into the convolutions.

``pooling`` chooses the variance: ``"tile"`` is the mean of the tiles' own variances, what the
running averages of a model trained at batch size 1 estimate (so in the training's domain it
behaves like the running statistics); ``"population"`` is the variance over all the sample's
pixels, between-tile differences included (AdaBN's).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nets import TileBatchNorm
from ..raster import NODATA_FILL, Source
from ..reader import RasterReader
from .mosaic import u8_to_signed

Pooling = Literal["tile", "population"]
Statistics = dict[str, tuple[torch.Tensor, torch.Tensor]]
"""Per TileBatchNorm (by module name): per-channel mean and variance."""


def sample_tiles(image: np.ndarray, tile: int, count: int) -> np.ndarray:
    """Up to ``count`` tiles of an (H, W, 3) uint8 image, spread evenly over a grid of
    non-overlapping tiles in row-major order: (N, 3, tile, tile) uint8. An image smaller than a
    tile is mirrored up to one tile, as the render pads it."""
    h, w = image.shape[:2]
    if h < tile or w < tile:
        pad = ((0, max(0, tile - h)), (0, max(0, tile - w)), (0, 0))
        image = np.pad(image, pad, mode="symmetric")
        h, w = image.shape[:2]
    starts = [(r, c) for r in _starts(h, tile) for c in _starts(w, tile)]
    picked = [starts[i] for i in spread(len(starts), count)]
    return np.stack([image[r : r + tile, c : c + tile].transpose(2, 0, 1) for r, c in picked])


CANDIDATES = 32
"""Tiles per axis whose validity :func:`raster_sample` reads to choose its sample from."""


def _starts(size: int, tile: int) -> list[int]:
    """Tile starts along one axis: every ``tile`` px, the last one flush with the edge."""
    starts = list(range(0, size - tile + 1, tile))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def spread(n: int, count: int) -> list[int]:
    """``min(n, count)`` indices spread evenly over ``range(n)``, in order.

    >>> spread(10, 3), spread(2, 5)
    ([0, 4, 9], [0, 1])
    """
    if count >= n:
        return list(range(n))
    return [round(i * (n - 1) / (count - 1)) for i in range(count)] if count > 1 else [n // 2]


def raster_sample(source: Source, tile: int, count: int, min_valid: float = 0.9) -> np.ndarray:
    """Up to ``count`` tiles of a raster's output grid (``source``, as the render reads it),
    spread evenly over its non-overlapping tiles that hold at least ``min_valid`` valid pixels
    (all tiles when none does): (N, 3, tile, tile) uint8, no-data filled with each tile's mean
    valid colour as the render fills it, tiles cut by the raster's edge mirrored.

    The sample of :func:`normalisation_statistics` and of the out-of-domain distance
    (:func:`geo_p2p.domain.sample_features`). It reads the validity of at most
    :data:`CANDIDATES` x :data:`CANDIDATES` non-overlapping tiles spread over the raster,
    decimated to 16 x 16 px, first, then the chosen tiles in full: a few seconds at most, however
    large the raster.
    """
    rows = _starts(max(source.height, tile), tile)
    cols = _starts(max(source.width, tile), tile)
    rows = [rows[i] for i in spread(len(rows), CANDIDATES)]
    cols = [cols[i] for i in spread(len(cols), CANDIDATES)]
    with RasterReader(source) as reader:
        shares = []
        for r in rows:
            for c in cols:
                h, w = min(tile, source.height - r), min(tile, source.width - c)
                _, valid = reader.read(r, c, h, w, out_shape=(16, 16))
                shares.append((valid.mean() * h * w / tile**2, r, c, h, w))
        usable = [s for s in shares if s[0] > 0]
        usable = [s for s in usable if s[0] >= min_valid] or usable
        tiles = []
        for i in spread(len(usable), count):
            _, r, c, h, w = usable[i]
            data, valid = reader.read(r, c, h, w)
            fill = data[:, valid].mean(axis=1) if valid.any() else np.full(3, NODATA_FILL)
            data = np.where(valid, data, fill.round().astype(np.uint8)[:, None, None])
            pad = ((0, 0), (0, tile - h), (0, tile - w))
            tiles.append(np.pad(data, pad, mode="symmetric"))
    if not tiles:
        raise ValueError(f"{source.path} has no valid pixels to sample")
    return np.stack(tiles)


@torch.no_grad()
def normalisation_statistics(
    module: nn.Module, tiles: np.ndarray | torch.Tensor, pooling: Pooling = "tile"
) -> Statistics:
    """Per-channel statistics of the input of every ``TileBatchNorm`` of ``module`` over a
    sample of tiles ((N, 3, T, T) uint8 RGB, or float in [-1, 1]), in one forward pass of the
    sample as one batch (memory grows with N: about 25 MB a 256 px tile at ngf 32)."""
    if pooling not in ("tile", "population"):
        raise ValueError(f"pooling must be 'tile' or 'population', got {pooling!r}")
    if isinstance(tiles, np.ndarray):
        tiles = torch.from_numpy(u8_to_signed(tiles))
    param = next(module.parameters())
    x = tiles.to(param.device, param.dtype)
    stats: Statistics = {}

    def normalise(m: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> torch.Tensor:
        (h,) = inputs
        means = h.mean(dim=(2, 3))
        var = h.var(dim=(2, 3), unbiased=False).mean(0)
        if pooling == "population":
            var = var + means.var(0, unbiased=False)
        mean = means.mean(0)
        stats[names[m]] = (mean, var)
        return F.batch_norm(h, mean, var, m.weight, m.bias, False, 0.0, m.eps)

    names = {m: n for n, m in module.named_modules() if isinstance(m, TileBatchNorm)}
    hooks = [m.register_forward_hook(normalise) for m in names]
    was_training = module.training
    try:
        module.eval()
        module(x)
    finally:
        for hook in hooks:
            hook.remove()
        module.train(was_training)
    return stats


def use_statistics(module: nn.Module, stats: Statistics) -> None:
    """Make every ``TileBatchNorm`` of ``module`` normalise with ``stats`` (as its running
    statistics) instead of each tile's own."""
    for name, m in module.named_modules():
        if isinstance(m, TileBatchNorm):
            mean, var = stats[name]
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.inference_stats = "running"


class DihedralMean(nn.Module):
    """Test-time augmentation: the mean of ``module``'s outputs over the eight rotations and
    flips of each tile, each turned back (8 times the cost of ``module``)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(x)
        for flip in (False, True):
            for turns in range(4):
                y = torch.rot90(x.flip(3) if flip else x, turns, (2, 3))
                y = torch.rot90(self.module(y), -turns, (2, 3))
                total += y.flip(3) if flip else y
        return total / 8

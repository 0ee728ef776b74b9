"""The tile stream: tiles read -> batches -> the engine -> blended, finished blocks.

Threads overlap the work: one reads and decodes the next tiles into batches, the engine runs the
model in its own worker threads, one blends the outputs and hands finished blocks on (to a
writer). Nothing holds the whole raster: each part (a strip or a region) is assembled by its own
:class:`~geo_p2p.render.mosaic.BlockMosaic`, which keeps only the blocks still open.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..aoi import AreaOfInterest
from ..inputs.prefetch import read_ahead
from ..mapclasses.vegetation import Vegetation
from ..progress import Progress
from ..raster import NODATA_FILL, Source
from ..reader import RasterReader
from .engine import InferenceEngine, restored_torch_threads
from .mosaic import DEFAULT_BLOCK, Block, BlockMosaic, u8_to_signed
from .pipeline import OrderedWorker, prefetch
from .tiling import Strip, Tile, TileGrid

TileData = tuple[Tile, np.ndarray, np.ndarray]
"""A tile, its model input (3, T, T) uint8 with no-data filled, and its validity (T, T) bool."""
ReadTiles = Callable[[Iterable[Tile]], Generator[TileData, None, None]]
"""Reads the given tiles in order (in the background thread that iterates it)."""


@dataclass
class _Batch:
    tiles: list[tuple[int, Tile, np.ndarray | None]]
    """Part index, tile and validity, in order; validity None for all-no-data tiles."""
    inputs: torch.Tensor | None
    """(N, 3, T, T) float32 in [-1, 1] for the tiles not skipped, or None."""


def translate_parts(
    engine: InferenceEngine,
    grid: TileGrid,
    parts: list[Strip],
    read_tiles: ReadTiles,
    write: Callable[[Block], None],
    bar: Progress | None = None,
    vegetation: Vegetation | None = None,
) -> tuple[int, int]:
    """Translate and blend the tiles of ``grid`` part by part, handing finished blocks to
    ``write`` in one background thread, in order. Returns the number of tiles translated and
    the number worked through (the difference was all no-data). ``vegetation``: paint each
    translated tile's vegetation before blending (:mod:`~geo_p2p.mapclasses.vegetation`)."""
    block = block_shape(parts)
    mosaics = [BlockMosaic(grid, block, strip=part) for part in parts]
    keys = [i for i, part in enumerate(parts) for _ in part.tiles]

    def blend(item: tuple[_Batch, torch.Tensor | None]) -> None:
        batch, y = item
        outputs = None if y is None else y.float().cpu().numpy()  # any memory layout
        if vegetation is not None and outputs is not None and batch.inputs is not None:
            inputs = batch.inputs.numpy()
            valids = [valid for _, _, valid in batch.tiles if valid is not None]
            for k, valid in enumerate(valids):
                vegetation.paint_tile(inputs[k], outputs[k], valid)
        k = 0
        for key, tile, valid in batch.tiles:
            if valid is None:
                blocks = mosaics[key].skip(tile)
            else:
                blocks = mosaics[key].add(tile, outputs[k], valid)  # type: ignore[index]
                k += 1
            for finished in blocks:
                write(finished)

    translated = 0
    tiles = read_tiles([tile for part in parts for tile in part.tiles])
    batches = _batches(engine, keys, tiles)
    queued_batches = contextlib.closing(prefetch(batches, setup=one_torch_thread))
    # The helper threads' one thread also became torch's default: restored on the way out.
    with (
        restored_torch_threads(),
        OrderedWorker(blend, setup=one_torch_thread) as writer,
        queued_batches as queued,
    ):
        results = contextlib.closing(engine.infer_stream(queued, lambda b: b.inputs, len(keys)))
        with results as translated_batches:
            for batch, y in translated_batches:
                writer.put((batch, y))
                translated += 0 if y is None else len(y)
                if bar is not None:
                    bar.update(len(batch.tiles))
    return translated, len(keys)


def block_shape(parts: list[Strip]) -> tuple[int, int]:
    """Height and width of the blocks that :func:`translate_parts` hands on for ``parts``: the
    mosaic's, narrowed where a part starts off its columns."""
    return DEFAULT_BLOCK[0], math.gcd(DEFAULT_BLOCK[1], *(part.start for part in parts))


def _batches(
    engine: InferenceEngine, keys: list[int], tiles: Generator[TileData, None, None]
) -> Generator[_Batch, None, None]:
    """Group tiles into batches of ``batch_size`` model inputs, skipping all-no-data ones."""
    entries: list[tuple[int, Tile, np.ndarray | None]] = []
    inputs: list[np.ndarray] = []
    with contextlib.closing(tiles):
        for key, (tile, data, valid) in zip(keys, tiles, strict=True):
            if valid.any():
                entries.append((key, tile, valid))
                inputs.append(data)
            else:
                entries.append((key, tile, None))
            # Also flush long runs of skipped tiles, so their blocks are written and freed.
            if len(inputs) == engine.batch_size or len(entries) >= 8 * engine.batch_size:
                yield _batch(engine, entries, inputs)
                entries, inputs = [], []
    if entries:
        yield _batch(engine, entries, inputs)


def _batch(
    engine: InferenceEngine,
    entries: list[tuple[int, Tile, np.ndarray | None]],
    inputs: list[np.ndarray],
) -> _Batch:
    if not inputs:
        return _Batch(entries, None)
    x = torch.from_numpy(u8_to_signed(np.stack(inputs)))
    x = x.contiguous(memory_format=engine.memory_format)
    return _Batch(entries, x.pin_memory() if engine.device.type == "cuda" else x)


def one_torch_thread() -> None:
    """For the reading and writing threads: their few torch operations (batch layout, bf16 to
    float) stay off the model's cores."""
    torch.set_num_threads(1)


def raster_tiles(
    source: Source, grid: TileGrid, area: AreaOfInterest | None, tiles: Iterable[Tile]
) -> Generator[TileData, None, None]:
    """Read ``tiles`` of ``grid`` from ``source`` (opened in the thread that iterates this)."""
    with RasterReader(source) as reader:
        for tile in read_ahead(reader, grid, tiles):  # a row at a time from a server
            h, w = grid.clip(tile)
            data, valid = reader.read(tile.row, tile.col, h, w)
            inside = valid & area.mask(tile.row, tile.col, h, w) if area is not None else valid
            yield tile, *model_input(data, valid, inside, grid.tile)


def model_input(
    data: np.ndarray, valid: np.ndarray, keep: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad a clipped window to a full tile: (3, size, size) uint8 with invalid pixels filled and
    mirrored beyond the raster, and ``keep`` (the pixels to output) padded with False.

    Invalid pixels take the mean colour of the tile's valid ones: a model with per-tile
    statistics (the bundled one) then sees statistics close to the valid part's, where a fixed
    grey shifted the colours of whole tiles along no-data edges (the web tiles' edges)."""
    if not valid.all():
        fill = data[:, valid].mean(axis=1) if valid.any() else np.full(3, NODATA_FILL)
        data = np.where(valid, data, fill.round().astype(np.uint8)[:, None, None])
    _, h, w = data.shape
    if (h, w) != (size, size):
        data = np.pad(data, ((0, 0), (0, size - h), (0, size - w)), mode="symmetric")
        keep = np.pad(keep, ((0, size - h), (0, size - w)))
    return data, keep

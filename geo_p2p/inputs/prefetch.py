"""Reading a remote input in rows of tiles, so that GDAL fetches the blocks under them and
little more.

Read tile by tile, a remote COG is fetched by GDAL's ``/vsicurl/`` heuristic for sequential
reads: consecutive blocks in the file make it double each download, up to 2 MB, well past the
blocks needed (an area of interest of a tenth of a 4096 px COG fetched 35 % of the file where
its blocks are 15 %; benchmarks/remote_reads.py). Reading first the window that a whole row of
tiles covers lets the GeoTIFF driver ask for the blocks of that window in one multi-range
request; the tiles are then read from GDAL's block cache (sized for a row of tiles, see
:func:`geo_p2p.geotiff.gdal_cache_bytes`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from .paths import is_remote

if TYPE_CHECKING:
    from ..reader import RasterReader
    from ..render.tiling import Tile, TileGrid


def read_ahead(reader: RasterReader, grid: TileGrid, tiles: Iterable[Tile]) -> Iterator[Tile]:
    """``tiles`` in their order; for a remote input, before the first tile of each run of
    tiles on one row, ``reader`` reads the window they cover together (the pixels are dropped:
    GDAL keeps the blocks)."""
    if not is_remote(reader.source.path):
        yield from tiles
        return
    for row, run in itertools.groupby(tiles, key=lambda tile: tile.row):
        run = list(run)
        sizes = [grid.clip(tile) for tile in run]
        left = min(tile.col for tile in run)
        right = max(tile.col + width for tile, (_, width) in zip(run, sizes, strict=True))
        reader.read(row, left, max(height for height, _ in sizes), right - left)
        yield from run

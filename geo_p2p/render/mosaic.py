"""Weighted assembly of translated tiles into finished output blocks, in bounded memory.

:class:`BlockMosaic` splits the raster into blocks and keeps float32 accumulators only for blocks
that some tile has touched and some tile touching them is still to come. Tiles arriving in the
grid's row-major order keep about ``width x (tile + block height)`` pixels open, whatever the
raster's height; each block is handed back, as uint8 and a validity mask, the moment its last tile
is in. The result of a pixel depends only on the tiles covering it, taken in grid order, so it is
the same however the tiles were batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tiling import Strip, Tile, TileGrid

DEFAULT_BLOCK = (64, 512)
"""Block height and width: 512 wide to match the output's internal tiles, 64 high to keep the
band of open blocks thin (see benchmarks/README.md, render memory)."""


def u8_to_signed(image: np.ndarray) -> np.ndarray:
    """uint8 digital numbers to float32 in [-1, 1] (the generator's range).

    >>> u8_to_signed(np.array([0, 255], np.uint8)).tolist()
    [-1.0, 1.0]
    """
    signed = np.divide(image, np.float32(127.5), dtype=np.float32)
    signed -= np.float32(1.0)
    return signed


def signed_to_u8(values: np.ndarray) -> np.ndarray:
    """float values in [-1, 1] back to uint8, rounded to nearest and clipped.

    >>> signed_to_u8(np.array([-1.5, 0.0, 1.0], np.float32)).tolist()
    [0, 128, 255]
    """
    x = np.asarray(values + np.float32(1.0))  # one temporary, the rest in place (hot loop)
    x *= np.float32(127.5)
    np.clip(np.rint(x, out=x), 0, 255, out=x)
    return x.astype(np.uint8)


@dataclass
class Block:
    """A finished piece of the output: top-left ``(row, col)``, ``rgb`` (C, h, w) uint8, and
    ``mask`` (h, w) uint8, 255 where the pixel is valid and 0 where it is no-data."""

    row: int
    col: int
    rgb: np.ndarray
    mask: np.ndarray


class BlockMosaic:
    """Accumulates weighted tile outputs of ``grid`` and returns blocks as they are finished.

    ``strip`` limits the mosaic to a strip of columns (its start a multiple of the block width),
    or a region (its top a multiple of the block height too), and to its tiles; by default it
    covers the whole grid.
    """

    def __init__(
        self,
        grid: TileGrid,
        block: tuple[int, int] = DEFAULT_BLOCK,
        channels: int = 3,
        strip: Strip | None = None,
    ) -> None:
        self.grid = grid
        self.block = block
        self.channels = channels
        self.strip = strip or Strip(0, grid.width, grid.tiles)
        if self.strip.start % block[1] or self.strip.top % block[0]:
            raise ValueError("a strip must start on a block boundary")
        self._bottom = grid.height if self.strip.bottom is None else self.strip.bottom
        bh, bw = block
        self._remaining = np.zeros((-(-grid.height // bh), -(-grid.width // bw)), np.int32)
        for tile in self.strip.tiles:
            self._remaining[self._block_range(tile)] += 1
        self._open: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def open_blocks(self) -> int:
        """Number of blocks currently held in memory."""
        return len(self._open)

    def _extent(self, tile: Tile) -> tuple[int, int, int, int]:
        """Rows and columns ``r0, r1, c0, c1`` of ``tile`` inside the raster and the strip."""
        h, w = self.grid.clip(tile)
        c0, c1 = max(tile.col, self.strip.start), min(tile.col + w, self.strip.stop)
        return max(tile.row, self.strip.top), min(tile.row + h, self._bottom), c0, c1

    def _block_range(self, tile: Tile) -> tuple[slice, slice]:
        r0, r1, c0, c1 = self._extent(tile)
        bh, bw = self.block
        return slice(r0 // bh, (r1 - 1) // bh + 1), slice(c0 // bw, (c1 - 1) // bw + 1)

    def add(self, tile: Tile, values: np.ndarray, valid: np.ndarray) -> list[Block]:
        """Add a translated tile: ``values`` (C, T, T) float32 in [-1, 1], ``valid`` (T, T) bool.

        Returns the blocks this tile finished.
        """
        weight = self.grid.weights(tile)
        weight = weight if valid.all() else weight * valid
        bh, bw = self.block
        top, bottom, left, right = self._extent(tile)
        rows, cols = self._block_range(tile)
        for by in range(rows.start, rows.stop):
            for bx in range(cols.start, cols.stop):
                acc, wsum = self._accumulators(by, bx)
                # Intersection of the tile and the block, in raster coordinates.
                r0, r1 = max(top, by * bh), min(bottom, (by + 1) * bh)
                c0, c1 = max(left, bx * bw), min(right, (bx + 1) * bw)
                t = np.s_[r0 - tile.row : r1 - tile.row, c0 - tile.col : c1 - tile.col]
                b = np.s_[r0 - by * bh : r1 - by * bh, c0 - bx * bw : c1 - bx * bw]
                acc[(slice(None), *b)] += values[(slice(None), *t)] * weight[t]
                wsum[b] += weight[t]
        return self._done(rows, cols)

    def skip(self, tile: Tile) -> list[Block]:
        """Count ``tile`` as done without output (it was all no-data); returns finished blocks."""
        return self._done(*self._block_range(tile))

    def _accumulators(self, by: int, bx: int) -> tuple[np.ndarray, np.ndarray]:
        if (by, bx) not in self._open:
            bh, bw = self.block
            h = min(bh, self._bottom - by * bh)
            w = min(bw, self.strip.stop - bx * bw)
            self._open[by, bx] = (
                np.zeros((self.channels, h, w), np.float32),
                np.zeros((h, w), np.float32),
            )
        return self._open[by, bx]

    def _done(self, rows: slice, cols: slice) -> list[Block]:
        self._remaining[rows, cols] -= 1
        finished = []
        for by in range(rows.start, rows.stop):
            for bx in range(cols.start, cols.stop):
                if self._remaining[by, bx] == 0:
                    finished.append(self._finish(by, bx))
        return finished

    def _finish(self, by: int, bx: int) -> Block:
        acc, wsum = self._accumulators(by, bx)  # a block whose tiles were all skipped is empty
        del self._open[by, bx]
        valid = wsum > 0
        mean = np.divide(acc, wsum, out=acc, where=valid)
        if not valid.all():
            mean[:, ~valid] = -1.0
        bh, bw = self.block
        return Block(by * bh, bx * bw, signed_to_u8(mean), valid.astype(np.uint8) * 255)

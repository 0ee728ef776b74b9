"""The crisp style: each pixel of a rendered map takes its class's colour, speckle voted away.

A painted map (the generator's blended output) is classified pixel by pixel with a
:class:`~geo_p2p.mapclasses.palette.Palette`, a majority filter over a square window replaces
each class by the one most of its neighbours have (:func:`majority_filter`), and the classes are
painted in their colours. :class:`CrispStream` does this on the finished blocks of a render, in
bounded memory, giving exactly what the filter gives on the whole raster.

Class values: in a class raster, 0 is no data and class index ``i`` of the palette is ``i + 1``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..render.mosaic import Block
from .palette import Palette

NODATA = 0
"""The class value of no-data pixels."""
DEFAULT_SPECKLE_M = 6.3
"""Default majority window side in ground metres (7 px at the bundled model's 0.9 m/px): the
best mean class IoU of the crisp style on the first 200 held-out maps pairs among 0-8.1 m
(benchmarks/map_classes.py quality, benchmarks/README.md)."""


def speckle_radius(speckle: float | None, gsd: float | None) -> int:
    """The majority window's radius for a ``--speckle`` of ``speckle`` ground metres (None: the
    default, :data:`DEFAULT_SPECKLE_M`) at ``gsd`` metres per pixel."""
    return window_radius(DEFAULT_SPECKLE_M if speckle is None else speckle, gsd)


def window_radius(size_m: float, gsd: float | None) -> int:
    """The radius in pixels of a square majority window about ``size_m`` ground metres wide at
    ``gsd`` metres per pixel (0: no filter); without a ground resolution, ``size_m`` is taken as
    pixels.

    >>> window_radius(4.5, 0.9), window_radius(0.0, 0.9), window_radius(3, None)
    (2, 0, 1)
    """
    if size_m < 0 or not math.isfinite(size_m):
        raise ValueError(f"the speckle filter size must be 0 or more metres, got {size_m}")
    pixels = size_m / gsd if gsd else size_m
    return max(0, round((pixels - 1) / 2))


def majority_filter(values: np.ndarray, radius: int, classes: int) -> np.ndarray:
    """Majority (mode) filter of a class raster over ``(2 radius + 1)^2`` windows.

    ``values`` (H, W) uint8 holds class values 1..``classes`` and 0 for no data. Each valid
    pixel takes the class most valid pixels of its window have; it keeps its own where that ties
    for the most, else the lowest tied class wins. No-data pixels neither vote nor change. The
    window is cut off at the array's edges. Returns a new (H, W) uint8 array.
    """
    if radius == 0:
        return values.copy()
    h, w = values.shape
    side = 2 * radius + 1
    best = np.zeros((h, w), np.int32)
    winner = np.zeros((h, w), np.uint8)
    own = np.zeros((h, w), np.int32)
    for c in range(1, classes + 1):
        hit = values == c
        if not hit.any():
            continue
        padded = np.zeros((h + side, w + side), np.int32)  # a zero row and column first
        np.cumsum(np.pad(hit, radius), axis=0, out=padded[1:, 1:])
        np.cumsum(padded, axis=1, out=padded)
        count = padded[side:, side:] - padded[:-side, side:] - padded[side:, :-side]
        count += padded[:-side, :-side]
        more = count > best
        best[more] = count[more]
        winner[more] = c
        own[hit] = count[hit]
    out = np.where(best > own, winner, values)
    out[values == NODATA] = NODATA
    return out


def class_values(palette: Palette, rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class values of a painted map ``rgb`` (3, H, W): palette index + 1, 0
    where ``valid`` (H, W) is False."""
    values = palette.classify(np.moveaxis(rgb, 0, -1)) + np.uint8(1)
    values[~valid] = NODATA
    return values


def crisp_image(
    palette: Palette, rgb: np.ndarray, radius: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """The crisp style of an in-memory (H, W, 3) uint8 map: classified, majority-filtered with
    ``radius``, painted; pixels not ``valid`` come out 0."""
    valid = np.ones(rgb.shape[:2], bool) if valid is None else valid
    values = majority_filter(
        class_values(palette, np.moveaxis(rgb, -1, 0), valid), radius, len(palette.classes)
    )
    return paint_values(palette, values)


def paint_values(palette: Palette, values: np.ndarray) -> np.ndarray:
    """(..., 3) uint8: class values painted in their colours, no data black."""
    colours = np.concatenate([np.zeros((1, 3), np.uint8), palette.colours])
    return colours[values]


@dataclass
class ClassBlock:
    """A finished block of class values: top-left ``(row, col)`` and ``values`` (h, w) uint8
    (0 no data)."""

    row: int
    col: int
    values: np.ndarray

    def crisp(self, palette: Palette) -> Block:
        """The block as a crisp RGB :class:`~geo_p2p.mosaic.Block` with its mask."""
        rgb = np.ascontiguousarray(np.moveaxis(paint_values(palette, self.values), -1, 0))
        return Block(self.row, self.col, rgb, (self.values != NODATA).astype(np.uint8) * 255)


class CrispStream:
    """Turns the finished blocks of a painted render into majority-filtered class blocks.

    The raster is ``height x width`` pixels cut into blocks of ``block = (bh, bw)`` (the last
    row and column smaller), each given to :meth:`add` once, in any order. A block is filtered
    and handed to ``emit`` (as a :class:`ClassBlock`) as soon as every block its window reaches
    (its eight neighbours) is in, or known never to come: ``expected`` (a bool array over the
    block grid; None: all) says which blocks will be added. The result is exactly
    :func:`majority_filter` on the whole raster, with blocks never added as no data.

    Memory: each block's class values are kept zlib-compressed (a few hundred bytes for most
    map blocks) while a neighbour still needs them, so a render in strips, whose blocks along
    a strip's right edge wait for the next strip, holds a few bytes per row of raster, and a
    render in rows of blocks about two rows of blocks. :meth:`finish` hands on what is left.
    """

    def __init__(
        self,
        height: int,
        width: int,
        block: tuple[int, int],
        palette: Palette,
        radius: int,
        emit: Callable[[ClassBlock], None],
        expected: np.ndarray | None = None,
    ) -> None:
        bh, bw = block
        if not 0 <= radius <= min(bh, bw):
            raise ValueError(f"the majority window radius must be 0..{min(bh, bw)}, got {radius}")
        self.height, self.width, self.block = height, width, block
        self.palette, self.radius, self.emit = palette, radius, emit
        shape = (-(-height // bh), -(-width // bw))
        self._expected = np.ones(shape, bool) if expected is None else expected.copy()
        if self._expected.shape != shape:
            raise ValueError(f"expected must have the block grid's shape {shape}")
        self._stored: dict[tuple[int, int], bytes] = {}
        self._emitted = np.zeros(shape, bool)

    @property
    def held(self) -> int:
        """Blocks whose class values are held."""
        return len(self._stored)

    def add(self, block: Block) -> None:
        """Add a finished painted block (its rgb and mask)."""
        key = self._key(block.row, block.col)
        if key in self._stored or self._emitted[key]:
            raise ValueError(f"block at row {block.row}, column {block.col} was added twice")
        values = class_values(self.palette, block.rgb, block.mask > 0)
        self._stored[key] = zlib.compress(values.tobytes(), 1)
        self._expected[key] = True
        for n in sorted(self._around(*key)):
            if n in self._stored and not self._emitted[n] and self._ready(*n):
                self._emit(*n)
        self._release(key)

    def finish(self) -> None:
        """Hand on every block added and not yet handed on (blocks still expected and never
        added count as no data)."""
        self._expected[:] = False
        for key in sorted(self._stored):
            if not self._emitted[key]:
                self._emit(*key)
        self._stored.clear()

    def _key(self, row: int, col: int) -> tuple[int, int]:
        bh, bw = self.block
        if row % bh or col % bw:
            raise ValueError(f"a block must start on the block grid, not at ({row}, {col})")
        return row // bh, col // bw

    def _around(self, by: int, bx: int) -> list[tuple[int, int]]:
        """The block and its neighbours inside the block grid."""
        rows, cols = self._emitted.shape
        return [
            (y, x)
            for y in range(max(by - 1, 0), min(by + 2, rows))
            for x in range(max(bx - 1, 0), min(bx + 2, cols))
        ]

    def _ready(self, by: int, bx: int) -> bool:
        return self.radius == 0 or all(
            n in self._stored or self._emitted[n] or not self._expected[n]
            for n in self._around(by, bx)
        )

    def _values(self, by: int, bx: int) -> np.ndarray | None:
        data = self._stored.get((by, bx))
        if data is None:
            return None
        bh, bw = self.block
        h, w = min(bh, self.height - by * bh), min(bw, self.width - bx * bw)
        return np.frombuffer(zlib.decompress(data), np.uint8).reshape(h, w)

    def _emit(self, by: int, bx: int) -> None:
        bh, bw = self.block
        r = self.radius
        row, col = by * bh, bx * bw
        h, w = min(bh, self.height - row), min(bw, self.width - col)
        top, left = max(row - r, 0), max(col - r, 0)
        bottom, right = min(row + h + r, self.height), min(col + w + r, self.width)
        window = np.zeros((bottom - top, right - left), np.uint8)
        for y, x in self._around(by, bx):
            values = self._values(y, x)
            if values is None:
                continue  # never added: no data
            r0, c0 = y * bh, x * bw
            r1, c1 = r0 + values.shape[0], c0 + values.shape[1]
            ir0, ir1, ic0, ic1 = max(r0, top), min(r1, bottom), max(c0, left), min(c1, right)
            if ir0 < ir1 and ic0 < ic1:
                window[ir0 - top : ir1 - top, ic0 - left : ic1 - left] = values[
                    ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0
                ]
        filtered = majority_filter(window, r, len(self.palette.classes))
        core = filtered[row - top : row - top + h, col - left : col - left + w]
        self._emitted[by, bx] = True
        self.emit(ClassBlock(row, col, np.ascontiguousarray(core)))
        for n in self._around(by, bx):
            self._release(n)

    def _release(self, key: tuple[int, int]) -> None:
        """Drop a block's values once it and every neighbour that may need them are done."""
        if key in self._stored and all(
            self._emitted[n] or not self._expected[n] for n in self._around(*key)
        ):
            del self._stored[key]

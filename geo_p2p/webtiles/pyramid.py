"""The lower zooms of a web tile pyramid, built while the highest zoom is being cut.

Each tile handed to :meth:`Pyramid.add` is halved at once into its quarter of its parent
(:func:`quarter`: alpha-weighted 2x2 means), so no tile is read back or decoded. A parent is
written as soon as its last child is in, then handed on to its own parent in turn. Only parents
with some but not all children are held: along the row being cut and the edges of the render's
strips, not a whole zoom.

Tiles are encoded in a few threads (zlib and numpy release the GIL), and written in the order
they were made: a tile is written only after all its children are, so a store that an
interruption left behind says what is settled. A tile is settled when it or one of its ancestors
was written (a parent written means its children were all done, the missing ones empty), and
:meth:`Pyramid.start` hands the written tiles whose parents are still open back in from the
store, so a resumed run only makes what is missing.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..progress import Progress
from .codec import decode_tile, encode_tile
from .mercator import WEB_TILE, TileRange
from .stores import TileStore

HALF = WEB_TILE // 2
ENCODE_THREADS = min(4, os.cpu_count() or 1)
"""Threads encoding tiles: one PNG tile takes a few milliseconds, so one thread would hold back
a fast model (a GPU), and more than four are rarely needed."""


def quarter(child: np.ndarray) -> np.ndarray:
    """A (4, 256, 256) RGBA tile halved to (4, 128, 128): each pixel the alpha-weighted mean
    colour of 2x2 pixels, rounded half up, and their mean alpha."""
    opaque = bool(child[3].all())
    values = child.astype(np.uint16 if opaque else np.uint32)  # opaque: sums of 4 fit 16 bits
    if not opaque:
        values[:3] *= values[3]
    sums = values[:, 0::2, 0::2] + values[:, 0::2, 1::2]
    sums += values[:, 1::2, 0::2]
    sums += values[:, 1::2, 1::2]
    if opaque:
        return ((sums + 2) // 4).astype(np.uint8)
    weight = sums[3]
    rgb = (2 * sums[:3] + weight) // np.maximum(2 * weight, 1)
    return np.concatenate([rgb, ((weight + 2) // 4)[None]]).astype(np.uint8)


class Pyramid:
    """Writes tiles of the zooms of ``ranges`` into ``store`` as ``fmt``, making each zoom
    below the highest from the tiles :meth:`add` is given: :meth:`start`, :meth:`add` each
    tile of the highest zoom that is not :meth:`settled`, then :meth:`finish`. Use as a context
    manager (it stops its encoding threads)."""

    def __init__(
        self,
        store: TileStore,
        fmt: str,
        ranges: dict[int, TileRange],
        threads: int = ENCODE_THREADS,
    ) -> None:
        self.store, self.fmt, self.ranges = store, fmt, ranges
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="geo-p2p-encode")
        self._waiting = 2 * threads
        self._encoding: deque[tuple[int, int, int, Future[bytes]]] = deque()
        self.top, self.bottom = max(ranges), min(ranges)
        self.done = {z: {(r.unwrap(x), y) for x, y in store.done(z)} for z, r in ranges.items()}
        self.stored = sum(len(tiles) for tiles in self.done.values())
        """Tiles already in the store (an interrupted run's)."""
        self.written = 0
        self.bar: Progress | None = None
        self._counted = self.stored
        self._open: dict[tuple[int, int, int], tuple[np.ndarray, int]] = {}

    def settled(self, zoom: int, x: int, y: int) -> bool:
        """Whether the tile or one of its ancestors is in the store (then nothing is to do)."""
        while zoom >= self.bottom:
            if (x, y) in self.done[zoom]:
                return True
            zoom, x, y = zoom - 1, x // 2, y // 2
        return False

    def start(self, bar: Progress) -> None:
        """Count progress on ``bar``; hand the stored tiles whose parents are still to be made
        back in, highest zoom first (what an interrupted run finished but did not pass on)."""
        self.bar = bar
        for zoom in range(self.top, self.bottom, -1):
            for x, y in sorted(self.done[zoom], key=lambda key: (key[1], key[0])):
                if not self.settled(zoom - 1, x // 2, y // 2):
                    data = self.store.read(zoom, x % (1 << zoom), y)
                    assert data is not None  # listed as done
                    self._pass_up(zoom, x, y, decode_tile(data))

    def add(self, zoom: int, x: int, y: int, rgba: np.ndarray | None) -> None:
        """Write a finished tile (None: empty, not written) and pass it on to its parent."""
        if rgba is not None:
            self._encoding.append((zoom, x, y, self._pool.submit(encode_tile, rgba, self.fmt)))
            while self._encoding and (
                len(self._encoding) > self._waiting or self._encoding[0][3].done()
            ):
                self._write_first()
        self._count(1)
        self._pass_up(zoom, x, y, rgba)

    def finish(self) -> None:
        """Write the parents still open (their other children never came: empty), top down."""
        for zoom in range(self.top - 1, self.bottom - 1, -1):
            for key in sorted(k for k in self._open if k[0] == zoom):
                tile, _ = self._open.pop(key)
                self.add(*key, tile if tile[3].any() else None)
        while self._encoding:
            self._write_first()
        self._count(sum(map(len, self.ranges.values())) - self._counted)  # settled by ancestors

    def __enter__(self) -> Pyramid:
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop encoding; tiles not yet written are dropped (their parents were not written)."""
        self._pool.shutdown(cancel_futures=True)

    def _write_first(self) -> None:
        zoom, x, y, encoded = self._encoding.popleft()
        self.store.write(zoom, x % (1 << zoom), y, encoded.result())  # past 180: wrapped
        self.written += 1

    def _count(self, tiles: int) -> None:
        self._counted += tiles
        if self.bar is not None:
            self.bar.update(tiles)

    def _pass_up(self, zoom: int, x: int, y: int, rgba: np.ndarray | None) -> None:
        if zoom == self.bottom:
            return
        key = (zoom - 1, x // 2, y // 2)
        tile, count = self._open.pop(key, (None, 0))
        if tile is None:
            tile = np.zeros((4, WEB_TILE, WEB_TILE), np.uint8)
        if rgba is not None:
            r, c = (y % 2) * HALF, (x % 2) * HALF
            tile[:, r : r + HALF, c : c + HALF] = quarter(rgba)
        if count + 1 == self._children(*key):
            self.add(*key, tile if tile[3].any() else None)
        else:
            self._open[key] = (tile, count + 1)

    def _children(self, zoom: int, x: int, y: int) -> int:
        """How many of the tile's four children are in the zoom above's range."""
        above = self.ranges[zoom + 1]
        columns = min(2 * x + 1, above.x1) - max(2 * x, above.x0) + 1
        rows = min(2 * y + 1, above.y1) - max(2 * y, above.y0) + 1
        return columns * rows

"""Road centrelines of a class raster read in blocks: the road classes thinned to a skeleton per
block (with a halo), the skeleton graph cut into lines at junctions, ends and block edges, and
lines joined across block edges (see :mod:`geo_p2p.mapclasses.vectorize`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import shapely

from .vector_layers import Grid, Layers

CENTRELINES = "road_centrelines"
"""The name of the line layer."""


_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _links(skeleton: np.ndarray) -> np.ndarray:
    """(8, H, W) bool: whether each skeleton pixel is joined to its neighbour at each of
    :data:`_OFFSETS`: 4-neighbours always, diagonal ones only where neither pixel between them
    is on the skeleton (so corners of a staircase are not triangles)."""
    h, w = skeleton.shape
    padded = np.pad(skeleton, 1)

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    out = np.zeros((8, h, w), bool)
    for i, (dy, dx) in enumerate(_OFFSETS):
        link = skeleton & at(dy, dx)
        if dy and dx:
            link &= ~at(dy, 0) & ~at(0, dx)
        out[i] = link
    return out


@dataclass
class _Piece:
    """A traced line, (N, 2) pixel-centre coordinates, and whether each end is open (on a
    pixel linked across a block edge, where it may continue in another block)."""

    coords: np.ndarray
    open_start: bool
    open_end: bool


class Centrelines:
    """Skeleton lines of each block, cut at junctions and block edges, joined along edges."""

    def __init__(self, grid: Grid, values: list[int], layers: Layers, simplify: float, block: int):
        """``values``: the classes thinned; ``simplify``: tolerance, ground metres; ``block``:
        the block side, pixels."""
        self.grid, self.values, self.layers = grid, values, layers
        self.block = block
        self.scale = math.sqrt(grid.pixel_area)  # ground metres per pixel
        self.tolerance = simplify / self.scale
        self._open: list[_Piece] = []
        layers.declare(CENTRELINES, "LineString", {"length_m": "float64"})

    def add_block(self, row: int, col: int, read: tuple[np.ndarray, int, int]) -> None:
        from skimage.morphology import skeletonize

        values, top, left = read
        skeleton = skeletonize(np.isin(values, self.values))
        links = _links(skeleton)
        r0, c0 = row - top, col - left
        bh = min(self.block, self.grid.height - row)
        bw = min(self.block, self.grid.width - col)
        for path, open_start, open_end in _trace(skeleton, links, (r0, c0, bh, bw)):
            coords = np.array(path, np.float64)[:, ::-1] + (left + 0.5, top + 0.5)
            piece = _Piece(coords, open_start, open_end)
            if open_start or open_end:
                self._open.append(piece)
            else:
                self._write(piece.coords)

    def end_row(self, bottom: int) -> None:
        """Join the open pieces where exactly two open ends meet; write the lines that do not
        reach into the next row. Every end above ``bottom`` has met all the pieces it will
        meet, so it is closed from now on."""
        last = bottom >= self.grid.height
        pieces, self._open = _join(self._open, math.inf if last else bottom), []
        for piece in pieces:
            piece.open_start &= not last and bool(piece.coords[0, 1] > bottom)
            piece.open_end &= not last and bool(piece.coords[-1, 1] > bottom)
            if piece.open_start or piece.open_end:
                self._open.append(piece)
            else:
                self._write(piece.coords)

    def _write(self, coords: np.ndarray) -> None:
        line = shapely.LineString(coords)
        if self.tolerance > 0:
            line = shapely.simplify(line, self.tolerance, preserve_topology=False)
        self.layers.add(CENTRELINES, self.grid.to_crs(line), length_m=line.length * self.scale)


def _join(pieces: list[_Piece], bottom: float) -> list[_Piece]:
    """Join pieces end to end at points above ``bottom`` where exactly two open ends meet (a
    line continuing across a block edge); three or more open ends there are a junction and stay
    apart. Points below ``bottom`` may still get pieces from blocks not yet done."""
    at: dict[tuple[float, float], list[tuple[int, int]]] = {}
    for i, p in enumerate(pieces):
        for end, is_open in ((0, p.open_start), (1, p.open_end)):
            if is_open:
                xy = p.coords[-end]
                at.setdefault((float(xy[0]), float(xy[1])), []).append((i, end))
    partner: dict[tuple[int, int], tuple[int, int]] = {}
    for (_, y), ends in at.items():
        if y < bottom and len(ends) == 2 and ends[0][0] != ends[1][0]:
            partner[ends[0]], partner[ends[1]] = ends[1], ends[0]
    out, done = [], set()
    # Start at pieces with a free end (paths), then what is left (cycles of joined pieces).
    order = [i for i in range(len(pieces)) if (i, 0) not in partner or (i, 1) not in partner]
    order += range(len(pieces))
    for first in order:
        if first in done:
            continue
        start_end = 0 if (first, 0) not in partner else 1 if (first, 1) not in partner else 0
        coords, i, entry = [], first, start_end
        open_start = pieces[first].open_start if start_end == 0 else pieces[first].open_end
        while True:
            done.add(i)
            c = pieces[i].coords if entry == 0 else pieces[i].coords[::-1]
            coords.append(c if not coords else c[1:])
            exit_end = 1 - entry
            nxt = partner.get((i, exit_end))
            if nxt is None or nxt[0] in done:
                open_end = pieces[i].open_end if exit_end == 1 else pieces[i].open_start
                open_end = open_end and nxt is None
                break
            i, entry = nxt
        out.append(
            _Piece(
                np.concatenate(coords), open_start and (first, start_end) not in partner, open_end
            )
        )
    return out


def _trace(
    skeleton: np.ndarray, links: np.ndarray, core: tuple[int, int, int, int]
) -> Iterator[tuple[list[tuple[int, int]], bool, bool]]:
    """The lines of the skeleton graph owned by the block ``core = (row, col, h, w)`` (window
    coordinates): each joins two nodes (pixels whose degree is not 2, or that link across the
    block's edge) through pixels of degree 2. A link between pixels of two blocks belongs to the
    block of the one first in raster order. Yields ``(path, open_start, open_end)``: the
    (row, col) pixels of a line, and whether each end is a pixel linked across a block edge
    (where the line may go on in another block)."""
    r0, c0, h, w = core
    degree = links.sum(axis=0)

    def inside(y: int, x: int) -> bool:
        return r0 <= y < r0 + h and c0 <= x < c0 + w

    def owned(y: int, x: int, ny: int, nx: int) -> bool:
        """Whether the link from core pixel (y, x) to (ny, nx) is this block's."""
        return inside(ny, nx) or (ny, nx) > (y, x)

    def crossing(y: int, x: int) -> bool:
        """Whether the pixel has a link that leaves the block (or is outside it)."""
        if not inside(y, x):
            return True
        return any(
            links[i, y, x] and not inside(y + dy, x + dx) for i, (dy, dx) in enumerate(_OFFSETS)
        )

    def neighbours(y: int, x: int) -> list[tuple[int, int]]:
        return [(y + dy, x + dx) for i, (dy, dx) in enumerate(_OFFSETS) if links[i, y, x]]

    used: set[tuple[tuple[int, int], tuple[int, int]]] = set()

    def walk(start: tuple[int, int], nxt: tuple[int, int]) -> list[tuple[int, int]]:
        """Follow links from ``start`` through ``nxt`` to the next node (or round a loop)."""
        path, prev, cur = [start], start, nxt
        used.add((start, nxt) if start < nxt else (nxt, start))
        while True:
            path.append(cur)
            if cur == start or not inside(*cur) or degree[cur] != 2 or crossing(*cur):
                return path
            prev, cur = cur, next(n for n in neighbours(*cur) if n != prev)
            used.add((prev, cur) if prev < cur else (cur, prev))

    ys, xs = np.nonzero(skeleton[r0 : r0 + h, c0 : c0 + w])
    pixels = [(int(y) + r0, int(x) + c0) for y, x in zip(ys, xs, strict=True)]
    starts = [p for p in pixels if degree[p] != 2 or crossing(*p)]
    for p in starts + pixels:  # nodes first, then loops of degree-2 pixels
        for n in neighbours(*p):
            key = (p, n) if p < n else (n, p)
            if key in used or not owned(*p, *n):
                continue
            path = walk(p, n)
            yield path, crossing(*path[0]), path[-1] != path[0] and crossing(*path[-1])

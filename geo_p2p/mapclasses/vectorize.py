"""Vector layers from a class raster: one polygon layer per class, and road centrelines.

The raster is read in square blocks, a row of blocks at a time, so memory follows the width of
the raster and the features that cross block rows, not its area:

- Polygons: each block is polygonised (GDAL's polygonize through rasterio, 4-connected) in pixel
  coordinates, which are integers, so the pieces of a region cut by block edges share their
  edges exactly. Pieces touching a block edge are unioned with their neighbours once the row is
  done; a region still reaching into the next row waits for it. Each finished polygon is then
  simplified (in ground units, topology kept), its holes below the minimum area filled, dropped
  if itself below it, and written in the raster's CRS.
- Centrelines: the road classes are thinned to a one-pixel skeleton (scikit-image), computed per
  block with a halo around it so that the skeleton in the block is the whole raster's (for roads
  narrower than twice the halo). Skeleton pixels are joined to their neighbours (4-connected, and
  diagonally where no 4-connected path exists), and the graph is cut into lines at junctions,
  ends and block edges; lines meeting at a block edge are merged (``shapely.line_merge``) once
  both blocks are done, so a road that crosses blocks is one line, and lines meet at junctions.

The GeoPackage is written with pyogrio (the ``vectors`` extra) under a temporary name and
renamed at the end.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.features import shapes
from rasterio.windows import Window

from ..errors import RenderError
from ..files import check_output, temporary_path
from ..geodesy import pixel_metres
from ..raster import open_quietly
from .classraster import read_class_names

log = logging.getLogger(__name__)

ROAD_CLASSES = ("road", "highway")
"""Classes thinned to centrelines by default (those of them the raster has)."""
CENTRELINES = "road_centrelines"
"""The name of the line layer."""
DEFAULT_BLOCK = 1024
DEFAULT_HALO = 64
READ_CACHE = 32 * 2**20
"""GDAL block cache while reading the class raster, bytes: a row of blocks and their halo."""
_FLUSH = 5000
"""Features buffered per layer before they are appended to the GeoPackage."""
_POLYGON_FIELDS = {"class": "object", "value": "int32", "area_m2": "float64"}


@dataclass(frozen=True)
class VectorOptions:
    """How a class raster is turned into vector layers.

    simplify: tolerance of the simplification, ground metres (0: the pixel staircase).
    min_area: polygons (and holes) smaller than this, square ground metres, are dropped
        (filled).
    lines: the classes thinned to centrelines (none: no line layer).
    block, halo: block side and skeleton halo in pixels.
    """

    simplify: float = 1.0
    min_area: float = 4.0
    lines: tuple[str, ...] = ROAD_CLASSES
    block: int = DEFAULT_BLOCK
    halo: int = DEFAULT_HALO


@dataclass
class VectorSummary:
    """What :func:`vectorize` wrote: features per layer."""

    output: Path
    features: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.features.items())
        return f"wrote {counts}: {self.output}"


class _Layers:
    """Buffers features per layer and appends them to a GeoPackage with pyogrio."""

    def __init__(self, path: Path, crs: str | None) -> None:
        self.path, self.crs = path, crs
        self._kinds: dict[str, tuple[str, dict[str, str]]] = {}
        self._buffers: dict[str, tuple[list[bytes], dict[str, list]]] = {}
        self._written: set[str] = set()
        self.counts: dict[str, int] = {}

    def declare(self, layer: str, geometry_type: str, fields: dict[str, str]) -> None:
        """A layer of ``geometry_type`` with ``fields`` (name -> numpy dtype)."""
        self._kinds[layer] = (geometry_type, fields)
        self._buffers[layer] = ([], {f: [] for f in fields})
        self.counts[layer] = 0

    def add(self, layer: str, geometry: shapely.Geometry, **values: object) -> None:
        geoms, columns = self._buffers[layer]
        geoms.append(shapely.to_wkb(geometry))
        for name, column in columns.items():
            column.append(values[name])
        self.counts[layer] += 1
        if len(geoms) >= _FLUSH:
            self._flush(layer)

    def close(self) -> None:
        """Write what is buffered, and every declared layer, empty ones included."""
        for layer in self._kinds:
            self._flush(layer)

    def _flush(self, layer: str) -> None:
        import pyogrio.raw

        kind, fields = self._kinds[layer]
        geoms, columns = self._buffers[layer]
        if not geoms and layer in self._written:
            return
        pyogrio.raw.write(
            self.path,
            np.array(geoms, dtype=object),
            [np.array(columns[f], dtype=dtype) for f, dtype in fields.items()],
            list(fields),
            layer=layer,
            driver="GPKG",
            geometry_type=kind,
            crs=self.crs,
            append=bool(self._written),
            # GeoPackage 1.2: what GDAL before 3.7 (QGIS 3.22's, say) reads without warnings.
            dataset_options=None if self._written else {"VERSION": "1.2"},
        )
        self._written.add(layer)
        geoms.clear()
        for column in columns.values():
            column.clear()


def require_vectors(param: str | None = None) -> None:
    """Refuse to go on without the vectors extra (pyogrio, scikit-image), saying how to get it."""
    try:
        import pyogrio  # noqa: F401
        import skimage  # noqa: F401
    except ImportError as e:
        raise RenderError(
            f"vectorising needs the vectors extra ({e.name} is missing): "
            "pip install 'geo-p2p[vectors]'",
            param,
        ) from e


def vectorize(
    classes: str | Path,
    dst: str | Path,
    options: VectorOptions = VectorOptions(),
    overwrite: bool = False,
) -> VectorSummary:
    """Write the GeoPackage ``dst`` from the class raster ``classes``: one polygon layer per
    class (fields ``class``, ``value``, ``area_m2``) and, when ``options.lines`` names classes it
    has, a line layer ``road_centrelines`` (``length_m``), in the raster's CRS."""
    src_path, dst = Path(classes), Path(dst)
    require_vectors()
    check_output(dst, src_path, overwrite)
    if options.block < 2 * options.halo or options.halo < 1:
        raise RenderError("the block must be at least twice the halo, and the halo positive")
    if not src_path.exists():
        raise RenderError(f"{src_path} does not exist", "CLASSES")
    # GDAL's block cache would keep the whole raster (its default is 5 % of the memory).
    with rasterio.Env(GDAL_CACHEMAX=READ_CACHE), open_quietly(src_path) as src:
        if src.count != 1 or src.dtypes[0] != "uint8":
            raise RenderError(
                f"{src_path} is not a class raster (one uint8 band): make one with "
                "geo-p2p render --classes",
                "CLASSES",
            )
        grid = _Grid.of(src)
        names = read_class_names(src)
        line_values = [v for v, n in names.items() if n in options.lines]
        if options.lines and not line_values:
            log.warning(
                "%s has no class named %s: no centrelines (--lines names the road classes; "
                "its classes: %s)",
                src_path,
                " or ".join(options.lines),
                ", ".join(names.values()) or "none named",
            )
        crs = None if src.crs is None else src.crs.to_wkt()
        with temporary_path(dst.parent, dst.name) as base:
            tmp = base.with_name(base.name + ".gpkg")  # GDAL wants the extension
            try:
                layers = _Layers(tmp, crs)
                polygons = _Polygons(grid, options, names, layers)
                lines = _Centrelines(grid, options, line_values, layers) if line_values else None
                for row in range(0, src.height, options.block):
                    for col in range(0, src.width, options.block):
                        polygons.add_block(row, col, _read(src, row, col, options.block, 0))
                        if lines is not None:
                            block = _read(src, row, col, options.block, options.halo)
                            lines.add_block(row, col, block)
                    polygons.end_row(row + options.block)
                    if lines is not None:
                        lines.end_row(row + options.block)
                layers.close()
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
    return VectorSummary(dst, dict(layers.counts))


def _read(src, row: int, col: int, size: int, halo: int) -> tuple[np.ndarray, int, int]:
    """The block at ``(row, col)`` grown by ``halo`` (cut at the raster's edges), with the
    raster position of its top-left pixel; masked pixels read as 0."""
    top, left = max(row - halo, 0), max(col - halo, 0)
    bottom, right = min(row + size + halo, src.height), min(col + size + halo, src.width)
    window = Window(left, top, right - left, bottom - top)
    values = src.read(1, window=window)
    values[src.read_masks(1, window=window) == 0] = 0
    return values, top, left


@dataclass(frozen=True)
class _Grid:
    """The raster's size, transform and ground scale (metres per pixel along x and y)."""

    height: int
    width: int
    transform: Affine
    metres: tuple[float, float]

    @classmethod
    def of(cls, src) -> _Grid:
        t = src.transform
        measured = None if src.crs is None else pixel_metres(src.crs, t, src.width, src.height)
        return cls(src.height, src.width, t, measured or (abs(t.a), abs(t.e)))

    @property
    def pixel_area(self) -> float:
        """Square ground metres per pixel."""
        return self.metres[0] * self.metres[1]

    def to_crs(self, geometry: shapely.Geometry) -> shapely.Geometry:
        t = self.transform
        return shapely.affinity.affine_transform(geometry, [t.a, t.b, t.d, t.e, t.c, t.f])


class _Polygons:
    """Polygon pieces of each block, merged along block edges, finished and written."""

    def __init__(self, grid: _Grid, options: VectorOptions, names: dict[int, str], layers: _Layers):
        self.grid, self.names, self.layers = grid, names, layers
        self.tolerance = options.simplify / math.sqrt(grid.pixel_area)  # pixels
        self.min_area = options.min_area / grid.pixel_area  # square pixels
        self._open: dict[int, list[shapely.Geometry]] = {}
        self._declared: set[int] = set()
        for value in sorted(names):
            self._layer(value)

    def _layer(self, value: int) -> str:
        """The layer of a class value, declared on first use."""
        name = self.names.get(value, f"class_{value}")
        if value not in self._declared:
            self.layers.declare(name, "Polygon", _POLYGON_FIELDS)
            self._declared.add(value)
        return name

    def add_block(self, row: int, col: int, read: tuple[np.ndarray, int, int]) -> None:
        values, _, _ = read
        h, w = values.shape
        inner = (row > 0, row + h < self.grid.height, col > 0, col + w < self.grid.width)
        for geojson, value in shapes(
            values, mask=values > 0, connectivity=4, transform=Affine.translation(col, row)
        ):
            piece = shapely.geometry.shape(geojson)
            x0, y0, x1, y1 = piece.bounds
            touches = (
                (inner[0] and y0 == row)
                or (inner[1] and y1 == row + h)
                or (inner[2] and x0 == col)
                or (inner[3] and x1 == col + w)
            )
            if touches:
                self._open.setdefault(int(value), []).append(piece)
            else:
                self._finish(int(value), piece)

    def end_row(self, bottom: int) -> None:
        """Merge the open pieces once a row of blocks is done; finish those that do not reach
        into the next row."""
        for value, pieces in list(self._open.items()):
            merged = shapely.get_parts(shapely.union_all(pieces))
            waiting = [p for p in merged if bottom < self.grid.height and p.bounds[3] == bottom]
            for part in merged:
                if not (bottom < self.grid.height and part.bounds[3] == bottom):
                    self._finish(value, part)
            if waiting:
                self._open[value] = waiting
            else:
                del self._open[value]

    def _finish(self, value: int, polygon: shapely.Geometry) -> None:
        if polygon.area < self.min_area:
            return
        holes = [r for r in polygon.interiors if shapely.Polygon(r).area >= self.min_area]
        polygon = shapely.Polygon(polygon.exterior, holes)
        if self.tolerance > 0:
            polygon = shapely.simplify(polygon, self.tolerance, preserve_topology=True)
        if not polygon.is_valid:
            polygon = shapely.make_valid(polygon)
        for part in shapely.get_parts(polygon):
            if isinstance(part, shapely.Polygon) and not part.is_empty:
                area = part.area * self.grid.pixel_area
                name = self._layer(value)
                self.layers.add(
                    name, self.grid.to_crs(part), **{"class": name, "value": value, "area_m2": area}
                )


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


class _Centrelines:
    """Skeleton lines of each block, cut at junctions and block edges, joined along edges."""

    def __init__(self, grid: _Grid, options: VectorOptions, values: list[int], layers: _Layers):
        self.grid, self.values, self.layers = grid, values, layers
        self.block = options.block
        self.scale = math.sqrt(grid.pixel_area)  # ground metres per pixel
        self.tolerance = options.simplify / self.scale
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

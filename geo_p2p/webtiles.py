"""Web map tiles from a render: zoom choice, tile coverage, the max-zoom grid and the pyramid.

:func:`make_tiles` translates a raster once, at the highest zoom: the input is read through a
WarpedVRT straight onto the EPSG:3857 pixel grid of that zoom's 256 px tiles
(:func:`tile_source`), the render pipeline (:meth:`Translator.render_blocks`: batches, blending,
bounded memory) translates it, and its finished blocks are cut into web tiles as they come
(:class:`TileCutter`), so no tile is resampled after translation. Each lower zoom is then built
from the zoom above, every tile the alpha-weighted 2x2 average of its four children read back
from the store (:func:`parent_tile`): the model never runs again and no zoom is held in memory.
Stores (folder, MBTiles, PMTiles) are in :mod:`geo_p2p.tilestores`. Example::

    from geo_p2p import Translator
    from geo_p2p.webtiles import make_tiles

    make_tiles("area.tif", "web/", Translator.load())   # web/index.html: map over the input
    make_tiles("map.tif", "map.pmtiles")                 # tile an existing map, no model
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import mercantile
import numpy as np
import shapely
import torch
from affine import Affine
from PIL import Image, features
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import mapping, shape

from .aoi import AreaOfInterest
from .mosaic import Block
from .plan import duration
from .progress import Progress
from .raster import (
    RESOLUTION_TOLERANCE,
    RenderError,
    Source,
    ground_scale,
    inspect_source,
    open_quietly,
)
from .render import ESTIMATE_FROM_TILES, Translator
from .tilestores import TileSetInfo, TileStore, XYZDirectory, open_store

log = logging.getLogger(__name__)

WEB_TILE = 256
EARTH_RADIUS = 6_378_137.0
"""The Web Mercator sphere (WGS 84's semi-major axis), metres."""
CIRCUMFERENCE = 2 * math.pi * EARTH_RADIUS
MAX_ZOOM = 24
ZOOM_SPAN = 6
"""Default zooms below the highest: at most this many."""
MAX_LATITUDE = 85.0511287798
WEB_MERCATOR = CRS.from_epsg(3857)
INPUT_LAYER = "input"
DEFAULT_ATTRIBUTION = "Translated by geo-p2p (pix2pix)"


def mercator_resolution(zoom: int) -> float:
    """Web Mercator units (metres at the equator) per pixel of a 256 px tile at ``zoom``; the
    ground resolution is this times the cosine of the latitude.

    >>> round(mercator_resolution(17), 4)
    1.1943
    """
    return CIRCUMFERENCE / (WEB_TILE << zoom)


def zoom_for_resolution(metres: float, latitude: float) -> int:
    """The zoom whose ground resolution at ``latitude`` is closest (by ratio) to ``metres``/px.

    >>> zoom_for_resolution(0.9, 40.71)  # the bundled model at New York
    17
    """
    cos = math.cos(math.radians(latitude))
    return min(
        range(MAX_ZOOM + 1),
        key=lambda z: abs(math.log(mercator_resolution(z) * cos / metres)),
    )


@dataclass(frozen=True)
class TileRange:
    """The tiles ``x0..x1`` by ``y0..y1`` (inclusive) of ``zoom``, in row-major order."""

    zoom: int
    x0: int
    y0: int
    x1: int
    y1: int

    def __len__(self) -> int:
        return (self.x1 - self.x0 + 1) * (self.y1 - self.y0 + 1)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for y in range(self.y0, self.y1 + 1):
            for x in range(self.x0, self.x1 + 1):
                yield x, y


def coverage(bounds: tuple[float, float, float, float], zoom: int) -> TileRange:
    """The tiles of ``zoom`` meeting ``bounds`` (west, south, east, north in degrees): the
    tiles ``mercantile.tiles`` lists, as a range."""
    west, south, east, north = bounds
    south, north = max(south, -MAX_LATITUDE), min(north, MAX_LATITUDE)
    first = mercantile.tile(west, north, zoom)
    last = mercantile.tile(east - 1e-11, south + 1e-11, zoom)  # east and south edges: outside
    return TileRange(zoom, first.x, first.y, last.x, last.y)


def default_zooms(bounds: tuple[float, float, float, float], max_zoom: int) -> tuple[int, int]:
    """Min and max zoom: the highest zoom at which ``bounds`` fit in one tile, or ``max_zoom``
    less :data:`ZOOM_SPAN`, whichever is higher; and ``max_zoom``."""
    fits = mercantile.bounding_tile(*bounds).z
    return max(min(fits, max_zoom), max_zoom - ZOOM_SPAN, 0), max_zoom


def tile_source(source: Source, tiles: TileRange) -> Source:
    """``source`` read onto the EPSG:3857 pixel grid of ``tiles`` (pixel-aligned with their
    edges): bilinear, or an average where the input is finer than the tiles."""
    res = mercator_resolution(tiles.zoom)
    left = -CIRCUMFERENCE / 2 + tiles.x0 * WEB_TILE * res
    top = CIRCUMFERENCE / 2 - tiles.y0 * WEB_TILE * res
    tile_res = res * math.cos(math.radians(_centre_latitude(source)))
    finer = ground_resolution(source) < tile_res * (1 - RESOLUTION_TOLERANCE)
    return replace(
        source,
        crs=WEB_MERCATOR,
        transform=Affine(res, 0, left, 0, -res, top),
        width=(tiles.x1 - tiles.x0 + 1) * WEB_TILE,
        height=(tiles.y1 - tiles.y0 + 1) * WEB_TILE,
        resampling=Resampling.average if finer else Resampling.bilinear,
    )


def ground_resolution(source: Source) -> float:
    """Metres on the ground per pixel of ``source``'s grid at its centre (the mean of x and y)."""
    assert source.crs is not None and source.transform is not None
    mx, my = ground_scale(source.crs, source.transform, source.width, source.height)
    return (abs(source.transform.a) * mx + abs(source.transform.e) * my) / 2


def _centre_latitude(source: Source) -> float:
    west, south, east, north = footprint(source)
    return (south + north) / 2


def footprint(
    source: Source, area: AreaOfInterest | None = None
) -> tuple[float, float, float, float]:
    """West, south, east, north (degrees) of ``source``'s grid, or of its part in ``area``."""
    assert source.crs is not None and source.transform is not None
    outline = shapely.box(0, 0, source.width, source.height)
    if area is not None:
        outline = outline.intersection(area.pixels)
    t = source.transform
    geom = shapely.affinity.affine_transform(outline, [t.a, t.b, t.d, t.e, t.c, t.f])
    bounds = transform_bounds(source.crs, "EPSG:4326", *geom.bounds, densify_pts=21)
    west, south, east, north = bounds
    return west, max(south, -MAX_LATITUDE), east, min(north, MAX_LATITUDE)


def area_on(area: AreaOfInterest, native: Source, target: Source) -> AreaOfInterest:
    """An area of interest on ``native``'s grid, brought onto ``target``'s grid."""
    t = native.transform
    assert t is not None and native.crs is not None and target.crs is not None
    geom = shapely.affinity.affine_transform(area.pixels, [t.a, t.b, t.d, t.e, t.c, t.f])
    geom = shape(transform_geom(native.crs, target.crs, mapping(geom)))
    return AreaOfInterest(geom.wkt, target)


def encode_tile(rgba: np.ndarray, fmt: str) -> bytes:
    """A (4, 256, 256) uint8 RGBA tile as PNG, WebP (lossless) or JPEG bytes; PNG without
    alpha where the tile is opaque, JPEG always without."""
    opaque = fmt == "jpeg" or bool(rgba[3].all())
    image = Image.fromarray(np.ascontiguousarray((rgba[:3] if opaque else rgba).transpose(1, 2, 0)))
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", compress_level=2)  # 4x as fast as 6, 20 % larger
    elif fmt == "webp":
        image.save(buffer, "WEBP", lossless=True, quality=50)
    else:
        image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def decode_tile(data: bytes) -> np.ndarray:
    """Tile bytes back to (4, 256, 256) uint8 RGBA."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA")).transpose(2, 0, 1)


def parent_tile(children: list[np.ndarray | None]) -> np.ndarray:
    """The (4, 256, 256) RGBA parent of four children (top-left, top-right, bottom-left,
    bottom-right; None where empty): each pixel the alpha-weighted mean colour of 2x2 child
    pixels, rounded half up, and their mean alpha."""
    opaque = all(c is not None and c[3].all() for c in children)
    dtype = np.uint16 if opaque else np.uint32  # opaque: plain sums of 4 fit 16 bits
    quad = np.zeros((4, 2 * WEB_TILE, 2 * WEB_TILE), dtype)
    for i, child in enumerate(children):
        if child is not None:
            r, c = divmod(i, 2)
            quad[:, r * WEB_TILE : (r + 1) * WEB_TILE, c * WEB_TILE : (c + 1) * WEB_TILE] = child
    if not opaque:
        quad[:3] *= quad[3]
    sums = quad[:, 0::2, 0::2] + quad[:, 0::2, 1::2]
    sums += quad[:, 1::2, 0::2]
    sums += quad[:, 1::2, 1::2]
    weight = sums[3]
    if opaque:
        return ((sums + 2) // 4).astype(np.uint8)
    rgb = (2 * sums[:3] + weight) // np.maximum(2 * weight, 1)
    return np.concatenate([rgb, ((weight + 2) // 4)[None]]).astype(np.uint8)


class TileCutter:
    """Cuts the finished blocks of a max-zoom grid (top-left tile ``x0, y0``) into web tiles,
    handing each tile of ``wanted`` to ``emit`` once all its pixels are in (only partly built
    tiles are held), with None for a tile with no valid pixel."""

    def __init__(
        self,
        x0: int,
        y0: int,
        wanted: set[tuple[int, int]],
        emit: Callable[[int, int, np.ndarray | None], None],
    ) -> None:
        self.x0, self.y0, self.wanted, self.emit = x0, y0, wanted, emit
        self._open: dict[tuple[int, int], tuple[np.ndarray, int]] = {}

    def add(self, block: Block) -> None:
        _, h, w = block.rgb.shape
        for ty in range(block.row // WEB_TILE, (block.row + h - 1) // WEB_TILE + 1):
            for tx in range(block.col // WEB_TILE, (block.col + w - 1) // WEB_TILE + 1):
                key = (self.x0 + tx, self.y0 + ty)
                if key not in self.wanted:
                    continue
                tile, filled = self._open.pop(key, (None, 0))
                if tile is None:
                    tile = np.zeros((4, WEB_TILE, WEB_TILE), np.uint8)
                top, left = ty * WEB_TILE, tx * WEB_TILE
                r0, r1 = max(block.row, top), min(block.row + h, top + WEB_TILE)
                c0, c1 = max(block.col, left), min(block.col + w, left + WEB_TILE)
                part = np.s_[r0 - block.row : r1 - block.row, c0 - block.col : c1 - block.col]
                into = np.s_[r0 - top : r1 - top, c0 - left : c1 - left]
                tile[(slice(0, 3), *into)] = block.rgb[(slice(None), *part)]
                tile[(3, *into)] = block.mask[part]
                filled += (r1 - r0) * (c1 - c0)
                if filled == WEB_TILE * WEB_TILE:
                    self.wanted.discard(key)
                    self.emit(*key, tile if tile[3].any() else None)
                else:
                    self._open[key] = (tile, filled)

    def finish(self) -> None:
        """Hand on the tiles that no block completed (outside an area of interest) and the
        wanted tiles no block reached, as they are."""
        for (x, y), (tile, _) in self._open.items():
            self.wanted.discard((x, y))
            self.emit(x, y, tile if tile[3].any() else None)
        self._open.clear()
        for x, y in sorted(self.wanted):
            self.emit(x, y, None)
        self.wanted.clear()


@dataclass(frozen=True)
class TilePlan:
    """What :func:`make_tiles` will do: tiles per zoom and layer, model tiles, an estimate."""

    zooms: tuple[int, int]
    zoom_reason: str
    tiles: dict[int, int]
    """Tiles per zoom of one layer (the footprint's coverage)."""
    layers: int
    done: int
    model_tiles: int
    seconds: float | None
    """Estimated model time (None: not measured, for jobs too small to be worth it)."""

    @property
    def total(self) -> int:
        return sum(self.tiles.values()) * self.layers

    def line(self) -> str:
        per_zoom = " ".join(f"{z}:{n}" for z, n in sorted(self.tiles.items()))
        layers = f" x {self.layers} layers (map, input)" if self.layers > 1 else ""
        done = f", {self.done} done" if self.done else ""
        estimate = "no estimate" if self.seconds is None else f"about {duration(self.seconds)}"
        return (
            f"zooms {self.zooms[0]}-{self.zooms[1]} ({self.zoom_reason}); tiles per zoom "
            f"{per_zoom}{layers} = {self.total}{done}; {self.model_tiles} model tiles at zoom "
            f"{self.zooms[1]}, {estimate} of model time"
        )


@dataclass(frozen=True)
class TilesSummary:
    """What :func:`make_tiles` did."""

    written: int
    seconds: float
    output: Path
    zooms: tuple[int, int]

    def __str__(self) -> str:
        return (
            f"wrote {self.written} tiles, zooms {self.zooms[0]}-{self.zooms[1]}, in "
            f"{self.seconds:.1f} s: {self.output}"
        )


def identity_translator(batch_size: int = 8) -> Translator:
    """The translator that only tiles: identity module, 256 px tiles without overlap."""
    return Translator(
        torch.nn.Identity(), tile=WEB_TILE, overlap=0, margin=0, batch_size=batch_size, device="cpu"
    )


def make_tiles(
    src: str | Path,
    dst: str | Path,
    translator: Translator | None = None,
    *,
    zooms: tuple[int, int] | None = None,
    fmt: str = "png",
    bands: tuple[int, ...] | None = None,
    scale: tuple[float, float] | None = None,
    aoi: str | None = None,
    with_input: bool | None = None,
    attribution: str = DEFAULT_ATTRIBUTION,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool | None = None,
) -> TilesSummary:
    """Translate the raster ``src`` with ``translator`` into a web tile pyramid at ``dst``
    (what ``geo-p2p tiles`` does); with no translator ``src`` is a map and is only tiled.

    dst: a folder (XYZ ``z/x/y``, ``tilejson.json``, ``index.html``), ``*.mbtiles`` or
        ``*.pmtiles``.
    zooms: min and max zoom; by default the max is the zoom closest to the model's ground
        resolution (or the input's) at the raster's centre, the min the highest zoom at which the
        footprint fits one tile, or max - 6 if higher.
    fmt: png, webp or jpeg (no transparency: a warning where tiles are partly empty).
    bands, scale, aoi: as for :meth:`Translator.render`.
    with_input: also tile the input under ``dst/input`` for the viewer's swipe (default: for a
        folder, when translating).
    overwrite, resume: replace ``dst``, or finish an interrupted run with the same settings.
    progress: one bar over all tiles (None: when the output is a terminal).

    Raises RenderError for unusable input or options; a store is complete only once finished.
    """
    start = time.perf_counter()
    dst = Path(dst)
    check_format(fmt)
    native = _georeferenced_source(src, bands, scale)
    native_area = AreaOfInterest(aoi, native) if aoi else None
    bounds = footprint(native, native_area)
    lat = (bounds[1] + bounds[3]) / 2
    gsd = translator.gsd if translator is not None and translator.gsd else None
    zooms, reason = _zooms(zooms, bounds, gsd or ground_resolution(native), lat, gsd is not None)
    ranges = {z: coverage(bounds, z) for z in range(zooms[0], zooms[1] + 1)}
    source = tile_source(native, ranges[zooms[1]])
    area = area_on(native_area, native, source) if native_area else None
    if with_input is None:
        with_input = translator is not None and dst.suffix.lower() not in (".mbtiles", ".pmtiles")
    if fmt == "jpeg":
        log.warning("JPEG tiles have no transparency: where there is no data they are black")
    job = json.dumps(
        {
            "input": str(Path(src).resolve()),
            "model": None if translator is None else _fingerprint(translator.module),
            "zooms": zooms,
            "format": fmt,
            "bands": native.bands,
            "scale": native.scale,
            "aoi": aoi,
            "input_layer": with_input,
        }
    )
    if with_input and dst.suffix.lower() in (".mbtiles", ".pmtiles"):
        raise RenderError("the input layer is written only beside a folder", "--with-input")
    store = open_store(dst, fmt, overwrite, resume, job)
    layers: list[tuple[TileStore, Translator]] = [(store, translator or identity_translator())]
    if with_input:
        input_layer = XYZDirectory(dst / INPUT_LAYER, fmt, resume=True)
        layers.append((input_layer, identity_translator()))
    try:
        model_tiles = len(layers[0][1].grid(source.height, source.width))
        # As render: the rate is measured (a few batches) only where the job is much larger.
        seconds = 0.0 if translator is None else None
        if translator is not None and model_tiles > ESTIMATE_FROM_TILES:
            seconds = model_tiles / translator.measure_rate()
        done = sum(len(layer.done(z)) for layer, _ in layers for z in ranges)
        counts = {z: len(r) for z, r in ranges.items()}
        plan = TilePlan(zooms, reason, counts, len(layers), done, model_tiles, seconds)
        log.info("%s", plan.line())
        written = 0
        with Progress(plan.total, "geo-p2p tiles", "tile", progress, done=plan.done) as bar:
            for layer, layer_translator in layers:
                top = ranges[zooms[1]]
                written += _max_zoom(layer, layer_translator, source, area, top, fmt, bar)
                for zoom in range(zooms[1] - 1, zooms[0] - 1, -1):
                    written += _lower_zoom(layer, ranges[zoom], fmt, bar)
        if not any(layers[0][0].done(z) for z in ranges):
            raise RenderError(f"{src} has no valid pixels where the tiles are", "INPUT")
        info = TileSetInfo(
            dst.stem, fmt, bounds, zooms[0], zooms[1], attribution, f"{Path(src).name}, geo-p2p"
        )
        if isinstance(store, XYZDirectory):
            store.write_viewer(info, INPUT_LAYER if with_input else None)
        store.finish(info)
    except BaseException:
        for layer, _ in layers:
            layer.close()
        raise
    summary = TilesSummary(written, time.perf_counter() - start, dst, zooms)
    log.info("%s", summary)
    return summary


def _georeferenced_source(
    src: str | Path, bands: tuple[int, ...] | None, scale: tuple[float, float] | None
) -> Source:
    try:
        with open_quietly(src) as ds:
            georeferenced = ds.crs is not None and not ds.transform.is_identity
    except RasterioIOError:
        georeferenced = True  # not a raster: inspect_source says so
    if not georeferenced:
        raise RenderError(
            f"{src} has no georeferencing: web tiles need a CRS and a geotransform "
            "(add them with gdal_edit.py or gdalwarp first)",
            "INPUT",
        )
    return inspect_source(src, bands, scale, "native")


def _zooms(
    zooms: tuple[int, int] | None,
    bounds: tuple[float, float, float, float],
    metres: float,
    lat: float,
    model: bool,
) -> tuple[tuple[int, int], str]:
    if zooms is not None:
        if not 0 <= zooms[0] <= zooms[1] <= MAX_ZOOM:
            raise RenderError(f"zooms must be MIN-MAX within 0-{MAX_ZOOM}, got {zooms}", "--zoom")
        return zooms, "as asked"
    top = zoom_for_resolution(metres, lat)
    whose = "the model's" if model else "the input's"
    low, top = default_zooms(bounds, top)
    rule = f"max - {ZOOM_SPAN}" if low == max(top - ZOOM_SPAN, 0) else "the footprint in one tile"
    return (low, top), f"max: {whose} {metres:.2g} m/px at {lat:.2f} deg; min: {rule}"


def _fingerprint(module: torch.nn.Module) -> str:
    """A digest of a module's weights, so that a resume cannot mix two models' tiles."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _max_zoom(
    store: TileStore,
    translator: Translator,
    source: Source,
    area: AreaOfInterest | None,
    tiles: TileRange,
    fmt: str,
    bar: Progress,
) -> int:
    """Translate and write the missing tiles of the highest zoom; returns how many written."""
    done = store.done(tiles.zoom)
    wanted = {key for key in tiles if key not in done}
    if not wanted or (tiles.zoom > 0 and store.done(tiles.zoom - 1)):
        # Complete: the zoom below is only started then; what is missing is empty.
        bar.update(len(wanted))
        return 0
    written = 0

    def emit(x: int, y: int, rgba: np.ndarray | None) -> None:
        nonlocal written
        if rgba is not None:
            store.write(tiles.zoom, x, y, encode_tile(rgba, fmt))
            written += 1
        bar.update(1)

    region = None
    if done:  # a resume: only the model tiles under missing web tiles
        region = shapely.union_all(
            [
                shapely.box(
                    (x - tiles.x0) * WEB_TILE,
                    (y - tiles.y0) * WEB_TILE,
                    (x - tiles.x0 + 1) * WEB_TILE,
                    (y - tiles.y0 + 1) * WEB_TILE,
                )
                for x, y in wanted
            ]
        )
    cutter = TileCutter(tiles.x0, tiles.y0, wanted, emit)
    translator.render_blocks(source, cutter.add, area, region, progress=False)
    cutter.finish()
    return written


def _lower_zoom(store: TileStore, tiles: TileRange, fmt: str, bar: Progress) -> int:
    """Build the missing tiles of a zoom from their children; returns how many written."""
    done = store.done(tiles.zoom)
    written = 0
    for x, y in tiles:
        if (x, y) in done:
            continue
        children = [
            store.read(tiles.zoom + 1, 2 * x + dx, 2 * y + dy) for dy in (0, 1) for dx in (0, 1)
        ]
        if any(c is not None for c in children):
            rgba = parent_tile([None if c is None else decode_tile(c) for c in children])
            if rgba[3].any():
                store.write(tiles.zoom, x, y, encode_tile(rgba, fmt))
                written += 1
        bar.update(1)
    return written


def check_format(fmt: str) -> None:
    """Refuse a tile format this Pillow cannot write."""
    if fmt == "webp" and not features.check("webp"):
        raise RenderError("this Pillow has no WebP support: use --format png", "--format")

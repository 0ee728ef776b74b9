"""Web map tiles from a render: zoom choice, tile coverage, the max-zoom grid and the pyramid.

:func:`make_tiles` translates a raster once, at the highest zoom: the input is read through a
WarpedVRT straight onto the EPSG:3857 pixel grid of that zoom's 256 px tiles
(:func:`tile_source`), the render pipeline (:meth:`Translator.render_blocks`: batches, blending,
bounded memory) translates it, and its finished blocks are cut into web tiles as they come
(:class:`TileCutter`), so no tile is resampled after translation. The lower zooms are built
as the tiles come (:class:`geo_p2p.pyramid.Pyramid`), every tile the alpha-weighted 2x2
average of its four children: the model never runs again, no tile is read back and no zoom is
held in memory. Stores (folder, MBTiles, PMTiles) are in :mod:`geo_p2p.tilestores`. Example::

    from geo_p2p import Translator
    from geo_p2p.webtiles import make_tiles

    make_tiles("area.tif", "web/", Translator.load())   # web/index.html: map over the input
    make_tiles("map.tif", "map.pmtiles")                 # tile an existing map, no model
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import mercantile
import numpy as np
import shapely
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import mapping, shape

from .aoi import AreaOfInterest
from .inputs import file_name
from .mosaic import Block
from .plan import DEFAULT_MAX_TILES, MAX_UPSAMPLING, duration, grid_tiles
from .progress import Progress
from .pyramid import WEB_TILE, Pyramid, TileRange
from .raster import (
    RESOLUTION_TOLERANCE,
    RenderError,
    Source,
    ground_scale,
    input_path,
    inspect_source,
    open_quietly,
)
from .render import ESTIMATE_FROM_TILES, Translator
from .tilecodec import check_format
from .tilestores import TileSetInfo, TileStore, XYZDirectory, open_store

log = logging.getLogger(__name__)

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


def coverage(bounds: tuple[float, float, float, float], zoom: int) -> TileRange:
    """The tiles of ``zoom`` meeting ``bounds`` (west, south, east, north in degrees; east past
    180 across the antimeridian): the tiles ``mercantile.tiles`` lists, as a range whose
    columns past the antimeridian go on from ``2 ** zoom``."""
    west, south, east, north = bounds
    south, north = max(south, -MAX_LATITUDE), min(north, MAX_LATITUDE)
    wraps = east > 180
    first = mercantile.tile(west, north, zoom)
    # East and south edges: outside.
    last = mercantile.tile(east - 360 * wraps - 1e-11, south + 1e-11, zoom)
    return TileRange(zoom, first.x, first.y, last.x + (1 << zoom) * wraps, last.y)


def lowest_zoom(bounds: tuple[float, float, float, float]) -> int:
    """The lowest zoom that can hold ``bounds``: 0, or across the antimeridian the lowest
    whose columns do not wrap around onto each other."""
    return next(z for z in range(MAX_ZOOM + 1) if coverage(bounds, z).columns <= 1 << z)


def default_zooms(bounds: tuple[float, float, float, float], max_zoom: int) -> tuple[int, int]:
    """Min and max zoom: the highest zoom at which ``bounds`` fit in one tile (across the
    antimeridian, the lowest zoom that can hold them), or ``max_zoom`` less
    :data:`ZOOM_SPAN`, whichever is higher; and ``max_zoom``."""
    fits = lowest_zoom(bounds) if bounds[2] > 180 else mercantile.bounding_tile(*bounds).z
    return max(min(fits, max_zoom), max_zoom - ZOOM_SPAN, 0), max_zoom


def tile_source(source: Source, tiles: TileRange, latitude: float) -> Source:
    """``source`` read onto the EPSG:3857 pixel grid of ``tiles`` (pixel-aligned with their
    edges): bilinear, or an average where the input is finer than the tiles at ``latitude``."""
    res = mercator_resolution(tiles.zoom)
    left = -CIRCUMFERENCE / 2 + tiles.x0 * WEB_TILE * res
    top = CIRCUMFERENCE / 2 - tiles.y0 * WEB_TILE * res
    tile_res = res * math.cos(math.radians(latitude))
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


def footprint(
    source: Source, area: AreaOfInterest | None = None
) -> tuple[float, float, float, float]:
    """West, south, east, north (degrees) of ``source``'s grid, or of its part in ``area``;
    east is past 180 where it crosses the antimeridian."""
    assert source.crs is not None and source.transform is not None
    outline = shapely.box(0, 0, source.width, source.height)
    if area is not None:
        outline = outline.intersection(area.pixels)
    t = source.transform
    geom = shapely.affinity.affine_transform(outline, [t.a, t.b, t.d, t.e, t.c, t.f])
    west, south, east, north = transform_bounds(source.crs, "EPSG:4326", *geom.bounds, 21)
    if west > east:  # the box crosses 180 degrees: does the area itself?
        edges = shapely.segmentize(geom, max(geom.bounds[2] - geom.bounds[0], 1e-9) / 20)
        lonlat = shape(transform_geom(source.crs, "EPSG:4326", mapping(edges)))
        if lonlat.bounds[2] - lonlat.bounds[0] <= 180:
            west, south, east, north = lonlat.bounds  # on one side
        else:
            east += 360
    return west, max(south, -MAX_LATITUDE), east, min(north, MAX_LATITUDE)


def area_on(area: AreaOfInterest, native: Source, target: Source) -> AreaOfInterest:
    """An area of interest on ``native``'s grid, brought onto ``target``'s grid."""
    t = native.transform
    assert t is not None and native.crs is not None and target.crs is not None
    geom = shapely.affinity.affine_transform(area.pixels, [t.a, t.b, t.d, t.e, t.c, t.f])
    geom = shape(transform_geom(native.crs, target.crs, mapping(geom)))
    return AreaOfInterest(geom.wkt, target)


class TileCutter:
    """Cuts the finished blocks of a max-zoom grid (top-left tile ``x0, y0``) into web tiles,
    handing each tile but those ``skip`` names to ``emit`` once all its pixels are in (only
    partly built tiles are held), with None for a tile with no valid pixel."""

    def __init__(
        self,
        x0: int,
        y0: int,
        skip: Callable[[int, int], bool],
        emit: Callable[[int, int, np.ndarray | None], None],
    ) -> None:
        self.x0, self.y0, self.skip, self.emit = x0, y0, skip, emit
        self._open: dict[tuple[int, int], tuple[np.ndarray, int]] = {}

    def add(self, block: Block) -> None:
        _, h, w = block.rgb.shape
        for ty in range(block.row // WEB_TILE, (block.row + h - 1) // WEB_TILE + 1):
            for tx in range(block.col // WEB_TILE, (block.col + w - 1) // WEB_TILE + 1):
                key = (self.x0 + tx, self.y0 + ty)
                if self.skip(*key):
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
                    self.emit(*key, tile if tile[3].any() else None)
                else:
                    self._open[key] = (tile, filled)

    def finish(self) -> None:
        """Hand on the tiles that no block completed (outside an area of interest) as they
        are; tiles no block reached are empty and not handed on."""
        for (x, y), (tile, _) in sorted(self._open.items()):
            self.emit(x, y, tile if tile[3].any() else None)
        self._open.clear()


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

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values, the total and the estimate in seconds included."""
        return {**asdict(self), "total": self.total}

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


@dataclass(frozen=True)
class TilesJob:
    """A tile pyramid laid out by :func:`plan_tiles`, ready for :func:`make_tiles`."""

    src: Path
    dst: Path
    fmt: str
    bounds: tuple[float, float, float, float]
    ranges: dict[int, TileRange]
    """The tiles of each zoom."""
    source: Source
    """The input read onto the max zoom's pixel grid."""
    area: AreaOfInterest | None
    with_input: bool
    key: str
    """The settings as JSON: a resume must match them."""
    plan: TilePlan


def plan_tiles(
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
    force: bool = False,
    max_tiles: int = DEFAULT_MAX_TILES,
) -> TilesJob:
    """Lay out what :func:`make_tiles` would do, writing nothing (``geo-p2p tiles --dry-run``).

    Refuses, with a one-line RenderError: an input without georeferencing; default zooms that
    would resample the input more than 4 times finer than it is (unless ``force``); more than
    ``max_tiles`` model or web tiles. The model's rate is measured (a few batches) only for
    jobs of more than 200 model tiles, as for a render.
    """
    dst = Path(dst)
    check_format(fmt)
    native = _georeferenced_source(src, bands, scale)
    native_area = AreaOfInterest(aoi, native) if aoi else None
    bounds = footprint(native, native_area)
    lat = (bounds[1] + bounds[3]) / 2
    gsd = translator.gsd if translator is not None and translator.gsd else None
    asked = zooms is not None
    zooms, reason = _zooms(zooms, bounds, gsd or ground_resolution(native), lat, gsd is not None)
    ranges = {z: coverage(bounds, z) for z in range(zooms[0], zooms[1] + 1)}
    source = tile_source(native, ranges[zooms[1]], lat)
    if with_input is None:
        with_input = translator is not None and dst.suffix.lower() not in (".mbtiles", ".pmtiles")
    if with_input and dst.suffix.lower() in (".mbtiles", ".pmtiles"):
        raise RenderError("the input layer is written only beside a folder", "--with-input")
    layers = 2 if with_input else 1
    counts = {z: len(r) for z, r in ranges.items()}
    model = translator or identity_translator()
    model_tiles = _check_tiles(src, native, source, asked or force, model, counts, max_tiles)
    # As render: the rate is measured (a few batches) only where the job is much larger.
    seconds = 0.0 if translator is None else None
    if translator is not None and model_tiles > ESTIMATE_FROM_TILES:
        seconds = model_tiles / translator.measure_rate()
    key = json.dumps(
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
    plan = TilePlan(zooms, reason, counts, layers, 0, model_tiles, seconds)
    area = area_on(native_area, native, source) if native_area else None
    return TilesJob(Path(src), dst, fmt, bounds, ranges, source, area, with_input, key, plan)


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
    force: bool = False,
    max_tiles: int = DEFAULT_MAX_TILES,
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
    force, max_tiles: the guards of :func:`plan_tiles`.
    progress: one bar over all tiles (None: when the output is a terminal).

    Raises RenderError for unusable input or options; a store is complete only once finished.
    """
    start = time.perf_counter()
    job = plan_tiles(
        src,
        dst,
        translator,
        zooms=zooms,
        fmt=fmt,
        bands=bands,
        scale=scale,
        aoi=aoi,
        with_input=with_input,
        force=force,
        max_tiles=max_tiles,
    )
    if fmt == "jpeg":
        log.warning("JPEG tiles have no transparency: where there is no data they are black")
    store = open_store(job.dst, fmt, overwrite, resume, job.key)
    layers: list[tuple[TileStore, Translator]] = [(store, translator or identity_translator())]
    if job.with_input:
        input_layer = XYZDirectory(job.dst / INPUT_LAYER, fmt, resume=True)
        layers.append((input_layer, identity_translator()))
    try:
        pyramids = [Pyramid(layer, fmt, job.ranges) for layer, _ in layers]
        plan = replace(job.plan, done=sum(pyramid.stored for pyramid in pyramids))
        log.info("%s", plan.line())
        top = job.ranges[plan.zooms[1]]
        with Progress(plan.total, "geo-p2p tiles", "tile", progress, done=plan.done) as bar:
            for pyramid, (_, layer_translator) in zip(pyramids, layers, strict=True):
                with pyramid:
                    pyramid.start(bar)
                    _max_zoom(pyramid, layer_translator, job.source, job.area, top)
                    pyramid.finish()
        if not pyramids[0].written + pyramids[0].stored:
            raise RenderError(f"{src} has no valid pixels where the tiles are", "INPUT")
        info = TileSetInfo(
            job.dst.stem,
            fmt,
            job.bounds,
            *plan.zooms,
            attribution,
            f"{file_name(job.src)}, geo-p2p",
        )
        if isinstance(store, XYZDirectory):
            store.write_viewer(info, INPUT_LAYER if job.with_input else None)
        store.finish(info)
    except BaseException:
        for layer, _ in layers:
            layer.close()
        raise
    written = sum(pyramid.written for pyramid in pyramids)
    summary = TilesSummary(written, time.perf_counter() - start, job.dst, plan.zooms)
    log.info("%s", summary)
    return summary


def _check_tiles(
    src: str | Path,
    native: Source,
    source: Source,
    asked: bool,
    model: Translator,
    counts: dict[int, int],
    max_tiles: int,
) -> int:
    """The guards of :func:`plan_tiles` (``asked``: zooms given or ``--force``); returns the
    number of model tiles at the max zoom."""
    zoom = max(counts)
    finer = ground_resolution(native) / ground_resolution(source)
    if finer > MAX_UPSAMPLING and not asked:
        raise RenderError(
            f"{src} is {ground_resolution(native):.3g} m per pixel: zoom {zoom}, the model's "
            f"resolution, would resample it {finer:.0f} times finer, {counts[zoom]:,} tiles of "
            "invented detail. Pass --zoom MIN-MAX with a lower max zoom, or --force to make "
            "them anyway",
            "--zoom",
        )
    web_tiles = sum(counts.values())
    model_tiles = 0
    if web_tiles <= max_tiles:  # else too many anyway: no need to count them
        model_tiles = grid_tiles(source.height, source.width, model.tile, model.overlap)
    if max(web_tiles, model_tiles) > max_tiles:
        raise RenderError(
            f"zooms {min(counts)}-{zoom} of {src} make {max(web_tiles, model_tiles):,} tiles, "
            f"more than --max-tiles {max_tiles:,}: pass --zoom MIN-MAX with a lower max zoom, "
            "or a larger --max-tiles if you mean it",
            "--max-tiles",
        )
    return model_tiles


def _georeferenced_source(
    src: str | Path, bands: tuple[int, ...] | None, scale: tuple[float, float] | None
) -> Source:
    src = input_path(src)
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
    lowest = lowest_zoom(bounds)
    if zooms is not None:
        if not 0 <= zooms[0] <= zooms[1] <= MAX_ZOOM:
            raise RenderError(f"zooms must be MIN-MAX within 0-{MAX_ZOOM}, got {zooms}", "--zoom")
        if zooms[0] < lowest:
            raise RenderError(
                f"the footprint crosses the antimeridian and wraps around the world below zoom "
                f"{lowest}: choose a min zoom of {lowest} or more",
                "--zoom",
            )
        return zooms, "as asked"
    top = zoom_for_resolution(metres, lat)
    whose = "the model's" if model else "the input's"
    low, top = default_zooms(bounds, top)
    rule = f"max - {ZOOM_SPAN}"
    if low != max(top - ZOOM_SPAN, 0):
        rule = "the lowest that does not wrap" if bounds[2] > 180 else "the footprint in one tile"
    return (low, top), f"max: {whose} {metres:.2g} m/px at {lat:.2f} deg; min: {rule}"


def _fingerprint(module: torch.nn.Module) -> str:
    """A digest of a module's weights, so that a resume cannot mix two models' tiles."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _max_zoom(
    pyramid: Pyramid,
    translator: Translator,
    source: Source,
    area: AreaOfInterest | None,
    tiles: TileRange,
) -> None:
    """Translate the tiles of the highest zoom that are not settled into ``pyramid``."""
    region = None
    if pyramid.stored:  # a resume: only the model tiles under the tiles still to make
        region = _unsettled(pyramid, tiles)
        if region.is_empty:
            return
    skip = functools.partial(pyramid.settled, tiles.zoom)
    cutter = TileCutter(tiles.x0, tiles.y0, skip, functools.partial(pyramid.add, tiles.zoom))
    translator.render_blocks(source, cutter.add, area, region, progress=False)
    cutter.finish()


def _unsettled(pyramid: Pyramid, tiles: TileRange) -> shapely.Geometry:
    """The pixels (of the max zoom's grid) of the tiles that are not settled, one box per run
    of such tiles along a row."""
    boxes = []
    for y in range(tiles.y0, tiles.y1 + 1):
        first = None
        for x in range(tiles.x0, tiles.x1 + 2):
            todo = x <= tiles.x1 and not pyramid.settled(tiles.zoom, x, y)
            if todo and first is None:
                first = x
            elif not todo and first is not None:
                top = (y - tiles.y0) * WEB_TILE
                left, right = ((c - tiles.x0) * WEB_TILE for c in (first, x))
                boxes.append(shapely.box(left, top, right, top + WEB_TILE))
                first = None
    return shapely.union_all(boxes)

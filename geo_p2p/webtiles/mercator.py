"""Web Mercator maths: tile ranges, zooms for a ground resolution, a raster's footprint in
degrees, and the max zoom's pixel grid that a raster is read onto."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import mercantile
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import mapping, shape

from ..aoi import AreaOfInterest
from ..raster import Source, onto_grid

WEB_TILE = 256
EARTH_RADIUS = 6_378_137.0
"""The Web Mercator sphere (WGS 84's semi-major axis), metres."""
CIRCUMFERENCE = 2 * math.pi * EARTH_RADIUS
MAX_ZOOM = 24
ZOOM_SPAN = 6
"""Default zooms below the highest: at most this many."""
MAX_LATITUDE = 85.0511287798
WEB_MERCATOR = CRS.from_epsg(3857)


@dataclass(frozen=True)
class TileRange:
    """The tiles ``x0..x1`` by ``y0..y1`` (inclusive) of ``zoom``, in row-major order. Columns
    from ``2 ** zoom`` on are past the antimeridian: the world's columns from 0 again."""

    zoom: int
    x0: int
    y0: int
    x1: int
    y1: int

    def __len__(self) -> int:
        return self.columns * (self.y1 - self.y0 + 1)

    @property
    def columns(self) -> int:
        return self.x1 - self.x0 + 1

    def unwrap(self, x: int) -> int:
        """The column in this range of the column ``x`` of the world (``x1`` may be past the
        antimeridian, ``2 ** zoom`` or more)."""
        return x + (1 << self.zoom) if x < self.x0 else x

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for y in range(self.y0, self.y1 + 1):
            for x in range(self.x0, self.x1 + 1):
                yield x, y


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
    width, height = tiles.columns * WEB_TILE, (tiles.y1 - tiles.y0 + 1) * WEB_TILE
    transform = Affine(res, 0, left, 0, -res, top)
    tile_res = res * math.cos(math.radians(latitude))
    return onto_grid(source, WEB_MERCATOR, transform, width, height, tile_res)


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

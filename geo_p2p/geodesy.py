"""Ground measures of raster grids: metres per pixel on the Earth, and whether a raster is
georeferenced at all.

Distances are great circles on the mean Earth sphere between points projected to longitude and
latitude, so they hold for geographic CRSs (degrees), feet, and the scale distortion of Web
Mercator alike.
"""

from __future__ import annotations

import math

import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from rasterio.warp import transform as transform_points

EARTH_RADIUS_M = 6_371_008.8
RESOLUTION_TOLERANCE = 0.01
"""Relative difference in pixel size below which two grids count as equally fine."""


def ground_scale(crs: CRS, transform: Affine, width: int, height: int) -> tuple[float, float]:
    """Metres on the ground per CRS unit along x and y, at the centre of a raster (measured
    between points 10 pixels apart)."""
    cx, cy = transform @ (width / 2, height / 2)
    dx, dy = 5 * abs(transform.a), 5 * abs(transform.e)
    lon, lat = transform_points(
        crs, "EPSG:4326", [cx - dx, cx + dx, cx, cx], [cy, cy, cy - dy, cy + dy]
    )
    return _distance(lon[0], lat[0], lon[1], lat[1]) / (2 * dx), _distance(
        lon[2], lat[2], lon[3], lat[3]
    ) / (2 * dy)


def _distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def pixel_metres(
    crs: CRS, transform: Affine, width: int, height: int
) -> tuple[float, float] | None:
    """Ground metres per pixel along x and y at the centre of a grid; None where the CRS
    cannot be measured there (off the Earth's disc in a geostationary view, say)."""
    try:
        mx, my = ground_scale(crs, transform, width, height)
    except (CRSError, ValueError, RasterioError, CPLE_BaseError):  # not on the Earth, say
        return None
    metres = abs(transform.a) * mx, abs(transform.e) * my
    gsd = sum(metres) / 2
    return metres if math.isfinite(gsd) and gsd > 0 else None


def ground_resolution(crs: CRS, transform: Affine, width: int, height: int) -> float:
    """Metres on the ground per pixel of a grid at its centre, the mean of x and y."""
    mx, my = ground_scale(crs, transform, width, height)
    return (abs(transform.a) * mx + abs(transform.e) * my) / 2


def finer(resolution: float, than: float) -> bool:
    """Whether ``resolution`` (metres per pixel) is finer than ``than`` beyond the tolerance:
    reading it onto a grid of ``than`` then averages rather than interpolates."""
    return resolution < than * (1 - RESOLUTION_TOLERANCE)


def missing_georeferencing(ds: rasterio.DatasetReader) -> str | None:
    """What a raster lacks to be placed on the Earth by its geotransform: "coordinate reference
    system" or "geotransform", or None when it has both."""
    if ds.crs is None:
        return "coordinate reference system"
    if ds.transform.is_identity:
        return "geotransform"
    return None

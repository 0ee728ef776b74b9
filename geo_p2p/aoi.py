"""Areas of interest: a polygon from a GeoJSON file or WKT text, brought onto the output grid.

The polygon is in the raster's CRS unless it says otherwise: a GeoJSON ``crs`` member (as QGIS
and GDAL write) or an EWKT prefix such as ``SRID=4326;POLYGON(...)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.features import geometry_mask
from rasterio.warp import transform_geom
from shapely import affinity
from shapely.errors import GEOSException
from shapely.geometry import mapping, shape

from .errors import RenderError
from .raster import Source


def parse_aoi(spec: str) -> tuple[shapely.Geometry, CRS | None]:
    """Polygon (or multipolygon) and its CRS (None: the raster's) from a file path or WKT text."""
    crs = None
    if spec.lower().endswith((".json", ".geojson")) and not Path(spec).is_file():
        raise RenderError(f"{spec} does not exist", "--aoi")
    try:
        if Path(spec).is_file():
            data = json.loads(Path(spec).read_text())
            name = data.get("crs", {}).get("properties", {}).get("name")
            crs = CRS.from_user_input(name) if name else None
            features = data.get("features", [data])
            geom = shapely.union_all([shape(f.get("geometry", f)) for f in features])
        else:
            text = spec.strip()
            if text.upper().startswith("SRID="):
                srid, text = text.split(";", 1)
                crs = CRS.from_epsg(int(srid[5:]))
            geom = shapely.from_wkt(text)
    except (ValueError, KeyError, TypeError, AttributeError, CRSError, GEOSException) as e:
        raise RenderError(
            f"cannot read the area of interest ({e}): give a GeoJSON file or WKT text", "--aoi"
        ) from e
    if geom.geom_type not in ("Polygon", "MultiPolygon") or geom.is_empty:
        raise RenderError(f"the area of interest must be a polygon, got {geom.geom_type}", "--aoi")
    return shapely.make_valid(geom), crs


def pixel_geometry(geom: shapely.Geometry, crs: CRS | None, source: Source) -> shapely.Geometry:
    """``geom`` (in ``crs``; None: the source's) in the pixel coordinates of ``source``'s grid."""
    if source.transform is None:
        if crs is not None:
            raise RenderError("an AOI with a CRS needs a georeferenced input", "--aoi")
        return geom  # an ungeoreferenced raster: the AOI is in pixel coordinates
    if crs is not None and crs != source.crs:
        geom = shape(transform_geom(crs, source.crs, mapping(geom)))
    inv = ~source.transform
    return affinity.affine_transform(geom, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])


class AreaOfInterest:
    """An area of interest in the pixel coordinates (x = column, y = row) of a source's grid.

    ``spec``: a GeoJSON file or WKT text (see :func:`parse_aoi`), or a polygon already in
    pixel coordinates (see :func:`pixel_geometry`).
    """

    def __init__(self, spec: str | shapely.Geometry, source: Source) -> None:
        if isinstance(spec, str):
            pixels = pixel_geometry(*parse_aoi(spec), source)
        else:
            pixels = spec
        if not pixels.intersects(shapely.box(0, 0, source.width, source.height)):
            raise RenderError(
                "the area of interest does not meet the raster: is it in the raster's CRS? "
                "Otherwise say its CRS (SRID=4326;POLYGON(...) or a GeoJSON crs member)",
                "--aoi",
            )
        self.pixels = pixels
        shapely.prepare(self.pixels)

    def mask(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """(height, width) bool, True for pixels whose centre lies inside the area."""
        if self.pixels.contains(shapely.box(col, row, col + width, row + height)):
            return np.ones((height, width), bool)
        return geometry_mask(
            [self.pixels],
            out_shape=(height, width),
            transform=Affine.translation(col, row),
            invert=True,
        )

"""The grid a raster is rendered on: its own north-up grid (warped there from GCPs, RPCs or a
rotated geotransform), resampled to a ground resolution.

:func:`native_grid` finds the north-up grid of an input; :func:`output_grid` resamples it to the
metres per pixel the model expects. Reading onto these grids is :mod:`geo_p2p.reader`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import CRSError, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as transform_points

from .errors import RenderError
from .geodesy import RESOLUTION_TOLERANCE, pixel_metres

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NativeGrid:
    """A georeferenced input's own pixel grid, north-up (warped there if need be)."""

    width: int
    height: int
    crs: CRS
    transform: Affine
    warp: str | None
    """What brings the input onto this grid (None: it is the input's own grid)."""
    pixel_metres: tuple[float, float] | None
    """Metres on the ground per pixel along x and y at the centre (None where that cannot be
    measured)."""

    @property
    def gsd(self) -> float | None:
        """Metres on the ground per pixel at the centre, the mean of x and y."""
        return None if self.pixel_metres is None else sum(self.pixel_metres) / 2


def native_grid(src: rasterio.DatasetReader) -> NativeGrid | None:
    """The north-up grid that ``src`` is rendered from; None without georeferencing.

    A plain north-up geotransform is the input's own grid. Otherwise :func:`warp_north_up`
    takes the input there on the fly: ground control points to their CRS (or the UTM zone of
    their centre if they are in degrees), RPCs to the UTM zone of their centre, a rotated or
    sheared geotransform to its CRS.
    """
    gcps, gcp_crs = src.gcps
    t = src.transform
    if src.crs is not None and not t.is_identity:
        if not (t.b or t.d):
            metres = pixel_metres(src.crs, t, src.width, src.height)
            return NativeGrid(src.width, src.height, src.crs, t, None, metres)
        crs, how = src.crs, f"rotated geotransform made north-up in {crs_name(src.crs)}"
    elif gcps and gcp_crs is not None:
        crs, zone = (gcp_crs, "") if gcp_crs.is_projected else (_utm_zone(src), ", its UTM zone")
        how = f"warped from {len(gcps)} ground control points to {crs_name(crs)}{zone}"
    elif src.rpcs is not None:
        crs = _utm_zone(src)
        how = f"warped from its RPCs to {crs_name(crs)}, the UTM zone of its centre"
    else:
        return None
    try:
        with warp_north_up(src, crs) as vrt:
            width, height, transform = vrt.width, vrt.height, vrt.transform
    except (RasterioError, CRSError, ValueError, CPLE_BaseError) as e:
        raise RenderError(f"{src.name}: GDAL cannot warp it north-up ({e})", "INPUT") from e
    metres = pixel_metres(crs, transform, width, height)
    return NativeGrid(width, height, crs, transform, how, metres)


def warp_resampling(categorical: bool, downsampling: bool = False) -> Resampling:
    if categorical:
        return Resampling.mode if downsampling else Resampling.nearest
    return Resampling.average if downsampling else Resampling.bilinear


def warp_north_up(
    src: rasterio.DatasetReader, crs: CRS, resampling: Resampling = Resampling.bilinear
) -> WarpedVRT:
    """``src`` warped to ``crs`` on GDAL's own north-up grid for it (which keeps about the
    input's pixel count), through its GCPs, RPCs or rotated geotransform; the pixels outside
    its footprint are marked in an alpha band (the input's own, if it has one).

    Only GDAL's own grid takes GCPs and RPCs into account in rasterio's WarpedVRT (given an
    output grid, it uses the input's geotransform alone), so another grid is a second warp.
    """
    has_alpha = ColorInterp.alpha in src.colorinterp
    return WarpedVRT(src, crs=crs, resampling=resampling, add_alpha=not has_alpha)


def _utm_zone(src: rasterio.DatasetReader) -> CRS:
    """The UTM zone (WGS 84) at the centre of an input georeferenced by GCPs or RPCs."""
    if src.rpcs is not None:
        lon, lat = src.rpcs.long_off, src.rpcs.lat_off
    else:
        gcps, crs = src.gcps
        xs, ys = transform_points(crs, "EPSG:4326", [g.x for g in gcps], [g.y for g in gcps])
        lon, lat = float(np.mean(xs)), float(np.mean(ys))
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def crs_name(crs: CRS) -> str:
    """A short name: the EPSG code, else the name in the WKT.

    >>> crs_name(CRS.from_epsg(2056)), crs_name(CRS.from_proj4("+proj=geos +h=35785831"))
    ('EPSG:2056', 'unknown')
    """
    epsg = crs.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    name = crs.wkt.split('"')[1] if '"' in crs.wkt else ""
    return name or crs.to_string()


def output_grid(grid: NativeGrid, gsd: float | None, categorical: bool) -> dict[str, object]:
    """The output grid's fields of a :class:`Source`: ``grid`` resampled to ``gsd`` metres per
    pixel (None: kept), with the resampling that a warp or a change of resolution needs (for
    ``categorical`` values such as colour-table indexes: nearest, or the most common value)."""
    fields: dict[str, object] = {
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs,
        "transform": grid.transform,
        "resampling": None if grid.warp is None else warp_resampling(categorical),
        "warp": grid.warp,
        "input_gsd": grid.gsd,
        "gsd": grid.gsd,
    }
    if gsd is None:
        return fields
    if not gsd > 0:
        raise RenderError(f"the resolution must be positive, got {gsd}", "--resolution")
    if grid.pixel_metres is None:
        raise RenderError(
            "the ground resolution cannot be measured at the raster's centre in its CRS (not "
            "on the Earth, or outside the CRS's area of use): pass --resolution native",
            "--resolution",
        )
    t = grid.transform
    ratio_x, ratio_y = (metres / gsd for metres in grid.pixel_metres)
    if max(abs(ratio_x - 1), abs(ratio_y - 1)) <= RESOLUTION_TOLERANCE:
        return fields
    width, height = max(1, round(grid.width * ratio_x)), max(1, round(grid.height * ratio_y))
    fields.update(
        width=width,
        height=height,
        transform=t @ Affine.scale(grid.width / width, grid.height / height),
        resampling=warp_resampling(categorical, downsampling=ratio_x < 1),
        gsd=gsd,
    )
    log.debug("output grid %dx%d px at %.3g m/px", width, height, gsd)
    return fields

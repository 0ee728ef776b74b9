"""Raster input and output with rasterio: what to read, how to scale and resample it, how to write.

:func:`inspect_source` turns an input path and the user's options into a :class:`Source`: the
bands, the value scaling and the output grid (resampled to the model's ground resolution, in the
input's CRS). A :class:`RasterReader` then reads windows of that grid as uint8 RGB plus a validity
mask, through a ``WarpedVRT`` when resampling (no temporary copy). Writing is in
:mod:`geo_p2p.geotiff`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as transform_points
from rasterio.windows import Window

log = logging.getLogger(__name__)

Resolution = Literal["auto", "native"] | float
STRETCH_PERCENTILES = (2.0, 98.0)
STATS_READ_SIZE = 1024
"""Longest side of the decimated read that the percentile stretch is computed from."""
RESOLUTION_TOLERANCE = 0.01
"""Relative difference in pixel size below which ``--resolution auto`` does not resample."""
EARTH_RADIUS_M = 6_371_008.8
NODATA_FILL = 128
"""Value the generator sees at no-data input pixels (mid grey)."""


class RenderError(ValueError):
    """A problem with the user's input or options; the message says what is wrong and what to do.

    ``param`` names the option (or argument) at fault, for the command line.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Source:
    """An input raster and how to read it: bands, scaling, and the grid it is rendered on."""

    path: str
    bands: tuple[int, ...]
    """1-based band indexes: three, or one to be replicated to RGB."""
    scale: tuple[float, float] | None
    """Input values mapped to 0 and 255 (None: uint8 read as is)."""
    width: int
    height: int
    crs: CRS | None
    transform: Affine | None
    """Transform of the output grid; None when the input has no georeferencing."""
    resampling: Resampling | None
    """None: the output grid is the input's own (no resampling)."""
    input_shape: tuple[int, int]
    """Height and width of the input raster."""
    input_block_rows: int
    """Rows in one block of the input's internal tiling (or strips)."""
    input_pixel_bytes: int
    """Bytes per pixel of the input, all bands (GDAL caches whole interleaved blocks)."""


def inspect_source(
    path: str | Path,
    bands: tuple[int, ...] | None = None,
    scale: tuple[float, float] | None = None,
    resolution: Resolution = "auto",
    gsd: float | None = None,
    allow_ungeoreferenced: bool = False,
) -> Source:
    """Open ``path`` and decide bands, value scaling and output grid; raise RenderError if unfit.

    ``resolution``: "auto" resamples to ``gsd`` (the model's metres per pixel), "native" keeps the
    input grid, a number sets the output's ground resolution in metres per pixel.
    """
    with _open(path) as src:
        georeferenced = src.crs is not None and not src.transform.is_identity
        if not georeferenced:
            _check_ungeoreferenced(src, allow_ungeoreferenced)
        chosen = _choose_bands(src, bands)
        value_scale = _value_scale(src, chosen, scale)
        layout = {
            "input_shape": (src.height, src.width),
            "input_block_rows": src.block_shapes[0][0],
            "input_pixel_bytes": sum(np.dtype(d).itemsize for d in src.dtypes),
        }
        if not georeferenced:
            if resolution not in ("auto", "native"):
                raise RenderError("a resolution needs a georeferenced input", "--resolution")
            return Source(
                str(path), chosen, value_scale, src.width, src.height, None, None, None, **layout
            )
        target = gsd if resolution == "auto" else None if resolution == "native" else resolution
        if resolution == "auto" and gsd is None:
            log.info("the model's ground resolution is unknown: rendering on the input's grid")
        width, height, transform, resampling = _output_grid(src, target)
        return Source(
            str(path), chosen, value_scale, width, height, src.crs, transform, resampling, **layout
        )


def open_quietly(path: str | Path, mode: str = "r", **profile: object) -> rasterio.DatasetBase:
    """``rasterio.open`` without the warning about missing georeferencing (handled here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, mode, **profile)


@contextmanager
def _open(path: str | Path) -> Iterator[rasterio.DatasetReader]:
    if not Path(path).exists() and "://" not in str(path):
        raise RenderError(f"{path} does not exist", "INPUT")
    try:
        src = open_quietly(path)
    except RasterioIOError as e:
        raise RenderError(f"{path} is not a raster that GDAL can read ({e})", "INPUT") from e
    with src:
        yield src


def _check_ungeoreferenced(src: rasterio.DatasetReader, allowed: bool) -> None:
    if allowed:
        log.warning("%s has no georeferencing: the output will have none either", src.name)
        return
    if src.gcps[0] or src.rpcs:
        raise RenderError(
            f"{src.name} is georeferenced by ground control points or RPCs only: "
            "rectify it first (gdalwarp), or pass --allow-ungeoreferenced",
            "INPUT",
        )
    missing = "coordinate reference system" if src.crs is None else "geotransform"
    if src.crs is None and not src.transform.is_identity:
        missing += " (a world file without .prj, say: add one)"
    raise RenderError(
        f"{src.name} has no {missing}: "
        "pass --allow-ungeoreferenced to translate its pixel grid anyway",
        "INPUT",
    )


def _choose_bands(src: rasterio.DatasetReader, bands: tuple[int, ...] | None) -> tuple[int, ...]:
    if bands is not None:
        if len(bands) not in (1, 3):
            raise RenderError(f"give 1 or 3 band numbers, not {len(bands)}", "--bands")
        bad = [b for b in bands if not 1 <= b <= src.count]
        if bad:
            raise RenderError(f"{src.name} has bands 1 to {src.count}, not {bad[0]}", "--bands")
        chosen = tuple(bands)
    else:
        interp = list(src.colorinterp)
        rgb = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
        if all(c in interp for c in rgb):
            chosen = tuple(interp.index(c) + 1 for c in rgb)
        else:
            colour = [i + 1 for i, c in enumerate(interp) if c != ColorInterp.alpha]
            if len(colour) == 2:
                raise RenderError(
                    f"{src.name} has 2 bands: choose 1 or 3 of them with --bands", "--bands"
                )
            chosen = tuple(colour[:3])
    if len(chosen) == 1:
        log.warning("single band %d: replicated to red, green and blue", chosen[0])
    return chosen


def _value_scale(
    src: rasterio.DatasetReader, bands: tuple[int, ...], scale: tuple[float, float] | None
) -> tuple[float, float] | None:
    if scale is not None:
        if not scale[1] > scale[0]:
            raise RenderError(f"MIN must be below MAX, got {scale[0]},{scale[1]}", "--scale")
        log.info("scaling values %g..%g to 0..255 (--scale)", *scale)
        return scale
    if all(src.dtypes[b - 1] == "uint8" for b in bands):
        return None
    factor = max(1, math.ceil(max(src.width, src.height) / STATS_READ_SIZE))
    shape = (len(bands), math.ceil(src.height / factor), math.ceil(src.width / factor))
    data = src.read(bands, out_shape=shape, masked=True, resampling=Resampling.nearest)
    values = data.compressed()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise RenderError(f"{src.name} has no valid pixels in bands {list(bands)}", "INPUT")
    lo, hi = (float(v) for v in np.percentile(values, STRETCH_PERCENTILES))
    hi = hi if hi > lo else lo + 1.0
    log.info(
        "scaling %s values %g..%g to 0..255 (%g-%g %% stretch from a %dx%d read)",
        src.dtypes[bands[0] - 1],
        lo,
        hi,
        *STRETCH_PERCENTILES,
        shape[2],
        shape[1],
    )
    return lo, hi


def ground_scale(crs: CRS, transform: Affine, width: int, height: int) -> tuple[float, float]:
    """Metres on the ground per CRS unit along x and y, at the centre of a raster.

    Measured by projecting points 10 pixels apart to longitude/latitude (a great circle on the
    mean Earth sphere), so it holds for geographic CRSs (degrees), feet, and the scale
    distortion of Web Mercator alike.
    """
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


def _output_grid(
    src: rasterio.DatasetReader, gsd: float | None
) -> tuple[int, int, Affine, Resampling | None]:
    t = src.transform
    if gsd is None:
        return src.width, src.height, t, None
    if gsd <= 0:
        raise RenderError(f"the resolution must be positive, got {gsd}", "--resolution")
    mx, my = ground_scale(src.crs, t, src.width, src.height)
    ratio_x, ratio_y = abs(t.a) * mx / gsd, abs(t.e) * my / gsd
    if max(abs(ratio_x - 1), abs(ratio_y - 1)) <= RESOLUTION_TOLERANCE:
        return src.width, src.height, t, None
    if t.b or t.d:
        raise RenderError(
            f"{src.name} has a rotated geotransform: pass --resolution native, "
            "or warp it north-up first (gdalwarp)",
            "--resolution",
        )
    width, height = max(1, round(src.width * ratio_x)), max(1, round(src.height * ratio_y))
    transform = t @ Affine.scale(src.width / width, src.height / height)
    resampling = Resampling.average if ratio_x < 1 else Resampling.bilinear
    log.info(
        "resampling %dx%d to %dx%d px (%.3g m/px on the ground, %s)",
        src.width,
        src.height,
        width,
        height,
        gsd,
        resampling.name,
    )
    return width, height, transform, resampling


class RasterReader:
    """Reads windows of a :class:`Source`'s output grid; one per thread (GDAL handles are not
    shared between threads). Use as a context manager."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._src = open_quietly(source.path)
        self._ds: rasterio.DatasetReader | WarpedVRT = self._src
        if source.resampling is not None:
            # The grid may reach beyond the input (web tiles): no-data there, also for an
            # input without a mask, which then gets an alpha band.
            flags = self._src.mask_flag_enums
            unmasked = all(MaskFlags.all_valid in flags[b - 1] for b in source.bands)
            self._ds = WarpedVRT(
                self._src,
                crs=source.crs,
                transform=source.transform,
                width=source.width,
                height=source.height,
                resampling=source.resampling,
                add_alpha=unmasked,
            )

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._ds is not self._src:
            self._ds.close()
        self._src.close()

    def read(
        self, row: int, col: int, height: int, width: int, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Window at ``(row, col)``: (3, height, width) uint8 RGB and (height, width) bool valid,
        or decimated to ``out_shape`` (nearest pixel)."""
        window = Window(col, row, width, height)
        bands = self.source.bands
        shape = None if out_shape is None else (len(bands), *out_shape)
        data = self._ds.read(bands, window=window, out_shape=shape)
        valid = self._ds.read_masks(bands, window=window, out_shape=shape).any(axis=0)
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        if self.source.scale is not None:
            lo, hi = self.source.scale
            data = np.nan_to_num((data.astype(np.float32) - lo) * (255.0 / (hi - lo)))
            data = np.clip(np.rint(data), 0, 255)
        data = data.astype(np.uint8, copy=False)
        if len(bands) == 1:
            data = np.repeat(data, 3, axis=0)
        return data, valid

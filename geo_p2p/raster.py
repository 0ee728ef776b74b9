"""Raster input: what to read and how. :func:`inspect_source` turns an input path and the user's
options into a :class:`Source`: the bands, the value scaling and the output grid (resampled to the
model's ground resolution, in the input's CRS, see :mod:`geo_p2p.grids`). A
:class:`~geo_p2p.reader.RasterReader` then reads windows of that grid.
"""

from __future__ import annotations

import dataclasses
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
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from .errors import RenderError
from .geodesy import finer, ground_resolution, missing_georeferencing
from .grids import native_grid, output_grid
from .inputs import is_local, is_remote, resolve_input

log = logging.getLogger(__name__)

Resolution = Literal["auto", "native"] | float
STRETCH_PERCENTILES = (2.0, 98.0)
STATS_READ_SIZE = 1024
"""Longest side of the decimated read that the percentile stretch is computed from."""
NODATA_FILL = 128
"""Value the generator sees at no-data input pixels (mid grey) where there is no valid colour
to take."""


@dataclass(frozen=True)
class Source:
    """An input raster and how to read it: bands, scaling, and the grid it is rendered on."""

    path: str
    bands: tuple[int, ...]
    """1-based band indexes: three, or one to be replicated to RGB."""
    scale: tuple[float, float] | None
    """Input values mapped to 0 and 255 (None: uint8 read as is)."""
    palette: tuple[tuple[int, int, int, int], ...] | None
    """RGBA colour of each value of a colour-mapped single band (None: no colour table)."""
    width: int
    height: int
    crs: CRS | None
    transform: Affine | None
    """Transform of the output grid; None when the input has no georeferencing."""
    resampling: Resampling | None
    """None: the output grid is the input's own (no resampling)."""
    warp: str | None
    """How the input reaches the output grid when not by plain resampling (GCPs, RPCs, a rotated
    geotransform), for the plan; None otherwise."""
    input_gsd: float | None
    """The input's ground resolution in metres per pixel at its centre, where measurable."""
    gsd: float | None
    """The output's ground resolution in metres per pixel at its centre, where measurable."""
    input_shape: tuple[int, int]
    """Height and width of the input raster."""
    input_block_rows: int
    """Rows in one block of the input's internal tiling (or strips)."""
    input_pixel_bytes: int
    """Bytes per pixel of the input, all bands (GDAL caches whole interleaved blocks)."""
    overviews: tuple[int, ...] = ()
    """Decimation factors of the input's overviews that may be read instead of its full
    resolution (none for an input warped through GCPs, RPCs or a rotated geotransform)."""

    def ground_resolution(self) -> float:
        """Metres on the ground per pixel of the output grid at its centre (mean of x and y)."""
        assert self.crs is not None and self.transform is not None
        return ground_resolution(self.crs, self.transform, self.width, self.height)

    def overview(self) -> tuple[int, int] | None:
        """(GDAL's 0-based overview level, its decimation factor) of the coarsest overview still
        at least as fine as the output grid, read instead of the full resolution when the input
        is resampled coarser (as gdalwarp does by default); None: the full resolution."""
        if self.resampling is None or not self.overviews or self.input_gsd is None:
            return None
        ratio = self.ground_resolution() / self.input_gsd
        usable = [(level, f) for level, f in enumerate(self.overviews) if f <= ratio * (1 + 1e-6)]
        return max(usable, key=lambda u: u[1]) if usable else None


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
    input grid, a number sets the output's ground resolution in metres per pixel. Inputs
    georeferenced by ground control points or RPCs, or with a rotated geotransform, are warped
    north-up on the fly (see :func:`~geo_p2p.grids.native_grid`). ``path`` may be a URL, a GDAL
    path or a STAC Item (see :func:`geo_p2p.inputs.resolve_input`).
    """
    path = resolve_input(path)
    with open_raster(path) as src:
        grid = native_grid(src)
        if grid is None:
            _check_ungeoreferenced(src, allow_ungeoreferenced)
        chosen = _choose_bands(src, bands)
        palette = _colour_table(src, chosen)
        if palette is not None:
            log.info("band %d has a colour table: its colours are translated", chosen[0])
            value_scale = None
        else:
            if len(chosen) == 1:
                log.warning("single band %d: replicated to red, green and blue", chosen[0])
            value_scale = _value_scale(src, chosen, scale)
        layout = {
            "input_shape": (src.height, src.width),
            "input_block_rows": src.block_shapes[0][0],
            "input_pixel_bytes": sum(np.dtype(d).itemsize for d in src.dtypes),
            "overviews": _overviews(src, chosen) if grid is not None and not grid.warp else (),
        }
        if grid is None:
            if resolution not in ("auto", "native"):
                raise RenderError("a resolution needs a georeferenced input", "--resolution")
            pixels = {"width": src.width, "height": src.height, "crs": None, "transform": None}
            unknown = dict.fromkeys(("resampling", "warp", "input_gsd", "gsd"))
            return Source(str(path), chosen, value_scale, palette, **pixels, **unknown, **layout)
        target = gsd if resolution == "auto" else None if resolution == "native" else resolution
        if resolution == "auto" and gsd is None:
            log.info("the model's ground resolution is unknown: rendering on the input's grid")
        fields = output_grid(grid, target, categorical=palette is not None)
        return Source(str(path), chosen, value_scale, palette, **fields, **layout)


def _overviews(src: rasterio.DatasetReader, bands: tuple[int, ...]) -> tuple[int, ...]:
    """The overview decimation factors that all of ``bands`` share (none if they differ)."""
    factors = {tuple(src.overviews(b)) for b in bands}
    return factors.pop() if len(factors) == 1 else ()


def open_quietly(path: str | Path, mode: str = "r", **profile: object) -> rasterio.DatasetBase:
    """``rasterio.open`` without the warning about missing georeferencing (handled here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, mode, **profile)


@contextmanager
def open_raster(path: str | Path, param: str = "INPUT") -> Iterator[rasterio.DatasetReader]:
    """The raster at ``path`` (a resolved input, see :func:`geo_p2p.inputs.resolve_input`) open
    for reading; a RenderError for ``param`` if it is missing, out of reach, or not a raster GDAL
    reads."""
    if is_local(path) and not Path(path).exists():
        raise RenderError(f"{path} does not exist", param)
    try:
        src = open_quietly(path)
    except RasterioIOError as e:
        if is_remote(path):
            raise RenderError(
                f"cannot open {path} ({e}): check the URL, the network and the credentials "
                "(GDAL's AWS_* and GDAL_HTTP_* settings), or try again later",
                param,
            ) from e
        raise RenderError(f"{path} is not a raster that GDAL can read ({e})", param) from e
    with src:
        yield src


def require_georeferencing(path: str | Path, purpose: str, param: str = "INPUT") -> None:
    """Refuse a raster that has no CRS or no geotransform: ``purpose`` says why it needs both
    and how to add them (e.g. "web tiles need a CRS and a geotransform (...)")."""
    with open_raster(resolve_input(path, param=param), param) as src:
        missing = missing_georeferencing(src)
    if missing:
        raise RenderError(f"{path} has no {missing}: {purpose}", param)


def _check_ungeoreferenced(src: rasterio.DatasetReader, allowed: bool) -> None:
    if allowed:
        log.warning("%s has no georeferencing: the output will have none either", src.name)
        return
    if src.gcps[0]:
        raise RenderError(
            f"{src.name} has ground control points without a coordinate reference system: "
            "assign one (gdal_translate -a_srs), or pass --allow-ungeoreferenced",
            "INPUT",
        )
    missing = str(missing_georeferencing(src))
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
    return chosen


def _colour_table(
    src: rasterio.DatasetReader, bands: tuple[int, ...]
) -> tuple[tuple[int, int, int, int], ...] | None:
    """The colour table of a single colour-mapped band as RGBA by value (None otherwise)."""
    if len(bands) != 1 or src.colorinterp[bands[0] - 1] != ColorInterp.palette:
        return None
    try:
        colours = src.colormap(bands[0])
    except ValueError:  # marked as palette, but no table
        return None
    table = [(0, 0, 0, 0)] * (max(colours) + 1)
    for value, rgba in colours.items():
        table[value] = tuple(int(c) for c in rgba)  # type: ignore[assignment]
    return tuple(table)


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


def onto_grid(
    source: Source,
    crs: CRS,
    transform: Affine,
    width: int,
    height: int,
    metres: float | None = None,
) -> Source:
    """``source`` read onto another grid (CRS, transform, size): averaged where the source is
    finer than the grid's ``metres`` per pixel (default: measured at the grid's centre), else
    interpolated bilinearly."""
    own = source.ground_resolution()
    if metres is None:
        metres = ground_resolution(crs, transform, width, height)
    return dataclasses.replace(
        source,
        crs=crs,
        transform=transform,
        width=width,
        height=height,
        resampling=Resampling.average if finer(own, metres) else Resampling.bilinear,
    )

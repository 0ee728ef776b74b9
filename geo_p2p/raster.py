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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio._err import CPLE_BaseError
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as transform_points
from rasterio.windows import Window

from .inputs import (
    BadInput,
    is_local,
    is_remote,
    prepare_remote,
    read_with_retries,
    redact,
    resolve_input,
)

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
        super().__init__(redact(message))
        self.param = param


class ReadError(RenderError):
    """GDAL could not read a window of the input: names the file, the window and GDAL's reason."""

    def __init__(self, source: Source, window: Window, error: Exception) -> None:
        cause = error.__cause__ or error.__context__ or error
        reason = " ".join(str(cause).split()) or type(cause).__name__
        grid = "" if source.resampling is None else " of the grid it is resampled to"
        hint = f"the file may be damaged; check it with 'gdalinfo -checksum {source.path}'"
        if is_remote(source.path):
            hint = "the server did not deliver it; try again later (--resume keeps what is done)"
        super().__init__(
            f"cannot read {source.path} at pixels x {window.col_off}-"
            f"{window.col_off + window.width}, y {window.row_off}-"
            f"{window.row_off + window.height}{grid} ({reason}): {hint}",
            "INPUT",
        )


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
    north-up on the fly (see :func:`native_grid`). ``path`` may be a URL, a GDAL path or a
    STAC Item (see :func:`geo_p2p.inputs.resolve_input`).
    """
    path = input_path(path)
    with _open(path) as src:
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
        fields = _output_grid(grid, target, categorical=palette is not None)
        return Source(str(path), chosen, value_scale, palette, **fields, **layout)


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
            metres = _pixel_metres(src.crs, t, src.width, src.height)
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
    metres = _pixel_metres(crs, transform, width, height)
    return NativeGrid(width, height, crs, transform, how, metres)


def _warp_resampling(categorical: bool, downsampling: bool = False) -> Resampling:
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


def _pixel_metres(crs: CRS, t: Affine, width: int, height: int) -> tuple[float, float] | None:
    """Ground metres per pixel along x and y at the centre of a grid; None where the CRS
    cannot be measured there (off the Earth's disc in a geostationary view, say)."""
    try:
        mx, my = ground_scale(crs, t, width, height)
    except (CRSError, ValueError, RasterioError, CPLE_BaseError):  # not on the Earth, say
        return None
    metres = abs(t.a) * mx, abs(t.e) * my
    gsd = sum(metres) / 2
    return metres if math.isfinite(gsd) and gsd > 0 else None


def input_path(path: str | Path, param: str = "INPUT") -> str:
    """:func:`geo_p2p.inputs.resolve_input` (the GDAL path of a file, URL or STAC Item), its
    errors as RenderError."""
    try:
        return resolve_input(path, param=param)
    except BadInput as e:
        raise RenderError(str(e), e.param) from e


def open_quietly(path: str | Path, mode: str = "r", **profile: object) -> rasterio.DatasetBase:
    """``rasterio.open`` without the warning about missing georeferencing (handled here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        return rasterio.open(path, mode, **profile)


@contextmanager
def _open(path: str | Path) -> Iterator[rasterio.DatasetReader]:
    if is_local(path) and not Path(path).exists():
        raise RenderError(f"{path} does not exist", "INPUT")
    try:
        src = open_quietly(path)
    except RasterioIOError as e:
        if is_remote(path):
            raise RenderError(
                f"cannot open {path} ({e}): check the URL, the network and the credentials "
                "(GDAL's AWS_* and GDAL_HTTP_* settings), or try again later",
                "INPUT",
            ) from e
        raise RenderError(f"{path} is not a raster that GDAL can read ({e})", "INPUT") from e
    with src:
        yield src


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


def _output_grid(grid: NativeGrid, gsd: float | None, categorical: bool) -> dict[str, object]:
    """The output grid's fields of a :class:`Source`: ``grid`` resampled to ``gsd`` metres per
    pixel (None: kept), with the resampling that a warp or a change of resolution needs (for
    ``categorical`` values such as colour-table indexes: nearest, or the most common value)."""
    fields: dict[str, object] = {
        "width": grid.width,
        "height": grid.height,
        "crs": grid.crs,
        "transform": grid.transform,
        "resampling": None if grid.warp is None else _warp_resampling(categorical),
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
        resampling=_warp_resampling(categorical, downsampling=ratio_x < 1),
        gsd=gsd,
    )
    log.debug("output grid %dx%d px at %.3g m/px", width, height, gsd)
    return fields


class RasterReader:
    """Reads windows of a :class:`Source`'s output grid; one per thread (GDAL handles are not
    shared between threads). Use as a context manager."""

    def __init__(self, source: Source) -> None:
        self.source = source
        prepare_remote(source.path)  # in a worker process too
        self._open = ExitStack()
        self._ds = self._dataset()
        self._palette = None if source.palette is None else np.array(source.palette, np.uint8)

    def _dataset(self) -> rasterio.DatasetReader | WarpedVRT:
        """Open the input and the warps that bring it onto the source's grid."""
        source = self.source
        ds = self._open.enter_context(open_quietly(source.path))
        if source.warp is not None:
            categorical = _warp_resampling(source.palette is not None)
            ds = self._open.enter_context(warp_north_up(ds, source.crs, categorical))
        grid = (source.width, source.height, source.transform)
        if source.transform is not None and (ds.width, ds.height, ds.transform) != grid:
            # The grid may reach beyond the input (web tiles): no-data there, also for an
            # input without a mask, which then gets an alpha band.
            flags = ds.mask_flag_enums
            unmasked = all(MaskFlags.all_valid in flags[b - 1] for b in source.bands)
            ds = self._open.enter_context(
                WarpedVRT(
                    ds,
                    crs=source.crs,
                    transform=source.transform,
                    width=source.width,
                    height=source.height,
                    resampling=source.resampling,
                    add_alpha=unmasked,
                )
            )
        return ds

    def _reopen(self) -> None:
        self._open.close()
        self._ds = self._dataset()

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._open.close()

    def read(
        self, row: int, col: int, height: int, width: int, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Window at ``(row, col)``: (3, height, width) uint8 RGB and (height, width) bool valid,
        or decimated to ``out_shape`` (nearest pixel)."""
        window = Window(col, row, width, height)
        bands = self.source.bands
        shape = None if out_shape is None else (len(bands), *out_shape)

        def read() -> tuple[np.ndarray, np.ndarray]:
            data = self._ds.read(bands, window=window, out_shape=shape)
            return data, self._ds.read_masks(bands, window=window, out_shape=shape).any(axis=0)

        try:  # a remote input is reopened and read again after a dropped connection
            data, valid = read_with_retries(self.source.path, read, self._reopen)
        except RasterioError as e:
            raise ReadError(self.source, window, e) from e
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        if self._palette is not None:
            rgba = self._palette[np.minimum(data[0], len(self._palette) - 1)]
            return np.moveaxis(rgba[..., :3], -1, 0), valid & (rgba[..., 3] > 0)
        if self.source.scale is not None:
            lo, hi = self.source.scale
            data = np.nan_to_num((data.astype(np.float32) - lo) * (255.0 / (hi - lo)))
            data = np.clip(np.rint(data), 0, 255)
        data = data.astype(np.uint8, copy=False)
        if len(bands) == 1:
            data = np.repeat(data, 3, axis=0)
        return data, valid

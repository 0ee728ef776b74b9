"""The GeoTIFF of a map: its profile, finished blocks, colour interpretation, COG, quicklook, and
the block cache a render needs. :class:`~geo_p2p.run.writer.GeoTIFFWriter` writes a render's
output with these.

The output is 3-band uint8 RGB (colour interpretation set), internally tiled 512, ZSTD,
BIGTIFF when needed, with no-data as an internal mask or an alpha band. It is written under a
temporary name next to the destination and renamed at the end, so a failure or Ctrl-C never
leaves a partial file at the destination. A resumable render writes ``.NAME.partial.tif``
instead, closed, synced and recorded in its :class:`~geo_p2p.run.journal.Journal` after each
part, so an interruption of any kind loses at most the parts in progress.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from PIL import Image
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from .files import atomic_write_bytes
from .raster import Source, open_quietly
from .reader import RasterReader
from .render.mosaic import Block
from .render.tiling import OUTPUT_BLOCK

QUICKLOOK_SIZE = 512
GDAL_OPTIONS = {"GDAL_TIFF_INTERNAL_MASK": True, "GDAL_PAM_ENABLED": False}
"""GDAL settings for writing: masks inside the GeoTIFF, no .aux.xml side files."""


def gdal_cache_bytes(source: Source, tile: int, strip_width: int) -> int:
    """GDAL block cache that a render in strips needs: the row of output tiles being written
    and the input blocks under a row of model tiles, over one strip, with a quarter more for
    headroom. Sized like this, the cache holds what is reused and little more, so memory does
    not grow with the raster (GDAL's default, 5 % of RAM, would fill up with old blocks)."""
    output_row = OUTPUT_BLOCK * strip_width * 4
    scale = source.input_shape[1] / source.width
    input_rows = tile * scale + source.input_block_rows
    input_bytes = input_rows * strip_width * scale * source.input_pixel_bytes
    return int(1.25 * (output_row + input_bytes)) + 8 * 2**20


def write_quicklook(source: Source, rendered: Path, png: Path, size: int = QUICKLOOK_SIZE) -> None:
    """Write ``png``: the input as the model saw it beside the rendered output, each at most
    ``size`` pixels on its longer side (decimated reads), no-data transparent."""
    factor = max(1, math.ceil(max(source.width, source.height) / size))
    shape = (math.ceil(source.height / factor), math.ceil(source.width / factor))
    with RasterReader(source) as reader:
        rgb_in, valid_in = reader.read(0, 0, source.height, source.width, out_shape=shape)
    with open_quietly(rendered) as out:
        rgb_out = out.read([1, 2, 3], out_shape=(3, *shape))
        valid_out = out.dataset_mask(out_shape=shape) > 0
    panels = [
        np.concatenate([rgb, valid[None] * np.uint8(255)])
        for rgb, valid in ((rgb_in, valid_in), (rgb_out, valid_out))
    ]
    gap = np.zeros((4, shape[0], max(2, shape[1] // 64)), np.uint8)
    rgba = np.concatenate([panels[0], gap, panels[1]], axis=2).transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(buffer, "PNG")
    atomic_write_bytes(png, buffer.getvalue())


def output_profile(
    source: Source, alpha: bool = False, creation_options: Mapping[str, str] | None = None
) -> dict[str, object]:
    """GeoTIFF profile of the output: RGB uint8, tiled 512, fast ZSTD, BIGTIFF when needed.

    ``creation_options`` override the defaults; GDAL ignores those of other codecs, so
    ``COMPRESS=DEFLATE`` alone gives DEFLATE at its default level with the same predictor, and
    ``ZLEVEL`` alone (DEFLATE's level) means DEFLATE.
    """
    profile: dict[str, object] = {
        "driver": "GTiff",
        "width": source.width,
        "height": source.height,
        "count": 4 if alpha else 3,
        "dtype": "uint8",
        "photometric": "RGB",
        "tiled": True,
        "blockxsize": OUTPUT_BLOCK,
        "blockysize": OUTPUT_BLOCK,
        # ZSTD level 1 with the horizontal predictor: on the bundled model's maps it costs a
        # third of DEFLATE level 1's CPU time and writes files 4 % smaller (benchmarks/README.md);
        # the writer shares the cores with the model, so this is render speed.
        "compress": "zstd",
        "zstd_level": 1,
        "predictor": 2,
        "bigtiff": "IF_SAFER",
    }
    if source.transform is not None:
        profile.update(crs=source.crs, transform=source.transform)
    options = {k.lower(): v for k, v in (creation_options or {}).items()}
    if "zlevel" in options and "compress" not in options:
        options["compress"] = "deflate"  # ZLEVEL is DEFLATE's level: the user means DEFLATE
    profile.update(options)
    return profile


def write_block(dst: rasterio.io.DatasetWriter, block: Block, alpha: bool) -> None:
    """Write a finished block: RGB, and its mask as the alpha band or the internal mask."""
    _, h, w = block.rgb.shape
    window = Window(block.col, block.row, w, h)
    dst.write(block.rgb, indexes=[1, 2, 3], window=window)
    if alpha:
        dst.write(block.mask, indexes=4, window=window)
    else:
        dst.write_mask(block.mask, window=window)


def set_colour_interpretation(dst: rasterio.io.DatasetWriter, alpha: bool) -> None:
    """Mark the bands red, green, blue (and alpha)."""
    interp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    dst.colorinterp = interp + [ColorInterp.alpha] if alpha else interp


def convert_to_cog(
    src_path: Path, dst_path: Path, creation_options: Mapping[str, str] | None = None
) -> None:
    """Copy a GeoTIFF to a Cloud-Optimized GeoTIFF with overviews (GDAL's COG driver)."""
    options: dict[str, object] = {
        "compress": "deflate",
        "predictor": "yes",
        "blocksize": OUTPUT_BLOCK,
        "bigtiff": "IF_SAFER",
        "overview_resampling": "average",
    }
    options.update({k.lower(): v for k, v in (creation_options or {}).items()})
    rasterio.shutil.copy(str(src_path), str(dst_path), driver="COG", **options)

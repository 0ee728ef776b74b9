"""Cloud-Optimized GeoTIFFs made from real rasters for the remote-input tests and
benchmarks/remote_reads.py, and the bytes of their blocks."""

from __future__ import annotations

from pathlib import Path

import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling


def write_cog(src: Path, dst: Path, size: int | None = None) -> Path:
    """``src`` as a COG of 256 px blocks with overviews, upsampled to ``size`` px wide."""
    with rasterio.open(src) as ds:
        width = size or ds.width
        height = round(ds.height * width / ds.width)
        data = ds.read(out_shape=(ds.count, height, width), resampling=Resampling.bilinear)
        profile = ds.profile | {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "transform": ds.transform @ Affine.scale(ds.width / width, ds.height / height),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
    plain = dst.with_suffix(".plain.tif")
    with rasterio.open(plain, "w", **profile) as out:
        out.write(data)
    rasterio.shutil.copy(plain, dst, driver="COG", blocksize=256, compress="deflate")
    plain.unlink()
    return dst


def block_bytes(ds: rasterio.DatasetReader, row0: int, col0: int, row1: int, col1: int) -> int:
    """Bytes of the full-resolution blocks of ``ds`` meeting the pixel rows and columns."""
    height, width = ds.block_shapes[0]
    rows = range(max(0, row0) // height, min(ds.height - 1, row1) // height + 1)
    cols = range(max(0, col0) // width, min(ds.width - 1, col1) // width + 1)
    tags = [ds.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1) for r in rows for c in cols]
    return sum(int(t) for t in tags)


def area_of_interest(ds: rasterio.DatasetReader, tile: int) -> tuple[str, int]:
    """A tenth of the area of ``ds`` (a 0.316 x 0.316 box, 10 % from the west and 35 % from
    the south) as WKT, and the bytes of the blocks under the ``tile`` px model tiles that meet
    it (reaching a tile past it on each side)."""
    left, bottom, right, top = ds.bounds
    x0, y0 = left + (right - left) * 0.1, bottom + (top - bottom) * 0.35
    x1, y1 = x0 + (right - left) * 0.316, y0 + (top - bottom) * 0.316
    (row0, col0), (row1, col1) = ds.index(x0, y1), ds.index(x1, y0)
    needed = block_bytes(ds, row0 - tile, col0 - tile, row1 + tile, col1 + tile)
    return f"POLYGON(({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))", needed

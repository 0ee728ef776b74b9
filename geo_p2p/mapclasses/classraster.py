"""Class rasters: uint8 GeoTIFFs of map classes, with a colour table and the class names.

Value 0 is no data, class index ``i`` of the palette is value ``i + 1``. The colour table is the
TIFF's own (GDAL, QGIS and most readers show it). Class names are written twice:

- as band metadata in the TIFF (``CLASS_1=land``, ... in GDAL's GDAL_METADATA tag), where they
  travel with the file and :func:`read_class_names` finds them;
- as GDAL category names and a thematic raster attribute table in ``NAME.aux.xml`` beside it,
  because GDAL's GeoTIFF driver keeps both only there (its PAM side file, which our writer turns
  off with ``GDAL_PAM_ENABLED=False`` so that GDAL leaves no side files of its own). ``gdalinfo``
  lists them as "Categories"; QGIS 3.22 shows the raster with its "paletted" renderer and labels
  each colour with its category name (checked with QGIS 3.22.16's Python API).

:func:`crisp_geotiff` turns a painted map (``geo-p2p render``'s output) into the crisp style
and/or a class raster, block by block through :class:`~geo_p2p.mapclasses.crisp.CrispStream`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from rasterio.windows import Window

from ..errors import RenderError
from ..files import atomic_output, atomic_write_bytes, check_output, temporary_path
from ..geotiff import GDAL_OPTIONS, set_colour_interpretation, write_block
from ..raster import open_quietly
from ..render.mosaic import Block
from ..render.tiling import OUTPUT_BLOCK
from .crisp import NODATA, ClassBlock, CrispStream
from .palette import Palette

CLASS_BAND = "map class"
"""The class band's description."""
_RAT_FIELDS = (("value", 0, 5), ("class", 2, 2), ("red", 0, 6), ("green", 0, 7), ("blue", 0, 8))
"""The raster attribute table's fields: name, GDAL type (0 integer, 2 string) and usage
(GFU_MinMax, GFU_Name, GFU_Red, GFU_Green, GFU_Blue)."""


def class_profile(
    width: int,
    height: int,
    crs: object,
    transform: object,
    creation_options: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """GeoTIFF profile of a class raster: one uint8 band, nodata 0, tiled 512, ZSTD."""
    profile: dict[str, object] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 1,
        "dtype": "uint8",
        "nodata": NODATA,
        "tiled": True,
        "blockxsize": OUTPUT_BLOCK,
        "blockysize": OUTPUT_BLOCK,
        "compress": "zstd",
        "zstd_level": 1,
        "bigtiff": "IF_SAFER",
    }
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    profile.update({k.lower(): v for k, v in (creation_options or {}).items()})
    return profile


def describe_classes(dst: rasterio.io.DatasetWriter, palette: Palette) -> None:
    """Give an open class raster its colour table, band description and class names."""
    table = {NODATA: (0, 0, 0, 0)}
    table.update({i + 1: (*c.colour, 255) for i, c in enumerate(palette.classes)})
    dst.write_colormap(1, table)
    dst.colorinterp = [ColorInterp.palette]
    dst.set_band_description(1, CLASS_BAND)
    dst.update_tags(1, **{f"CLASS_{i + 1}": name for i, name in enumerate(palette.names)})


def write_class_block(dst: rasterio.io.DatasetWriter, block: ClassBlock) -> None:
    """Write a block of class values into an open class raster."""
    h, w = block.values.shape
    dst.write(block.values, 1, window=Window(block.col, block.row, w, h))


def sidecar_path(path: Path) -> Path:
    """The GDAL side file (``NAME.aux.xml``) of ``path``."""
    return path.with_name(path.name + ".aux.xml")


def sidecar_xml(palette: Palette) -> str:
    """The ``.aux.xml`` of a class raster: category names (value 0 "no data") and a thematic
    raster attribute table (value, class, red, green, blue)."""
    names = ["no data", *palette.names]
    categories = "".join(f"<Category>{escape(n)}</Category>" for n in names)
    defs = "".join(
        f'<FieldDefn index="{i}"><Name>{n}</Name><Type>{t}</Type><Usage>{u}</Usage></FieldDefn>'
        for i, (n, t, u) in enumerate(_RAT_FIELDS)
    )
    rows = "".join(
        f'<Row index="{i}"><F>{i + 1}</F><F>{escape(c.name)}</F>'
        + "".join(f"<F>{v}</F>" for v in c.colour)
        + "</Row>"
        for i, c in enumerate(palette.classes)
    )
    return (
        '<PAMDataset><PAMRasterBand band="1">'
        f"<CategoryNames>{categories}</CategoryNames>"
        f'<GDALRasterAttributeTable tableType="thematic">{defs}{rows}</GDALRasterAttributeTable>'
        "</PAMRasterBand></PAMDataset>\n"
    )


def read_class_names(dataset: rasterio.io.DatasetReader) -> dict[int, str]:
    """Class value -> name of an open class raster, from its ``CLASS_N`` band metadata."""
    names = {}
    for key, value in dataset.tags(1).items():
        if key.startswith("CLASS_") and key[6:].isdigit() and 0 < int(key[6:]) < 256:
            names[int(key[6:])] = value
    return names


@contextlib.contextmanager
def class_raster_output(dst: Path, palette: Palette, profile: Mapping[str, object]):
    """Open a class raster for writing under a temporary name next to ``dst``; on success it
    gets its colour table and names, its side file, and its name. Yields the open dataset."""
    with temporary_path(dst.parent, dst.name) as tmp:
        with rasterio.Env(**GDAL_OPTIONS), open_quietly(tmp, "w", **profile) as out:
            describe_classes(out, palette)
            yield out
        atomic_write_bytes(sidecar_path(dst), sidecar_xml(palette).encode())
        os.replace(tmp, dst)


def crisp_geotiff(
    painted: str | Path,
    palette: Palette,
    radius: int,
    crisp: str | Path | None = None,
    classes: str | Path | None = None,
    overwrite: bool = False,
    alpha: bool = False,
) -> None:
    """Turn a painted map GeoTIFF (RGB, with its mask) into the crisp style (``crisp``, RGB;
    no-data as an alpha band with ``alpha``, else an internal mask) and/or a class raster
    (``classes``), on the same grid, majority-filtered with ``radius``.

    Works through 512 x 512 blocks in row order (memory: about two rows of blocks, compressed);
    each output is written under a temporary name and renamed at the end.
    """
    painted = Path(painted)
    outputs = [Path(p) for p in (crisp, classes) if p is not None]
    if not outputs:
        raise RenderError("nothing to write: give a crisp output, a class raster, or both")
    for path in outputs:
        check_output(path, painted, overwrite)
    with contextlib.ExitStack() as stack:
        stack.enter_context(rasterio.Env(**GDAL_OPTIONS))
        src = stack.enter_context(open_quietly(painted))
        if src.count < 3 or src.dtypes[0] != "uint8":
            raise RenderError(f"{painted} is not an RGB uint8 map (geo-p2p render's output)")
        writers = []
        if classes is not None:
            profile = class_profile(src.width, src.height, src.crs, src.transform)
            out = stack.enter_context(class_raster_output(Path(classes), palette, profile))
            writers.append(lambda b, out=out: write_class_block(out, b))
        if crisp is not None:
            profile = {**src.profile, "count": 4 if alpha else 3, "photometric": "RGB"}
            profile.pop("nodata", None)
            tmp = stack.enter_context(atomic_output(Path(crisp)))
            out = stack.enter_context(open_quietly(tmp, "w", **profile))
            set_colour_interpretation(out, alpha)
            writers.append(lambda b, out=out: write_block(out, b.crisp(palette), alpha))
        size = (OUTPUT_BLOCK, OUTPUT_BLOCK)
        stream = CrispStream(
            src.height, src.width, size, palette, radius, lambda b: [w(b) for w in writers]
        )
        for row in range(0, src.height, OUTPUT_BLOCK):
            for col in range(0, src.width, OUTPUT_BLOCK):
                window = Window(
                    col,
                    row,
                    min(OUTPUT_BLOCK, src.width - col),
                    min(OUTPUT_BLOCK, src.height - row),
                )
                rgb = src.read([1, 2, 3], window=window)
                mask = src.dataset_mask(window=window)
                stream.add(Block(row, col, rgb, mask))
        stream.finish()


def class_areas(path: str | Path) -> dict[str, float]:
    """Area of each class of a class raster in square CRS units (pixel count x pixel area),
    read block by block."""
    with open_quietly(path) as src:
        names = read_class_names(src)
        counts = np.zeros(256, np.int64)
        for _, window in src.block_windows(1):
            counts += np.bincount(src.read(1, window=window).ravel(), minlength=256)
        pixel = abs(src.transform.a * src.transform.e - src.transform.b * src.transform.d)
    return {
        names.get(v, f"class_{v}"): float(counts[v] * pixel) for v in np.flatnonzero(counts) if v
    }

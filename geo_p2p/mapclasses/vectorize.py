"""Vector layers from a class raster: one polygon layer per class, and road centrelines.

The raster is read in square blocks, a row of blocks at a time, so memory follows the width of
the raster and the features that cross block rows, not its area:

- Polygons: each block is polygonised (GDAL's polygonize through rasterio, 4-connected) in pixel
  coordinates, which are integers, so the pieces of a region cut by block edges share their
  edges exactly. Pieces touching a block edge are unioned with their neighbours once the row is
  done; a region still reaching into the next row waits for it. Each finished polygon is then
  simplified (in ground units, topology kept), its holes below the minimum area filled, dropped
  if itself below it, and written in the raster's CRS.
- Centrelines: the road classes are thinned to a one-pixel skeleton (scikit-image), computed per
  block with a halo around it so that the skeleton in the block is the whole raster's (for roads
  narrower than twice the halo). Skeleton pixels are joined to their neighbours (4-connected, and
  diagonally where no 4-connected path exists), and the graph is cut into lines at junctions,
  ends and block edges; lines meeting at a block edge are merged (``shapely.line_merge``) once
  both blocks are done, so a road that crosses blocks is one line, and lines meet at junctions.

The GeoPackage is written with pyogrio (the ``vectors`` extra) under a temporary name and
renamed at the end. Modules: this one (options, the block loop), :mod:`.polygons`,
:mod:`.centrelines`, :mod:`.vector_layers` (grid and GeoPackage writer).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from ..errors import RenderError
from ..files import check_output, temporary_path
from ..raster import open_quietly
from .centrelines import CENTRELINES, Centrelines
from .classraster import read_class_names
from .polygons import Polygons
from .vector_layers import Grid, Layers

__all__ = [
    "CENTRELINES",
    "DEFAULT_BLOCK",
    "ROAD_CLASSES",
    "VectorOptions",
    "VectorSummary",
    "require_vectors",
    "vectorize",
]

log = logging.getLogger(__name__)

ROAD_CLASSES = ("road", "highway")
"""Classes thinned to centrelines by default (those of them the raster has)."""
DEFAULT_BLOCK = 1024
DEFAULT_HALO = 64
READ_CACHE = 32 * 2**20
"""GDAL block cache while reading the class raster, bytes: a row of blocks and their halo."""


@dataclass(frozen=True)
class VectorOptions:
    """How a class raster is turned into vector layers.

    simplify: tolerance of the simplification, ground metres (0: the pixel staircase).
    min_area: polygons (and holes) smaller than this, square ground metres, are dropped
        (filled).
    lines: the classes thinned to centrelines (none: no line layer).
    block, halo: block side and skeleton halo in pixels.
    """

    simplify: float = 1.0
    min_area: float = 4.0
    lines: tuple[str, ...] = ROAD_CLASSES
    block: int = DEFAULT_BLOCK
    halo: int = DEFAULT_HALO


@dataclass
class VectorSummary:
    """What :func:`vectorize` wrote: features per layer."""

    output: Path
    features: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in self.features.items())
        return f"wrote {counts}: {self.output}"


def require_vectors(param: str | None = None) -> None:
    """Refuse to go on without the vectors extra (pyogrio, scikit-image), saying how to get it."""
    try:
        import pyogrio  # noqa: F401
        import skimage  # noqa: F401
    except ImportError as e:
        raise RenderError(
            f"vectorising needs the vectors extra ({e.name} is missing): "
            "pip install 'geo-p2p[vectors]'",
            param,
        ) from e


def vectorize(
    classes: str | Path,
    dst: str | Path,
    options: VectorOptions = VectorOptions(),
    overwrite: bool = False,
) -> VectorSummary:
    """Write the GeoPackage ``dst`` from the class raster ``classes``: one polygon layer per
    class (fields ``class``, ``value``, ``area_m2``) and, when ``options.lines`` names classes it
    has, a line layer ``road_centrelines`` (``length_m``), in the raster's CRS."""
    src_path, dst = Path(classes), Path(dst)
    require_vectors()
    check_output(dst, src_path, overwrite)
    if options.block < 2 * options.halo or options.halo < 1:
        raise RenderError("the block must be at least twice the halo, and the halo positive")
    if not src_path.exists():
        raise RenderError(f"{src_path} does not exist", "CLASSES")
    # GDAL's block cache would keep the whole raster (its default is 5 % of the memory).
    with rasterio.Env(GDAL_CACHEMAX=READ_CACHE), open_quietly(src_path) as src:
        if src.count != 1 or src.dtypes[0] != "uint8":
            raise RenderError(
                f"{src_path} is not a class raster (one uint8 band): make one with "
                "geo-p2p render --classes",
                "CLASSES",
            )
        grid = Grid.of(src)
        names = read_class_names(src)
        line_values = [v for v, n in names.items() if n in options.lines]
        if options.lines and not line_values:
            log.warning(
                "%s has no class named %s: no centrelines (--lines names the road classes; "
                "its classes: %s)",
                src_path,
                " or ".join(options.lines),
                ", ".join(names.values()) or "none named",
            )
        crs = None if src.crs is None else src.crs.to_wkt()
        with temporary_path(dst.parent, dst.name) as base:
            tmp = base.with_name(base.name + ".gpkg")  # GDAL wants the extension
            try:
                layers = Layers(tmp, crs)
                polygons = Polygons(grid, names, layers, options.simplify, options.min_area)
                lines = (
                    Centrelines(grid, line_values, layers, options.simplify, options.block)
                    if line_values
                    else None
                )
                for row in range(0, src.height, options.block):
                    for col in range(0, src.width, options.block):
                        polygons.add_block(row, col, _read(src, row, col, options.block, 0))
                        if lines is not None:
                            block = _read(src, row, col, options.block, options.halo)
                            lines.add_block(row, col, block)
                    polygons.end_row(row + options.block)
                    if lines is not None:
                        lines.end_row(row + options.block)
                layers.close()
                os.replace(tmp, dst)
            finally:
                tmp.unlink(missing_ok=True)
    return VectorSummary(dst, dict(layers.counts))


def _read(src, row: int, col: int, size: int, halo: int) -> tuple[np.ndarray, int, int]:
    """The block at ``(row, col)`` grown by ``halo`` (cut at the raster's edges), with the
    raster position of its top-left pixel; masked pixels read as 0."""
    top, left = max(row - halo, 0), max(col - halo, 0)
    bottom, right = min(row + size + halo, src.height), min(col + size + halo, src.width)
    window = Window(left, top, right - left, bottom - top)
    values = src.read(1, window=window)
    values[src.read_masks(1, window=window) == 0] = 0
    return values, top, left

"""Making a web tile pyramid: the raster translated once, at the highest zoom, its finished
blocks cut into web tiles, the lower zooms built as the tiles come.

:func:`make_tiles` reads the input straight onto the EPSG:3857 pixel grid of the max zoom's
256 px tiles (:func:`~geo_p2p.webtiles.mercator.tile_source`), the render's stream executor
(:class:`~geo_p2p.run.executors.StreamExecutor`: batches, blending, bounded memory) translates
it, and :class:`TileCutter`, its writer, cuts the finished blocks into web tiles as they come,
so no tile is resampled after translation. The lower zooms are built as the tiles come
(:class:`~geo_p2p.webtiles.pyramid.Pyramid`), every tile the alpha-weighted 2x2 average of its
four children: the model never runs again, no tile is read back and no zoom is held in memory.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely

from ..aoi import AreaOfInterest
from ..errors import RenderError
from ..geotiff import GDAL_OPTIONS
from ..inputs import fetched_since, file_name, format_bytes, network_bytes
from ..mapclasses.crisp import CrispStream
from ..mapclasses.palette import Palette
from ..mapclasses.vegetation import Vegetation
from ..progress import Progress
from ..raster import Source
from ..render.mosaic import Block
from ..render.planner import Job
from ..render.stream import block_shape
from ..render.tiling import strips
from ..render.translator import Translator
from ..run.executors import BlockSink, Sink, StreamExecutor
from .containers import open_store
from .mercator import WEB_TILE, TileRange
from .plan import TilesOptions, identity_translator, plan_tiles
from .pyramid import Pyramid
from .stores import TileSetInfo, TileStore
from .xyz import XYZDirectory

log = logging.getLogger(__name__)

INPUT_LAYER = "input"


class TileCutter:
    """The writer of web tiles: cuts the finished blocks of a max-zoom grid (top-left tile
    ``x0, y0``) into web tiles, handing each tile but those ``skip`` names to ``emit`` once all
    its pixels are in (only partly built tiles are held), with None for a tile with no valid
    pixel. An executor's sink (:class:`~geo_p2p.run.executors.Sink`)."""

    def __init__(
        self,
        x0: int,
        y0: int,
        skip: Callable[[int, int], bool],
        emit: Callable[[int, int, np.ndarray | None], None],
    ) -> None:
        self.x0, self.y0, self.skip, self.emit = x0, y0, skip, emit
        self._open: dict[tuple[int, int], tuple[np.ndarray, int]] = {}

    def write(self, block: Block) -> None:
        _, h, w = block.rgb.shape
        for ty in range(block.row // WEB_TILE, (block.row + h - 1) // WEB_TILE + 1):
            for tx in range(block.col // WEB_TILE, (block.col + w - 1) // WEB_TILE + 1):
                key = (self.x0 + tx, self.y0 + ty)
                if self.skip(*key):
                    continue
                tile, filled = self._open.pop(key, (None, 0))
                if tile is None:
                    tile = np.zeros((4, WEB_TILE, WEB_TILE), np.uint8)
                top, left = ty * WEB_TILE, tx * WEB_TILE
                r0, r1 = max(block.row, top), min(block.row + h, top + WEB_TILE)
                c0, c1 = max(block.col, left), min(block.col + w, left + WEB_TILE)
                part = np.s_[r0 - block.row : r1 - block.row, c0 - block.col : c1 - block.col]
                into = np.s_[r0 - top : r1 - top, c0 - left : c1 - left]
                tile[(slice(0, 3), *into)] = block.rgb[(slice(None), *part)]
                tile[(3, *into)] = block.mask[part]
                filled += (r1 - r0) * (c1 - c0)
                if filled == WEB_TILE * WEB_TILE:
                    self.emit(*key, tile if tile[3].any() else None)
                else:
                    self._open[key] = (tile, filled)

    def part_done(self, index: int) -> None:
        """Nothing to do: tiles are handed on as they are complete."""

    def finish(self) -> None:
        """Hand on the tiles that no block completed (outside an area of interest) as they
        are; tiles no block reached are empty and not handed on."""
        for (x, y), (tile, _) in sorted(self._open.items()):
            self.emit(x, y, tile if tile[3].any() else None)
        self._open.clear()


@dataclass(frozen=True)
class TilesSummary:
    """What :func:`make_tiles` did."""

    written: int
    seconds: float
    output: Path
    zooms: tuple[int, int]
    fetched: int | None = None
    """Bytes fetched over the network for a remote input (None: local, or not counted)."""

    def __str__(self) -> str:
        fetched = "" if self.fetched is None else f" ({format_bytes(self.fetched)} fetched)"
        return (
            f"wrote {self.written} tiles, zooms {self.zooms[0]}-{self.zooms[1]}, in "
            f"{self.seconds:.1f} s{fetched}: {self.output}"
        )


def make_tiles(
    src: str | Path,
    dst: str | Path,
    translator: Translator | None = None,
    options: TilesOptions | None = None,
    *,
    resume: bool = False,
    progress: bool | None = None,
    **keywords: Any,
) -> TilesSummary:
    """Translate the raster ``src`` with ``translator`` into a web tile pyramid at ``dst``
    (what ``geo-p2p tiles`` does); with no translator ``src`` is a map and is only tiled.

    dst: a folder (XYZ ``z/x/y``, ``tilejson.json``, ``index.html``), ``*.mbtiles`` or
        ``*.pmtiles``.
    options (or keywords over them): see :class:`~geo_p2p.webtiles.plan.TilesOptions` and
        :func:`~geo_p2p.webtiles.plan.plan_tiles`; jpeg tiles have no transparency (a warning).
    resume: finish an interrupted run with the same settings.
    progress: one bar over all tiles (None: when the output is a terminal).

    Raises RenderError for unusable input or options; a store is complete only once finished.
    """
    start, counted = time.perf_counter(), network_bytes()
    job = plan_tiles(src, dst, translator, options, **keywords)
    o = job.options
    fmt = o.fmt
    if fmt == "jpeg":
        log.warning("JPEG tiles have no transparency: where there is no data they are black")
    store = open_store(job.dst, fmt, o.overwrite, resume, job.stamp)
    layers: list[tuple[TileStore, Translator]] = [(store, translator or identity_translator())]
    if job.with_input:
        input_layer = XYZDirectory(job.dst / INPUT_LAYER, fmt, resume=True)
        layers.append((input_layer, identity_translator()))
    try:
        pyramids = [Pyramid(layer, fmt, job.ranges) for layer, _ in layers]
        plan = replace(job.plan, done=sum(pyramid.stored for pyramid in pyramids))
        plan.log()
        top = job.ranges[plan.zooms[1]]
        with Progress(plan.total, "geo-p2p tiles", "tile", progress, done=plan.done) as bar:
            for pyramid, (_, layer_translator) in zip(pyramids, layers, strict=True):
                with pyramid:
                    pyramid.start(bar)
                    model = layer_translator is translator
                    crisp = job.crisp if model else None
                    vegetation = job.vegetation if model else None
                    _max_zoom(
                        pyramid, layer_translator, job.source, job.area, top, crisp, vegetation
                    )
                    pyramid.finish()
        if not pyramids[0].written + pyramids[0].stored:
            raise RenderError(f"{src} has no valid pixels where the tiles are", "INPUT")
        info = TileSetInfo(
            job.dst.stem,
            fmt,
            job.bounds,
            *plan.zooms,
            o.attribution,
            f"{file_name(job.src)}, geo-p2p",
        )
        if isinstance(store, XYZDirectory):
            store.write_viewer(info, INPUT_LAYER if job.with_input else None)
        store.finish(info)
    except BaseException:
        for layer, _ in layers:
            layer.close()
        raise
    written = sum(pyramid.written for pyramid in pyramids)
    fetched = fetched_since(counted, job.source.path)
    summary = TilesSummary(written, time.perf_counter() - start, job.dst, plan.zooms, fetched)
    log.info("%s", summary)
    return summary


def _max_zoom(
    pyramid: Pyramid,
    translator: Translator,
    source: Source,
    area: AreaOfInterest | None,
    tiles: TileRange,
    crisp: tuple[Palette, int] | None = None,
    vegetation: Vegetation | None = None,
) -> None:
    """Translate the tiles of the highest zoom that are not settled into ``pyramid``; in the
    crisp style with ``crisp`` (the palette and the majority window's radius), with
    ``vegetation`` painted."""
    region = None
    if pyramid.stored:  # a resume: only the model tiles under the tiles still to make
        region = _unsettled(pyramid, tiles)
        if region.is_empty:
            return
        if crisp is not None:
            region = None  # all of it: the majority filter needs the settled tiles' pixels
    try:
        grid = translator.layout.grid(source.height, source.width, area and area.pixels)
        if region is not None:
            grid = grid.select(region)
    except (RenderError, ValueError):  # no model tile meets them: nothing to translate
        return
    job = Job(source, area, grid, strips(grid, translator.strip_width), vegetation=vegetation)
    executor = StreamExecutor(translator.engine, translator.strip_width)
    skip = functools.partial(pyramid.settled, tiles.zoom)
    cutter = TileCutter(tiles.x0, tiles.y0, skip, functools.partial(pyramid.add, tiles.zoom))
    sink: Sink = cutter
    stream = None
    if crisp is not None:
        palette, radius = crisp
        h, w, block = source.height, source.width, block_shape(job.parts)
        paint = lambda painted: cutter.write(painted.crisp(palette))  # noqa: E731
        stream = CrispStream(h, w, block, palette, radius, paint)
        sink = BlockSink(stream.add)
    with rasterio.Env(**GDAL_OPTIONS, **executor.gdal_settings(job)):
        executor.run(job, range(len(job.parts)), sink, None)
    if stream is not None:
        stream.finish()
    cutter.finish()


def _unsettled(pyramid: Pyramid, tiles: TileRange) -> shapely.Geometry:
    """The pixels (of the max zoom's grid) of the tiles that are not settled, one box per run
    of such tiles along a row."""
    boxes = []
    for y in range(tiles.y0, tiles.y1 + 1):
        first = None
        for x in range(tiles.x0, tiles.x1 + 2):
            todo = x <= tiles.x1 and not pyramid.settled(tiles.zoom, x, y)
            if todo and first is None:
                first = x
            elif not todo and first is not None:
                top = (y - tiles.y0) * WEB_TILE
                left, right = ((c - tiles.x0) * WEB_TILE for c in (first, x))
                boxes.append(shapely.box(left, top, right, top + WEB_TILE))
                first = None
    return shapely.union_all(boxes)

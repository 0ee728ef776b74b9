"""Executors: what renders a job's parts (strips or regions) and hands the finished pixels, in
output order, to a writer. They are separate from what they run (the tile stream) and from where
the pixels go (a GeoTIFF, web tiles), as mapchete separates its executors from processing and
output.

- :class:`StreamExecutor`: all parts through one tile stream in this process (the plain render,
  and the max zoom of web tiles): the fast path, with no region borders.
- :class:`LocalRegions`: region after region in this process (resumable renders).
- :class:`geo_p2p.distributed.DaskRegions`: regions as tasks on a Dask cluster.

A region is rendered from the tiles that weigh on it (:func:`render_region`) into an array equal
bit for bit to the same window of a stream render (on a CPU without ``torch.compile``), so
regions can be rendered anywhere, in any order, and written as they come.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import rasterio

from ..aoi import AreaOfInterest
from ..geotiff import gdal_cache_bytes
from ..mapclasses.vegetation import Vegetation
from ..progress import Progress
from ..raster import Source
from ..render.engine import InferenceEngine
from ..render.mosaic import Block
from ..render.planner import Job
from ..render.stream import raster_tiles, translate_parts
from ..render.tiling import STRIP_WIDTH, Strip, TileGrid


class Sink(Protocol):
    """Where an executor's finished pixels go: a writer."""

    def write(self, block: Block) -> None:
        """A finished block, in output order (from one thread at a time)."""

    def part_done(self, index: int) -> None:
        """All blocks of part ``index`` are written."""


class BlockSink:
    """A sink that hands each finished block to ``write`` (parts need no record)."""

    def __init__(self, write: Callable[[Block], None]) -> None:
        self.write = write

    def part_done(self, index: int) -> None:
        """Nothing to record."""


class Executor(Protocol):
    """Renders parts of a job into a sink."""

    def gdal_settings(self, job: Job) -> dict[str, object]:
        """GDAL configuration for the whole job, reading and writing (e.g. its block cache)."""

    def run(
        self, job: Job, todo: Sequence[int], sink: Sink, bar: Progress | None
    ) -> tuple[int, int]:
        """Render the parts ``todo`` (indexes into ``job.parts``, in order) into ``sink``,
        counting their tiles on ``bar`` (if any); returns the tiles translated and worked
        through."""

    def fetched_elsewhere(self) -> int | None:
        """Bytes that other processes (a cluster's workers) fetched for the last :meth:`run`;
        0 where the parts are read in this process, None where they were not counted."""


class StreamExecutor:
    """All parts through one tile stream of ``engine`` in this process, in strips of
    ``strip_width`` columns (the GDAL block cache sized for one strip)."""

    def __init__(self, engine: InferenceEngine, strip_width: int = STRIP_WIDTH) -> None:
        self.engine, self.strip_width = engine, strip_width

    def fetched_elsewhere(self) -> int | None:
        return 0

    def gdal_settings(self, job: Job) -> dict[str, object]:
        return {"GDAL_CACHEMAX": gdal_cache_bytes(job.source, job.grid.tile, self.strip_width)}

    def run(
        self, job: Job, todo: Sequence[int], sink: Sink, bar: Progress | None
    ) -> tuple[int, int]:
        parts = [job.parts[i] for i in todo]
        read = functools.partial(raster_tiles, job.source, job.grid, job.area)
        counts = translate_parts(
            self.engine, job.grid, parts, read, sink.write, bar, vegetation=job.vegetation
        )
        for index in todo:
            sink.part_done(index)
        return counts


@dataclass
class RegionResult:
    """A rendered region: ``rgb`` (3, h, w) uint8 and ``mask`` (h, w) uint8 (255 valid, 0
    no-data) at rows ``top`` and columns ``left`` of the output; tiles translated, and all."""

    top: int
    left: int
    rgb: np.ndarray
    mask: np.ndarray
    translated: int
    tiles: int

    @property
    def block(self) -> Block:
        return Block(self.top, self.left, self.rgb, self.mask)


def region_grid(grid: TileGrid, region: Strip) -> TileGrid:
    """``grid`` holding only the region's tiles: what a region's task carries (not the whole
    raster's grid, which has hundreds of thousands of tiles on large rasters)."""
    return TileGrid(grid.height, grid.width, grid.tile, grid.overlap, grid.margin, region.tiles)


def render_region(
    engine: InferenceEngine,
    source: Source,
    area: AreaOfInterest | None,
    grid: TileGrid,
    region: Strip,
    vegetation: Vegetation | None = None,
) -> RegionResult:
    """Render one region of ``source`` (a :func:`~geo_p2p.render.tiling.regions` part of
    ``grid``, which may hold the region's tiles only), with ``vegetation`` painted as
    :func:`~geo_p2p.render.stream.translate_parts` does."""
    bottom = source.height if region.bottom is None else region.bottom
    height, width = bottom - region.top, region.stop - region.start
    rgb = np.zeros((3, height, width), np.uint8)
    mask = np.zeros((height, width), np.uint8)

    def write(block: Block) -> None:
        _, h, w = block.rgb.shape
        rows = slice(block.row - region.top, block.row - region.top + h)
        cols = slice(block.col - region.start, block.col - region.start + w)
        rgb[:, rows, cols] = block.rgb
        mask[rows, cols] = block.mask

    with rasterio.Env(GDAL_CACHEMAX=gdal_cache_bytes(source, grid.tile, width)):
        read = functools.partial(raster_tiles, source, grid, area)
        translated, total = translate_parts(
            engine, grid, [region], read, write, vegetation=vegetation
        )
    return RegionResult(region.top, region.start, rgb, mask, translated, total)


class RegionExecutor(ABC):
    """Parts rendered region by region, each written and recorded as it comes."""

    def gdal_settings(self, job: Job) -> dict[str, object]:
        return {}  # each region sizes the block cache for itself

    def fetched_elsewhere(self) -> int | None:
        return 0

    @abstractmethod
    def regions(self, job: Job, parts: list[Strip]) -> Iterator[RegionResult]:
        """Render ``parts`` of ``job``, yielding their results in the same order."""

    def run(
        self, job: Job, todo: Sequence[int], sink: Sink, bar: Progress | None
    ) -> tuple[int, int]:
        translated = total = 0
        results = contextlib.closing(self.regions(job, [job.parts[i] for i in todo]))
        with results as rendered:
            for index, result in zip(todo, rendered, strict=True):
                sink.write(result.block)
                sink.part_done(index)
                translated += result.translated
                total += result.tiles
                if bar is not None:
                    bar.update(result.tiles)
        return translated, total


class LocalRegions(RegionExecutor):
    """Regions rendered one after the other in this process with ``engine``."""

    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine

    def regions(self, job: Job, parts: list[Strip]) -> Iterator[RegionResult]:
        for region in parts:
            grid = region_grid(job.grid, region)
            yield render_region(self.engine, job.source, job.area, grid, region, job.vegetation)

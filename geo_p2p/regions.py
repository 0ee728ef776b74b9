"""Rendering by regions: the unit of work of resumable and distributed renders.

The output is cut into square regions aligned with its 512 px internal tiles
(:func:`~geo_p2p.tiling.regions`). A region is rendered from the tiles that weigh on it, with
the same :class:`~geo_p2p.render.Translator` pipeline, into a uint8 array and mask equal bit for
bit to the same window of a single-process render (on a CPU without ``torch.compile``), so regions
can be rendered anywhere, in any order, and written as they come. :func:`render_regions` drives a
render: it hands the regions still to do to a ``compute`` function (in this process:
:func:`local_compute`; on a Dask cluster: :func:`geo_p2p.distributed.dask_compute`) and writes the
results in output order, into a journaled partial file when resuming (:mod:`geo_p2p.journal`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from .aoi import AreaOfInterest
from .geotiff import GDAL_OPTIONS, OUTPUT_BLOCK, gdal_cache_bytes
from .inputs import fetched_since, network_bytes
from .journal import RegionOutput, fingerprint
from .mosaic import Block
from .plan import DEFAULT_MAX_TILES
from .progress import Progress
from .raster import RenderError, Resolution, Source
from .render import RenderSummary, Translator, _raster_tiles
from .tiling import Strip, TileGrid

log = logging.getLogger(__name__)

REGION_SIZE = 4096
"""Side of a region in pixels: 8 x 8 output tiles. With 256 px model tiles overlapping by 32 px,
the tiles around a region that are translated for both neighbours add about 11 % to the work."""


@dataclass(frozen=True)
class ModelSpec:
    """A model directory and the options :meth:`Translator.load` takes: how to build the same
    translator anywhere (small and picklable, what a Dask task carries instead of the model)."""

    path: str | None = None
    """Model directory; None: the bundled model (each machine's own installation)."""
    overlap: int | None = None
    margin: int | None = None
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"
    torch_compile: bool = False
    backend: str = "torch"
    """torch by default: "auto" could choose differently from worker to worker, or between a
    render and its resumption, and the backends differ in the last bits."""

    def load(self, **override: object) -> Translator:
        """The translator, with some options overridden (e.g. ``device="cpu"``)."""
        options = {k: v for k, v in dataclasses.asdict(self).items() if k != "path"}
        return Translator.load(self.path, **{**options, **override})  # type: ignore[arg-type]


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


Compute = Callable[[Source, AreaOfInterest | None, list[Strip]], Iterator[RegionResult]]
"""Renders the given regions of a source and yields their results in the same order."""


def render_region(
    translator: Translator, source: Source, area: AreaOfInterest | None, region: Strip
) -> RegionResult:
    """Render one region of ``source`` (a :func:`~geo_p2p.tiling.regions` part of the
    translator's grid over it, with the same area of interest)."""
    grid = _region_grid(translator, source, region)
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

    cache = gdal_cache_bytes(source, translator.tile, width)
    with rasterio.Env(GDAL_CACHEMAX=cache, **GDAL_OPTIONS):
        translated, total = translator._run(
            grid, functools.partial(_raster_tiles, source, grid, area), write, False, [region]
        )
    return RegionResult(region.top, region.start, rgb, mask, translated, total)


def _region_grid(translator: Translator, source: Source, region: Strip) -> TileGrid:
    """The translator's grid over ``source`` holding only the region's tiles (not building the
    whole raster's, which has hundreds of thousands of tiles on large rasters)."""
    return TileGrid(
        source.height,
        source.width,
        translator.tile,
        translator.overlap,
        translator.margin,
        region.tiles,
    )


def local_compute(translator: Translator) -> Compute:
    """Regions rendered one after the other in this process."""

    def compute(
        source: Source, area: AreaOfInterest | None, parts: list[Strip]
    ) -> Iterator[RegionResult]:
        for region in parts:
            yield render_region(translator, source, area, region)

    return compute


def render_regions(
    model: ModelSpec,
    src: str | Path,
    dst: str | Path,
    *,
    compute: Compute | None = None,
    resume: bool = False,
    region_size: int = REGION_SIZE,
    bands: tuple[int, ...] | None = None,
    scale: tuple[float, float] | None = None,
    resolution: Resolution = "auto",
    aoi: str | None = None,
    allow_ungeoreferenced: bool = False,
    alpha: bool = False,
    cog: bool = False,
    creation_options: Mapping[str, str] | None = None,
    overwrite: bool = False,
    quicklook: str | Path | None = None,
    progress: bool | None = None,
    force: bool = False,
    max_tiles: int = DEFAULT_MAX_TILES,
) -> RenderSummary:
    """Render ``src`` into ``dst`` region by region: :meth:`Translator.render`'s output.

    ``compute`` renders the regions (default: in this process, with ``model`` loaded here).
    ``resume``: keep the partial output and a journal next to ``dst`` while rendering, and if
    they are there from an interrupted render of the same input, model and options, continue it.
    ``region_size`` is a multiple of 512. The other arguments are :meth:`Translator.render`'s.
    """
    if region_size < OUTPUT_BLOCK or region_size % OUTPUT_BLOCK:
        raise RenderError(
            f"the region size must be a multiple of {OUTPUT_BLOCK}, got {region_size}",
            "--region-size",
        )
    dst = Path(dst)
    quicklook = None if quicklook is None else Path(quicklook)
    # The grid needs the model's tile and ground resolution only: loaded on the CPU here when
    # the regions are rendered elsewhere.
    local = compute is None
    counted = network_bytes() if local else None  # workers elsewhere fetch uncounted
    translator = model.load() if local else model.load(device="cpu", precision="fp32")
    compute = local_compute(translator) if compute is None else compute
    job = translator.job(
        src,
        dst,
        bands=bands,
        scale=scale,
        resolution=resolution,
        aoi=aoi,
        allow_ungeoreferenced=allow_ungeoreferenced,
        overwrite=overwrite,
        quicklook=quicklook,
        force=force,
        max_tiles=max_tiles,
        region_size=region_size,
        estimate=None if local else False,  # the rate here says nothing of the cluster's
    )
    log.info("%s", job.plan.line())
    source, area, parts = job.source, job.area, job.parts
    options = {
        "bands": bands,
        "scale": scale,
        "resolution": resolution,
        "aoi": None if area is None else area.pixels.wkt,
        "alpha": alpha,
        "cog": cog,
        "creation_options": dict(creation_options or {}),
        "region_size": region_size,
    }
    stamp = fingerprint(src, model, options) if resume else None
    start = time.perf_counter()
    translated = total = 0
    with (
        rasterio.Env(**GDAL_OPTIONS),
        RegionOutput(dst, source, alpha, cog, creation_options, len(parts), stamp) as out,
    ):
        todo = [i for i in range(len(parts)) if i not in out.done]
        if len(todo) < len(parts):
            log.info(
                "resuming: %d of %d regions already rendered", len(parts) - len(todo), len(parts)
            )
        bar = Progress(sum(len(parts[i].tiles) for i in todo), "geo-p2p render", "tile", progress)
        with bar:
            results = contextlib.closing(compute(source, area, [parts[i] for i in todo]))
            with results as rendered:
                for index, result in zip(todo, rendered, strict=True):
                    out.write(index, result)
                    translated += result.translated
                    total += result.tiles
                    bar.update(result.tiles)
        out.finish(quicklook)
    seconds, fetched = time.perf_counter() - start, fetched_since(counted, source.path)
    summary = RenderSummary(translated, total - translated, seconds, dst, fetched)
    log.info("%s", summary)
    return summary

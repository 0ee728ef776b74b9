"""The render pipeline: raster windows -> batches -> generator -> blended blocks -> GeoTIFF.

Threads overlap the work: one reads and decodes the next windows into batches, the generator runs
in its own thread(s) (two batches at once on a multi-core CPU, see :meth:`Translator.infer_stream`),
one blends the outputs and writes finished blocks. Nothing holds the whole raster. Example::

    from geo_p2p import Translator

    translator = Translator.load("runs/maps")          # or Translator.load() for the bundled model
    translator.render("area.tif", "map.tif", cog=True)
    small_map = translator.translate(rgb_array)         # (H, W, 3) uint8 -> (H, W, 3) uint8
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import rasterio
import shapely
import torch

from .aoi import AreaOfInterest
from .backends import (
    BACKENDS,
    Backend,
    BackendName,
    OnnxRuntimeBackend,
    TorchBackend,
    fastest,
    installed,
    onnxruntime_applies,
)
from .card import load_model
from .device import cuda_autocast_dtype, resolve_device
from .fusion import fuse_batchnorm
from .geotiff import (
    GDAL_OPTIONS,
    atomic_output,
    check_output,
    convert_to_cog,
    gdal_cache_bytes,
    output_profile,
    set_colour_interpretation,
    temporary_path,
    write_block,
    write_quicklook,
)
from .inputs import fetched_since, format_bytes, network_bytes, redact
from .inputs.prefetch import read_ahead
from .mosaic import DEFAULT_BLOCK as MOSAIC_BLOCK
from .mosaic import Block, BlockMosaic, u8_to_signed
from .nets import InferenceStats, set_inference_stats
from .pipeline import OrderedWorker, prefetch
from .plan import DEFAULT_MAX_TILES, RenderPlan, check_job
from .progress import Progress
from .raster import (
    NODATA_FILL,
    RasterReader,
    RenderError,
    Resolution,
    Source,
    crs_name,
    inspect_source,
    open_quietly,
)
from .tiling import Strip, Tile, TileGrid, default_margin, default_overlap, regions, strips

__all__ = ["Job", "RenderError", "RenderPlan", "RenderSummary", "Translator"]

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
STRIP_WIDTH = 4096
"""Columns rendered at a time; memory is bounded by this width rather than the raster's."""
ESTIMATE_FROM_TILES = 200
"""Renders of more tiles than this measure the model's rate first, for the plan's estimate
(under a second for the bundled model on a CPU, a few for an ngf-64 generator)."""
TileData = tuple[Tile, np.ndarray, np.ndarray]
"""A tile, its model input (3, T, T) uint8 with no-data filled, and its validity (T, T) bool."""
_Item = TypeVar("_Item")


@dataclass
class _Batch:
    tiles: list[tuple[int, Tile, np.ndarray | None]]
    """Strip index, tile and validity, in order; validity None for all-no-data tiles."""
    inputs: torch.Tensor | None
    """(N, 3, T, T) float32 in [-1, 1] for the tiles not skipped, or None."""


@dataclass(frozen=True)
class Job:
    """A render worked out: its plan, source, area of interest, grid, and the grid's parts
    (strips or regions) in the order they are rendered."""

    plan: RenderPlan
    source: Source
    area: AreaOfInterest | None
    grid: TileGrid
    parts: list[Strip]


@dataclass(frozen=True)
class RenderSummary:
    """What a render did."""

    tiles: int
    skipped: int
    seconds: float
    output: Path
    fetched: int | None = None
    """Bytes fetched over the network for a remote input (None: local, or not counted)."""

    def __str__(self) -> str:
        rate = self.tiles / self.seconds if self.seconds > 0 else float("inf")
        fetched = "" if self.fetched is None else f", {format_bytes(self.fetched)} fetched"
        return (
            f"rendered {self.tiles} tiles in {self.seconds:.1f} s ({rate:.1f} tiles/s, "
            f"{self.skipped} all-no-data tiles skipped{fetched}): {self.output}"
        )


class Translator:
    """Translates images of any size with a tile generator, blending overlapping tiles.

    ``module`` maps (N, 3, tile, tile) float tensors in [-1, 1] to the same (a pix2pix generator,
    or ``torch.nn.Identity()`` to check the tiling). ``overlap`` and ``margin`` default to
    :func:`~geo_p2p.tiling.default_overlap` and :func:`~geo_p2p.tiling.default_margin` (the
    margin at most half the overlap).
    ``precision``: "auto" is mixed precision (bf16, or fp16 without bf16 support) on CUDA and fp32
    elsewhere; "bf16" on CPU is 1.6-1.7x as fast where the processor has AVX-512 BF16 or AMX.
    ``channels_last`` runs the module in NHWC memory layout; by default (None) for modules without
    per-tile normalisation, where it is 15-26 % faster on CPU (ngf-64 U-Net with running
    BatchNorm statistics; slower with per-tile statistics, as the bundled model has).
    ``gsd`` is the ground resolution (m/px) the module expects, if known.
    ``torch_compile`` compiles the module with ``torch.compile`` before the first batch (10-25 s
    on a 2-core CPU, about 2 s when torch's cache has it; needs a C++ compiler there): about 1.2x
    faster renders of the bundled model there, outputs within a few digital numbers of the
    uncompiled ones (benchmarks/README.md).
    ``backend``: "torch" runs the module; "onnxruntime" runs an ONNX export of it (made here,
    in about a second; CPU and fp32 only, needs the onnx extra); "auto" times both on one batch
    before the first render (:meth:`prepare`) and keeps the faster, torch where onnxruntime is
    missing or does not apply. The two give outputs within 1e-5 of each other (at most 1
    digital number apart after rounding to uint8).
    On a CPU, call :func:`geo_p2p.allocator.keep_freed_memory` once, as the command line does.

    The raster is worked through in vertical strips of ``strip_width`` columns (a multiple of
    512 writes whole output tiles), so memory does not grow with the raster's width either; tiles
    across a strip boundary are translated for both strips (4-5 % more tiles on rasters much wider
    than a strip, with the default overlap).
    The module is put in eval mode and moved to ``device`` (and memory format).

    On the CPU without ``torch_compile``, the output does not depend on ``batch_size`` or on which
    tiles share a batch: batches run whole only where that is bit-identical to tile-by-tile calls
    (see :meth:`infer`; oneDNN picks other kernels by batch size for narrow layers), and blending
    adds tiles in grid order. GPU and compiled kernels are chosen per batch shape, so there the
    output may change by rounding with ``batch_size``.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        tile: int = 256,
        overlap: int | None = None,
        margin: int | None = None,
        batch_size: int = 8,
        device: str = "auto",
        precision: Precision = "auto",
        gsd: float | None = None,
        strip_width: int = STRIP_WIDTH,
        channels_last: bool | None = None,
        torch_compile: bool = False,
        backend: BackendName = "torch",
    ) -> None:
        if strip_width < 1:
            raise ValueError(f"the strip width must be positive, got {strip_width}")
        if batch_size < 1:
            raise RenderError(
                f"the batch size must be at least 1, got {batch_size}", "--batch-size"
            )
        self.tile = tile
        self.overlap = default_overlap(tile) if overlap is None else overlap
        self.margin = min(default_margin(tile), self.overlap // 2) if margin is None else margin
        self.grid(tile, tile)  # validates tile, overlap and margin
        self.batch_size = batch_size
        try:
            self.device = resolve_device(device)
        except ValueError as e:
            raise RenderError(str(e), "--device") from e
        self.autocast_dtype = _autocast_dtype(self.device, precision)
        if backend not in BACKENDS:
            raise RenderError(
                f"unknown backend {backend!r}: use auto, torch or onnxruntime", "--backend"
            )
        unusable = onnxruntime_applies(self.device, self.autocast_dtype, torch_compile)
        if backend == "onnxruntime" and unusable:
            raise RenderError(f"the onnxruntime backend cannot run this: {unusable}", "--backend")
        self.gsd = gsd
        self.strip_width = strip_width
        if channels_last is None:
            channels_last = not _normalises_per_tile(module)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = module.eval().to(self.device, memory_format=self.memory_format)
        self.compiled = torch_compile
        if torch_compile:
            self.module = torch.compile(self.module, dynamic=False)  # compiled on the first batch
        self._torch = TorchBackend(
            self.module, self.device, self.autocast_dtype, self.memory_format
        )
        self.backend: Backend | None = self._torch  # None: chosen by the first _batch_is_exact
        if backend == "onnxruntime":
            self.backend = OnnxRuntimeBackend.from_module(self.module, tile)
        elif backend == "auto" and not unusable and installed("onnxruntime") and installed("onnx"):
            self.backend = None
        self._exact: dict[int, bool] = {}  # by torch threads: whole batches == tile by tile?

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        fuse: bool = True,
        inference_stats: InferenceStats | None = None,
        backend: BackendName = "torch",
        **options: object,
    ) -> Translator:
        """A translator for the model directory ``path`` (None: the bundled default model).

        ``inference_stats`` overrides the BatchNorm statistics the card chooses. ``fuse`` folds
        BatchNorm into the convolutions when they are the running statistics (same output to
        float rounding, faster). ``backend`` is the constructor's: torch by default, so that
        two translators loaded alike give the same bits ("auto", the command line's default,
        picks the faster of torch and onnxruntime by timing them). ``options`` are the
        constructor's (overlap, margin, batch_size, device, precision, strip_width,
        channels_last, torch_compile).
        """
        try:
            module, card = load_model(path)
        except FileNotFoundError as e:
            if path is None:
                raise RenderError(
                    "no bundled default model in this installation yet: pass --model DIR "
                    "(a model directory written by 'geo-p2p train')",
                    "--model",
                ) from e
            raise RenderError(str(e), "--model") from e
        except ValueError as e:
            raise RenderError(str(e), "--model") from e
        if inference_stats is not None:
            set_inference_stats(module, inference_stats)
        if fuse and (inference_stats or card.inference_stats) == "running":
            log.debug("folded %d BatchNorm layers into convolutions", fuse_batchnorm(module))
        return cls(module, tile=card.tile, gsd=card.gsd, backend=backend, **options)  # type: ignore[arg-type]

    def grid(self, height: int, width: int, area: shapely.Geometry | None = None) -> TileGrid:
        """The tile grid this translator uses over a ``height x width`` image; only the tiles
        meeting ``area`` (pixel coordinates), if given."""
        try:
            if area is not None:
                return TileGrid.over(height, width, self.tile, self.overlap, self.margin, area)
            return TileGrid(height, width, self.tile, self.overlap, self.margin)
        except ValueError as e:
            if "area of interest" in str(e):
                raise RenderError(str(e), "--aoi") from e
            raise RenderError(str(e), "--margin" if "margin" in str(e) else "--overlap") from e

    def translate(self, image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Translate an in-memory (H, W, 3) uint8 image of any size; returns (H, W, 3) uint8.

        ``valid`` (H, W) bool marks the pixels to translate (default: all); others come out 0.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        valid = np.ones((height, width), bool) if valid is None else np.asarray(valid, bool)
        grid = self.grid(height, width)
        out = np.zeros_like(image)
        planar = image.transpose(2, 0, 1)

        def read_tiles(tiles: Iterable[Tile]) -> Generator[TileData, None, None]:
            for tile in tiles:
                h, w = grid.clip(tile)
                rows, cols = slice(tile.row, tile.row + h), slice(tile.col, tile.col + w)
                data, ok = planar[:, rows, cols], valid[rows, cols]
                yield tile, *_model_input(data, ok, ok, self.tile)

        def write(block: Block) -> None:
            _, h, w = block.rgb.shape
            out[block.row : block.row + h, block.col : block.col + w] = block.rgb.transpose(1, 2, 0)

        self._run(grid, read_tiles, write, progress=False)
        return out

    def render(
        self,
        src: str | Path,
        dst: str | Path,
        *,
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
        """Translate the raster ``src`` into the GeoTIFF ``dst``: what ``geo-p2p render`` does.

        bands: 1-based band numbers (3, or 1 to replicate); default the red, green and blue
            bands by colour interpretation, else the first three.
        scale: input values mapped to 0 and 255; default for non-uint8 input a 2-98 % stretch.
        resolution: "auto" (the model's ground resolution), "native", or metres per pixel.
        aoi: GeoJSON file or WKT polygon; tiles outside are skipped, pixels outside masked.
        allow_ungeoreferenced: translate a raster without CRS/transform, written without either.
        alpha: no-data as an alpha band instead of an internal mask.
        cog: write a Cloud-Optimized GeoTIFF with overviews.
        creation_options: GDAL creation options (like ``rio --co``), overriding the defaults.
        overwrite: replace an existing ``dst`` (and ``quicklook``).
        quicklook: also write a small PNG of the input beside the output there.
        progress: show a progress bar (None: when stderr is a terminal, else log lines).
        force, max_tiles: see :meth:`plan`, whose one-line summary is logged before the work.

        Raises RenderError for unusable input or options; ``dst`` is only ever complete.
        """
        dst = Path(dst)
        quicklook = None if quicklook is None else Path(quicklook)
        counted = network_bytes()
        job = self.job(
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
        )
        log.info("%s", job.plan.line())
        if self.backend is None and job.plan.tiles <= ESTIMATE_FROM_TILES:
            self.backend = self._torch  # "auto": timing both would cost more than it saves
        source, grid = job.source, job.grid
        self.prepare()  # outside the timed render
        start = time.perf_counter()
        cache = gdal_cache_bytes(source, self.tile, self.strip_width)
        with rasterio.Env(GDAL_CACHEMAX=cache, **GDAL_OPTIONS), atomic_output(dst) as tmp:
            with contextlib.ExitStack() as stack:
                target = stack.enter_context(temporary_path(dst.parent, dst.name)) if cog else tmp
                profile = output_profile(source, alpha, None if cog else creation_options)
                with open_quietly(target, "w", **profile) as out:
                    set_colour_interpretation(out, alpha)
                    translated, total = self._run(
                        grid,
                        functools.partial(_raster_tiles, source, grid, job.area),
                        lambda block: write_block(out, block, alpha),
                        progress,
                        job.parts,
                    )
                if cog:
                    convert_to_cog(target, tmp, creation_options)
            if quicklook is not None:
                write_quicklook(source, tmp, quicklook)
        seconds = time.perf_counter() - start
        fetched = fetched_since(counted, source.path)
        summary = RenderSummary(translated, total - translated, seconds, dst, fetched)
        log.info("%s", summary)
        return summary

    def plan(
        self,
        src: str | Path,
        *,
        bands: tuple[int, ...] | None = None,
        scale: tuple[float, float] | None = None,
        resolution: Resolution = "auto",
        aoi: str | None = None,
        allow_ungeoreferenced: bool = False,
        force: bool = False,
        max_tiles: int = DEFAULT_MAX_TILES,
    ) -> RenderPlan:
        """What :meth:`render` would do with these options, with its time estimated from a
        rate measured here (a few batches of random tiles); writes nothing.

        force: accept an output with more than 4 times the input's pixels per axis from
            ``resolution="auto"`` (refused otherwise: mostly invented detail).
        max_tiles: refuse renders of more model tiles than this.
        Raises RenderError for unusable input, options, or a refused job.
        """
        options = {"bands": bands, "scale": scale, "resolution": resolution, "aoi": aoi}
        return self.job(
            src,
            allow_ungeoreferenced=allow_ungeoreferenced,
            force=force,
            max_tiles=max_tiles,
            estimate=True,
            **options,  # type: ignore[arg-type]
        ).plan

    def job(
        self,
        src: str | Path,
        dst: Path | None = None,
        *,
        bands: tuple[int, ...] | None = None,
        scale: tuple[float, float] | None = None,
        resolution: Resolution = "auto",
        aoi: str | None = None,
        allow_ungeoreferenced: bool = False,
        overwrite: bool = False,
        quicklook: Path | None = None,
        force: bool = False,
        max_tiles: int = DEFAULT_MAX_TILES,
        region_size: int | None = None,
        estimate: bool | None = None,
    ) -> Job:
        """Check the outputs (``dst`` and ``quicklook``, where given), inspect the input, refuse
        absurd jobs (:func:`~geo_p2p.plan.check_job`), lay out the tile grid in strips (or in
        regions of ``region_size`` pixels, see :func:`~geo_p2p.tiling.regions`) and plan it.
        The other arguments are :meth:`render`'s and :meth:`plan`'s; ``estimate``: measure
        the model's rate for the plan (None: for jobs of over :data:`ESTIMATE_FROM_TILES`)."""
        if dst is not None:
            check_output(dst, src, overwrite)
            if quicklook is not None:
                if quicklook.resolve() == dst.resolve():
                    raise RenderError(
                        "the quicklook PNG cannot be the output GeoTIFF", "--quicklook"
                    )
                check_output(quicklook, src, overwrite, "--quicklook")
        source = inspect_source(src, bands, scale, resolution, self.gsd, allow_ungeoreferenced)
        area = AreaOfInterest(aoi, source) if aoi else None
        pixels = None if area is None else area.pixels
        check_job(source, resolution, self.tile, self.overlap, force, max_tiles, pixels)
        grid = self.grid(source.height, source.width, pixels)
        if region_size is None:
            parts = strips(grid, self.strip_width)
        else:
            parts = regions(grid, region_size)
        tiles = sum(len(part.tiles) for part in parts)
        if estimate is None:
            estimate = tiles > ESTIMATE_FROM_TILES
        resampled = source.resampling and f"resampled ({source.resampling.name})"
        plan = RenderPlan(
            input=redact(str(src)),
            input_size=source.input_shape[::-1],
            input_gsd=source.input_gsd,
            output_size=(source.width, source.height),
            gsd=source.gsd,
            crs=None if source.crs is None else crs_name(source.crs),
            warp=source.warp or resampled or None,
            tiles=tiles,
            tile=self.tile,
            overlap=self.overlap,
            device=str(self.device),
            rate=self.measure_rate() if estimate else None,
        )
        return Job(plan, source, area, grid, parts)

    def measure_rate(self, rounds: int = 2) -> float:
        """Tiles per second the module sustains here as a render runs it (all model workers,
        this batch size and precision), timed over ``rounds`` batches per worker of random
        tiles after one warm-up batch per worker."""
        with _restored_torch_threads() as threads:
            workers = self._worker_count(threads)
        g = torch.Generator().manual_seed(0)
        x = torch.rand(self.batch_size, 3, self.tile, self.tile, generator=g) * 2 - 1
        x = x.contiguous(memory_format=self.memory_format)
        start = 0.0
        for i, (_, y) in enumerate(self.infer_stream(range((rounds + 1) * workers), lambda _: x)):
            y.float().cpu()  # type: ignore[union-attr]  # waits for a GPU
            if i == workers - 1:
                start = time.perf_counter()
        return rounds * workers * self.batch_size / (time.perf_counter() - start)

    def render_blocks(
        self,
        source: Source,
        write: Callable[[Block], None],
        area: AreaOfInterest | None = None,
        region: shapely.Geometry | None = None,
        progress: bool | None = None,
    ) -> tuple[int, int]:
        """Translate the grid of ``source`` as :meth:`render` does, handing each finished
        block to ``write`` (called in one background thread, blocks in order) instead of
        writing a GeoTIFF; :mod:`geo_p2p.webtiles` cuts them into web tiles.

        Only the model tiles meeting ``area`` and ``region`` (pixel coordinates) are
        translated; blocks that none of them reaches are not handed on. Returns the numbers of
        tiles translated and worked through.
        """
        try:
            grid = self.grid(source.height, source.width, None if area is None else area.pixels)
            if region is not None:
                grid = grid.select(region)
        except (RenderError, ValueError):  # no model tile meets them: nothing to translate
            return 0, 0
        cache = gdal_cache_bytes(source, self.tile, self.strip_width)
        with rasterio.Env(GDAL_CACHEMAX=cache, **GDAL_OPTIONS):
            read = functools.partial(_raster_tiles, source, grid, area)
            return self._run(grid, read, write, progress)

    def _run(
        self,
        grid: TileGrid,
        read_tiles: Callable[[Iterable[Tile]], Generator[TileData, None, None]],
        write: Callable[[Block], None],
        progress: bool | None,
        parts: list[Strip] | None = None,
    ) -> tuple[int, int]:
        """Translate and blend the tiles of ``grid``, handing finished blocks to ``write``.

        ``read_tiles`` reads the given tiles in order; it runs in a background thread. The grid
        is worked through in ``parts`` (default: strips of ``strip_width`` columns). Returns the
        number of tiles translated and the number worked through (the difference was all
        no-data).
        """
        parts = strips(grid, self.strip_width) if parts is None else parts
        block = (MOSAIC_BLOCK[0], math.gcd(MOSAIC_BLOCK[1], *(part.start for part in parts)))
        mosaics = [BlockMosaic(grid, block, strip=part) for part in parts]
        keys = [i for i, part in enumerate(parts) for _ in part.tiles]

        def blend(item: tuple[_Batch, torch.Tensor | None]) -> None:
            batch, y = item
            outputs = None if y is None else y.float().cpu().numpy()  # any memory layout
            k = 0
            for key, tile, valid in batch.tiles:
                if valid is None:
                    blocks = mosaics[key].skip(tile)
                else:
                    blocks = mosaics[key].add(tile, outputs[k], valid)  # type: ignore[index]
                    k += 1
                for block in blocks:
                    write(block)

        translated = 0
        tiles = read_tiles([tile for part in parts for tile in part.tiles])
        bar = Progress(len(keys), "geo-p2p render", "tile", progress)
        batches = contextlib.closing(prefetch(self._batches(keys, tiles), setup=_one_torch_thread))
        # The helper threads' one thread also became torch's default: restored on the way out.
        with (
            _restored_torch_threads(),
            bar,
            OrderedWorker(blend, setup=_one_torch_thread) as writer,
            batches as queued,
        ):
            results = contextlib.closing(self.infer_stream(queued, lambda b: b.inputs))
            with results as translated_batches:
                for batch, y in translated_batches:
                    writer.put((batch, y))
                    translated += 0 if y is None else len(y)
                    bar.update(len(batch.tiles))
        return translated, len(keys)

    def _batches(
        self, keys: list[int], tiles: Generator[TileData, None, None]
    ) -> Generator[_Batch, None, None]:
        """Group tiles into batches of ``batch_size`` model inputs, skipping all-no-data ones."""
        entries: list[tuple[int, Tile, np.ndarray | None]] = []
        inputs: list[np.ndarray] = []
        with contextlib.closing(tiles):
            for key, (tile, data, valid) in zip(keys, tiles, strict=True):
                if valid.any():
                    entries.append((key, tile, valid))
                    inputs.append(data)
                else:
                    entries.append((key, tile, None))
                # Also flush long runs of skipped tiles, so their blocks are written and freed.
                if len(inputs) == self.batch_size or len(entries) >= 8 * self.batch_size:
                    yield self._batch(entries, inputs)
                    entries, inputs = [], []
        if entries:
            yield self._batch(entries, inputs)

    def _batch(
        self, entries: list[tuple[int, Tile, np.ndarray | None]], inputs: list[np.ndarray]
    ) -> _Batch:
        if not inputs:
            return _Batch(entries, None)
        x = torch.from_numpy(u8_to_signed(np.stack(inputs)))
        x = x.contiguous(memory_format=self.memory_format)
        return _Batch(entries, x.pin_memory() if self.device.type == "cuda" else x)

    def prepare(self) -> bool:
        """Do the one-off work before the first batch of a render, with the torch thread count
        of the render's model workers: compile the module (with ``torch_compile``) or check
        whether whole batches are exact (see :meth:`infer`); returns the latter. :meth:`render`
        calls it before it starts its clock. It runs in the calling thread, whose torch thread
        count it sets for the call and restores, so that torch's settings made there (such as
        ``torch._inductor.config``, which is per thread) apply.
        """
        with _restored_torch_threads() as threads:
            torch.set_num_threads(threads // self._worker_count(threads))
            return self._batch_is_exact()

    def infer_stream(
        self, items: Iterable[_Item], inputs: Callable[[_Item], torch.Tensor | None]
    ) -> Generator[tuple[_Item, torch.Tensor | None], None, None]:
        """Run the module on the batch ``inputs(item)`` of each item as render does, yielding
        ``(item, output)`` in order (output None where the input is None).

        The model runs in worker threads. On a CPU with several threads, two batches run at once
        with half of torch's threads each (an odd one left out): as fast as one batch on all
        threads, and faster end to end beside reading and writing threads, presumably because a
        thread that takes a core then stalls one batch instead of both halves of one (see
        benchmarks/README.md). Elsewhere one batch runs at a time. The caller's thread keeps its
        own torch thread count (:meth:`prepare` sets it only for its own call).
        """
        exact = self.prepare()
        with self._model_workers() as (pool, workers):
            pending: deque[tuple[_Item, Future[torch.Tensor] | None]] = deque()
            for item in items:
                x = inputs(item)
                pending.append((item, None if x is None else pool.submit(self._infer, x, exact)))
                # One batch more than there are workers waits in the pool, so none goes idle.
                while pending and (pending[0][1] is None or _queued(pending) > workers):
                    yield _result(*pending.popleft())
            while pending:
                yield _result(*pending.popleft())

    @contextlib.contextmanager
    def _model_workers(self) -> Iterator[tuple[ThreadPoolExecutor, int]]:
        """The threads that run the model and how many: on a CPU with several torch threads,
        two with half of them each; else one with all of them. Shut down on exit."""
        # The workers' set_num_threads also sets torch's default for threads started later.
        with _restored_torch_threads() as threads:
            workers = self._worker_count(threads)
            pool = ThreadPoolExecutor(
                workers,
                thread_name_prefix="geo-p2p-model",
                initializer=torch.set_num_threads,
                initargs=(threads // workers,),
            )
            try:
                yield pool, workers
            finally:
                pool.shutdown(cancel_futures=True)

    def _worker_count(self, threads: int) -> int:
        return 2 if self.device.type == "cpu" and threads >= 2 else 1

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on a batch in the calling thread: (N, 3, T, T) float in [-1, 1] to
        the same, on the device (in the module's output dtype and memory format).

        A batch runs whole (padded to ``batch_size``, so the module always sees one shape) when
        that gives bit for bit what tile-by-tile calls give, which is checked once for each torch
        thread count on a random batch; otherwise (some kernels change with the batch size) tile
        by tile. On a GPU or compiled, batches always run whole (a compiled module compiles
        again for a thread count it has not run with).
        """
        return self._infer(x, self._batch_is_exact())

    def _infer(self, x: torch.Tensor, exact: bool) -> torch.Tensor:
        n = len(x)
        x = x.to(self.device, non_blocking=True)
        if exact:
            if n < self.batch_size:
                x = torch.cat([x, x[-1:].expand(self.batch_size - n, -1, -1, -1)])
            return self._call(x)[:n]
        return torch.cat([self._call(x[i : i + 1]) for i in range(n)])

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        assert self.backend is not None, "_batch_is_exact chooses the backend first"
        return self.backend(x)

    def _batch_is_exact(self) -> bool:
        """Whether whole batches give what tile-by-tile calls give, worked out once for each
        torch thread count (kernels may change with it); a compiled module is compiled here,
        and the backend chosen on the first call with "auto"."""
        threads = torch.get_num_threads()
        if threads not in self._exact:
            g = torch.Generator().manual_seed(0)
            x = torch.rand(self.batch_size, 3, self.tile, self.tile, generator=g) * 2 - 1
            if self.backend is None:
                self.backend = self._fastest_backend(x)
            if self.compiled or self.device.type != "cpu":
                # Kernels chosen per shape are not bit-exact across batch sizes anyway, and
                # tile-by-tile calls would compile again or waste the GPU. Run batches whole.
                if self.compiled:
                    self._compile(x.to(self.device))
                self._exact[threads] = True
                return True
            whole = self._call(x)
            single = torch.cat([self._call(x[i : i + 1]) for i in range(len(x))])
            self._exact[threads] = exact = bool(torch.equal(whole, single))
            log.debug(
                "batches of %d run %s with %d threads",
                self.batch_size,
                "whole" if exact else "tile by tile",
                threads,
            )
        return self._exact[threads]

    def _fastest_backend(self, x: torch.Tensor) -> Backend:
        """For "auto": torch or onnxruntime, whichever runs ``x`` faster (torch where the
        module does not export)."""
        try:
            onnx = OnnxRuntimeBackend.from_module(self.module, self.tile)
        except Exception as e:  # any module may be given; export failures take many forms
            log.debug("backend auto: torch, the module does not export to ONNX: %s", e)
            return self._torch
        return fastest([self._torch, onnx], x)

    def _compile(self, x: torch.Tensor) -> None:
        """Call the compiled module once, which compiles it; a failure as RenderError."""
        start = time.perf_counter()
        try:
            self._call(x)
        except torch._dynamo.exc.TorchDynamoException as e:  # the first line says what failed
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RenderError(
                f"torch.compile failed ({reason}): translate without compiling", "--compile"
            ) from e
        log.info("compiled the generator in %.0f s", time.perf_counter() - start)


def _result(item: _Item, future: Future[torch.Tensor] | None) -> tuple[_Item, torch.Tensor | None]:
    return item, None if future is None else future.result()


def _queued(pending: Iterable[tuple[object, Future[torch.Tensor] | None]]) -> int:
    """Batches submitted to the model workers and not yet handed on."""
    return sum(future is not None for _, future in pending)


@contextlib.contextmanager
def _restored_torch_threads() -> Iterator[int]:
    """Yields torch's thread count in this thread and sets it back on exit (which also resets
    torch's default for threads started later, which ``set_num_threads`` anywhere changes)."""
    threads = torch.get_num_threads()
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def _one_torch_thread() -> None:
    """For the reading and writing threads: their few torch operations (batch layout, bf16 to
    float) stay off the model's cores."""
    torch.set_num_threads(1)


def _raster_tiles(
    source: Source, grid: TileGrid, area: AreaOfInterest | None, tiles: Iterable[Tile]
) -> Generator[TileData, None, None]:
    """Read ``tiles`` of ``grid`` from ``source`` (opened in the thread that iterates this)."""
    with RasterReader(source) as reader:
        for tile in read_ahead(reader, grid, tiles):  # a row at a time from a server
            h, w = grid.clip(tile)
            data, valid = reader.read(tile.row, tile.col, h, w)
            inside = valid & area.mask(tile.row, tile.col, h, w) if area is not None else valid
            yield tile, *_model_input(data, valid, inside, grid.tile)


def _model_input(
    data: np.ndarray, valid: np.ndarray, keep: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pad a clipped window to a full tile: (3, size, size) uint8 with invalid pixels filled and
    mirrored beyond the raster, and ``keep`` (the pixels to output) padded with False.

    Invalid pixels take the mean colour of the tile's valid ones: a model with per-tile
    statistics (the bundled one) then sees statistics close to the valid part's, where a fixed
    grey shifted the colours of whole tiles along no-data edges (the web tiles' edges)."""
    if not valid.all():
        fill = data[:, valid].mean(axis=1) if valid.any() else np.full(3, NODATA_FILL)
        data = np.where(valid, data, fill.round().astype(np.uint8)[:, None, None])
    _, h, w = data.shape
    if (h, w) != (size, size):
        data = np.pad(data, ((0, 0), (0, size - h), (0, size - w)), mode="symmetric")
        keep = np.pad(keep, ((0, size - h), (0, size - w)))
    return data, keep


def _normalises_per_tile(module: torch.nn.Module) -> bool:
    """Whether ``module`` normalises each sample by its own statistics (instance norm)."""
    return any(
        isinstance(m, torch.nn.InstanceNorm2d) or getattr(m, "inference_stats", None) == "tile"
        for m in module.modules()
    )


def _autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    if precision == "auto":
        if device.type != "cuda":
            return None
        return cuda_autocast_dtype()
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise RenderError(
            f"unknown precision {precision!r}: use auto, fp32, bf16 or fp16", "--precision"
        )
    if precision == "fp16" and device.type == "cpu":
        raise RenderError("fp16 needs a GPU: use bf16 on CPU", "--precision")
    return dtypes[precision]

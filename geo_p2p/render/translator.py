"""The :class:`Translator`: a model and its tile layout, translating arrays and rasters.

A thin facade over the render path: the :class:`~geo_p2p.render.engine.InferenceEngine` runs
the model, the planner (:func:`~geo_p2p.render.planner.plan_job`) lays out the job, an executor
(:mod:`geo_p2p.run.executors`) renders its parts through the tile stream and the one GeoTIFF
writer (:class:`~geo_p2p.run.writer.GeoTIFFWriter`) writes them. Example::

    from geo_p2p import Translator

    translator = Translator.load("runs/maps")          # or Translator.load() for the bundled model
    translator.render("area.tif", "map.tif", cog=True)
    small_map = translator.translate(rgb_array)         # (H, W, 3) uint8 -> (H, W, 3) uint8
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..card import load_model
from ..errors import RenderError
from ..fusion import fuse_batchnorm
from ..inputs import network_bytes
from ..mapclasses.palette import Palette
from ..mapclasses.vegetation import Vegetation
from ..nets import InferenceStats, set_inference_stats
from ..run.driver import RenderSummary, execute
from ..run.executors import StreamExecutor
from ..run.writer import GeoTIFFWriter
from .backends import BackendName
from .engine import InferenceEngine, Precision
from .mosaic import Block
from .options import RenderOptions
from .planner import Job, RenderPlan, plan_job
from .stream import TileData, model_input, translate_parts
from .tiling import STRIP_WIDTH, Layout, Tile, TileGrid, strips

log = logging.getLogger(__name__)


class Translator:
    """Translates images of any size with a tile generator, blending overlapping tiles.

    ``module`` maps (N, 3, tile, tile) float tensors in [-1, 1] to the same (a pix2pix generator,
    or ``torch.nn.Identity()`` to check the tiling). ``overlap`` and ``margin`` default to
    :func:`~geo_p2p.render.tiling.default_overlap` and
    :func:`~geo_p2p.render.tiling.default_margin` (the margin at most half the overlap); a
    render's options may set others. ``gsd`` is the ground resolution (m/px) the module expects,
    if known. ``batch_size``, ``device``, ``precision``, ``channels_last``, ``torch_compile`` and
    ``backend`` are the :class:`~geo_p2p.render.engine.InferenceEngine`'s: ``precision`` "bf16"
    on a CPU is 1.6-1.7x as fast where it has AVX-512 BF16 or AMX; ``torch_compile`` is about
    1.2x faster for the bundled model on a CPU after 10-25 s of compiling (2 s once cached);
    ``backend`` "auto" keeps the faster of torch and onnxruntime (outputs within 1e-5 of each
    other) for jobs of more than 200 tiles. On a CPU, call
    :func:`geo_p2p.allocator.keep_freed_memory` once, as the command line does.

    Rasters are worked through in vertical strips of ``strip_width`` columns, so memory does not
    grow with the raster's width either; tiles across a strip boundary are translated for both
    strips (4-5 % more tiles on rasters much wider than a strip, with the default overlap).

    On the CPU without ``torch_compile``, the output does not depend on ``batch_size`` or on which
    tiles share a batch (see :meth:`InferenceEngine.batch_is_exact`), and blending adds tiles in
    grid order. GPU and compiled kernels are chosen per batch shape, so there the output may
    change by rounding with ``batch_size``.
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
        palette: Palette | None = None,
        imagery: dict[str, Any] | None = None,
        model: str = "default",
        strip_width: int = STRIP_WIDTH,
        channels_last: bool | None = None,
        torch_compile: bool = False,
        backend: BackendName = "torch",
    ) -> None:
        if strip_width < 1:
            raise ValueError(f"the strip width must be positive, got {strip_width}")
        self.layout = Layout.of(tile, overlap, margin)
        self.engine = InferenceEngine(
            module, tile, batch_size, device, precision, channels_last, torch_compile, backend
        )
        self.gsd = gsd
        self.palette = palette
        self.imagery = imagery
        self.model = model
        self.strip_width = strip_width

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        fuse: bool = True,
        inference_stats: InferenceStats | None = None,
        backend: BackendName = "torch",
        **options: Any,
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
        palette = None if card.classes is None else Palette.from_card(card.classes)
        facts = {
            "gsd": card.gsd,
            "palette": palette,
            "imagery": card.training.get("imagery"),
            "model": "default" if path is None else str(path),
        }
        return cls(module, tile=card.tile, backend=backend, **facts, **options)

    @property
    def tile(self) -> int:
        return self.layout.tile

    @property
    def overlap(self) -> int:
        return self.layout.overlap

    @property
    def margin(self) -> int:
        return self.layout.margin

    @property
    def module(self) -> torch.nn.Module:
        return self.engine.module

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def batch_size(self) -> int:
        return self.engine.batch_size

    def layout_for(self, options: RenderOptions) -> Layout:
        """The tile layout of a render with ``options``: their overlap and margin where set
        (a new overlap without a margin takes the default margin for it), else this
        translator's."""
        if options.overlap is None:
            margin = self.margin if options.margin is None else options.margin
            return Layout(self.tile, self.overlap, margin)
        return Layout.of(self.tile, options.overlap, options.margin)

    def grid(self, height: int, width: int) -> TileGrid:
        """The tile grid this translator lays over a ``height x width`` image."""
        return self.layout.grid(height, width)

    def translate(
        self, image: np.ndarray, valid: np.ndarray | None = None, *, vegetation: bool = False
    ) -> np.ndarray:
        """Translate an in-memory (H, W, 3) uint8 image of any size; returns (H, W, 3) uint8.

        ``valid`` (H, W) bool marks the pixels to translate (default: all); others come out 0.
        ``vegetation``: paint vegetation as ``render --vegetation`` does, the image taken to be
        at the model's ground resolution (ValueError without a palette of land and park
        classes); unlike render, never by default, whatever the image.
        """
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
        painted = Vegetation.at(self.palette, self.gsd) if vegetation else None
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
                yield tile, *model_input(data, ok, ok, self.tile)

        def write(block: Block) -> None:
            _, h, w = block.rgb.shape
            out[block.row : block.row + h, block.col : block.col + w] = block.rgb.transpose(1, 2, 0)

        parts = strips(grid, self.strip_width)
        translate_parts(self.engine, grid, parts, read_tiles, write, vegetation=painted)
        return out

    def render(
        self,
        src: str | Path,
        dst: str | Path,
        options: RenderOptions | None = None,
        *,
        progress: bool | None = None,
        **keywords: Any,
    ) -> RenderSummary:
        """Translate the raster ``src`` into the GeoTIFF ``dst``: what ``geo-p2p render`` does.

        ``options`` (or ``keywords``, the fields of
        :class:`~geo_p2p.render.options.RenderOptions`, over them) say what to read, write and
        refuse; the plan (:meth:`plan`) is logged before the work. ``progress``: a bar (None:
        when stderr is a terminal, else log lines). Returns the
        :class:`~geo_p2p.run.driver.RenderSummary`. Raises RenderError for unusable input or
        options; ``dst`` is only ever complete.
        """
        options = RenderOptions.build(options, **keywords)
        dst = Path(dst)
        counted = network_bytes()
        job = self.job(src, options, dst=dst)
        assert job.plan is not None
        job.plan.log()
        self.engine.prepare(job.plan.tiles)  # outside the timed render
        writer = GeoTIFFWriter(dst, job.source, options, palette=self.palette)
        executor = StreamExecutor(self.engine, self.strip_width)
        return execute(job, executor, writer, progress, counted)

    def plan(
        self, src: str | Path, options: RenderOptions | None = None, **keywords: Any
    ) -> RenderPlan:
        """What :meth:`render` would do with these options, with its time estimated from a
        rate measured here (a few batches of random tiles); writes nothing. Raises RenderError
        for unusable input, options, or a refused job (see
        :func:`~geo_p2p.render.planner.check_job`)."""
        options = RenderOptions.build(options, **keywords)
        plan = self.job(src, options, estimate=True).plan
        assert plan is not None
        return plan

    def job(
        self,
        src: str | Path,
        options: RenderOptions,
        dst: Path | None = None,
        by_regions: bool = False,
        estimate: bool | None = None,
    ) -> Job:
        """The render of ``src`` with ``options`` laid out by the planner (see
        :func:`~geo_p2p.render.planner.plan_job`), in regions where ``by_regions``."""
        return plan_job(
            src,
            options,
            self.layout_for(options),
            self.gsd,
            str(self.device),
            self.engine.measure_rate,
            palette=self.palette,
            imagery=self.imagery,
            model=self.model,
            dst=dst,
            by_regions=by_regions,
            strip_width=self.strip_width,
            estimate=estimate,
        )

    def prepare(self) -> bool:
        """The engine's one-off work before a render (see :meth:`InferenceEngine.prepare`);
        whether batches run whole."""
        return self.engine.prepare()[1]

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on a batch (see :meth:`InferenceEngine.infer`)."""
        return self.engine.infer(x)

    def infer_stream(self, items: Iterable[Any], inputs: Any) -> Generator[Any, None, None]:
        """Run the module on a stream of batches (see :meth:`InferenceEngine.infer_stream`)."""
        return self.engine.infer_stream(items, inputs)

    def measure_rate(self, rounds: int = 2) -> float:
        """Tiles per second here (see :meth:`InferenceEngine.measure_rate`)."""
        return self.engine.measure_rate(rounds)

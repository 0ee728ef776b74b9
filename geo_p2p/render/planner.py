"""What a render will do, said before it starts, and the guards against jobs nobody asked for.

:func:`plan_job` turns an input and the :class:`~geo_p2p.render.options.RenderOptions` into a
:class:`Job`: the input inspected, the area of interest, the tile grid cut into parts (strips,
or regions) and its :class:`RenderPlan`. It is handed what it needs (the layout, the model's
ground resolution, a rate function), not the translator. A :class:`RenderPlan` gives the
input's and the output's size and ground resolution, the CRS, how the input is brought onto the
output grid, the number of model tiles, an estimate of the time from a rate measured on the
spot, and how unlike the model's training imagery the input looks (:func:`domain_check`, which
also decides the vegetation default and, with ``--resolution auto``, draws an input out of the
domain on a grid :data:`~geo_p2p.domain.COARSER` times the model's; web tiles plan with it
too, keeping their zooms' grids). :func:`check_job` refuses,
with a one-line error that says what to do, outputs that would mostly be invented detail (much
finer than the input) and outputs too large to finish in any sane time.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import shapely

from ..aoi import AreaOfInterest
from ..domain import COARSER, domain_distance, domain_warnings, out_of_domain, sample_features
from ..errors import RenderError
from ..files import check_output
from ..grids import crs_name
from ..inputs import redact
from ..mapclasses.outputs import check_class_outputs
from ..mapclasses.palette import Palette
from ..mapclasses.vegetation import Vegetation, check_vegetation_palette, paints_vegetation
from ..progress import duration
from ..raster import Resolution, Source, inspect_source
from .adapt import raster_sample
from .engine import SMALL_JOB_TILES
from .options import MAX_UPSAMPLING, RenderOptions
from .tiling import STRIP_WIDTH, Layout, Strip, TileGrid, grid_starts, regions, strips

log = logging.getLogger(__name__)

DOMAIN_SAMPLE = 16
"""Tiles of the input read to measure how unlike the training imagery it is (0.1 s or so)."""
MAX_SIDE = 2**31 - 1
"""Largest output side in pixels: GDAL's raster dimensions are 32-bit signed integers."""


class Plan(ABC):
    """A plan said before the work (a render's, web tiles'): its :meth:`line`, then its
    :meth:`warnings`."""

    @abstractmethod
    def line(self) -> str:
        """The plan in one line."""

    @abstractmethod
    def warnings(self) -> list[str]:
        """What the user should know before the work."""

    @abstractmethod
    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values."""

    def log(self) -> None:
        """Log the plan's line, then its warnings."""
        log.info("%s", self.line())
        for warning in self.warnings():
            log.warning("%s", warning)


@dataclass(frozen=True)
class Domain:
    """How unlike the model's training imagery an input looks (:func:`domain_check`): the
    ``distance`` of its colour and texture statistics from the card's, and the card's
    ``threshold`` (None: not measured)."""

    distance: float | None = None
    threshold: float | None = None

    @property
    def unlike(self) -> bool:
        """Whether the input is out of the model's domain."""
        return out_of_domain(self.distance, self.threshold)

    def paints(self, vegetation: bool | None, palette: Palette | None) -> bool:
        """Whether vegetation is painted: as asked (``vegetation``), else by default where the
        input is out of the domain and ``palette`` has land and park classes."""
        return vegetation if vegetation is not None else self.unlike and paints_vegetation(palette)


@dataclass(frozen=True)
class RenderPlan(Plan):
    """What a render does: sizes (width, height) in pixels, ground resolutions in metres per
    pixel (None where not measurable), tiles, and the estimated time where measured."""

    input: str
    input_size: tuple[int, int]
    input_gsd: float | None
    output_size: tuple[int, int]
    gsd: float | None
    crs: str | None
    warp: str | None
    """How the input reaches the output grid: None (as it is), resampled, or warped."""
    tiles: int
    tile: int
    overlap: int
    device: str
    rate: float | None
    """Tiles per second measured on this machine just before, with this model and options."""
    domain_distance: float | None = None
    """How unlike the model's training imagery the input looks (its colour and texture
    statistics' distance from the card's; None: the card has none)."""
    domain_threshold: float | None = None
    """The distance above which the input is out of the model's domain."""
    model: str = "default"
    """The model, as ``geo-p2p train --init`` takes it: "default" or its directory."""
    vegetation: bool | None = None
    """Whether vegetation is painted (``--vegetation``, or by default where the input is out of
    the model's domain); None: the model cannot paint it."""
    coarser: float | None = None
    """How many times the model's ground resolution ``--resolution auto`` drew an input out of
    the model's domain at (:data:`~geo_p2p.domain.COARSER`); None: the model's, or as asked."""

    @property
    def seconds(self) -> float | None:
        """Estimated time of the render (None when no rate was measured)."""
        return None if self.rate is None else self.tiles / self.rate

    def line(self) -> str:
        """The plan in one line, as render logs it before the first tile."""
        out = f"{_size(self.output_size)} at {_gsd(self.gsd)}"
        if self.crs:
            out += f" in {self.crs}"
        how = f", {self.warp}" if self.warp else ""
        return (
            f"plan: {self.input} {_size(self.input_size)} at {_gsd(self.input_gsd)} -> {out}"
            f"{how}; {self.tiles:,} tiles on {self.device}; {self.estimate()}"
        )

    def warnings(self) -> list[str]:
        """What the user should know before the render: an input out of the model's domain."""
        distance, threshold = self.domain_distance, self.domain_threshold
        vegetation, gsd, coarser = self.vegetation, self.gsd, self.coarser
        return domain_warnings(distance, threshold, vegetation, gsd, self.model, coarser)

    def estimate(self) -> str:
        """The estimated time and the rate it comes from, in words."""
        if self.seconds is None:
            return "no estimate"
        return f"about {duration(self.seconds)} at {self.rate:.3g} tiles/s measured here"

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values, with the estimate in seconds."""
        return {**asdict(self), "seconds": self.seconds}


@dataclass(frozen=True)
class Job:
    """A render worked out: its source, area of interest, grid, the grid's parts (strips or
    regions) in the order they are rendered, and its plan (None for a job that is part of
    another, such as the max zoom of web tiles)."""

    source: Source
    area: AreaOfInterest | None
    grid: TileGrid
    parts: list[Strip]
    plan: RenderPlan | None = None
    vegetation: Vegetation | None = None
    """How vegetation is painted (``--vegetation``, or by default out of the model's domain),
    or None."""


def plan_job(
    src: str | Path,
    options: RenderOptions,
    layout: Layout,
    model_gsd: float | None,
    device: str,
    rate: Callable[[], float],
    *,
    palette: Palette | None = None,
    imagery: dict[str, Any] | None = None,
    model: str = "default",
    dst: Path | None = None,
    by_regions: bool = False,
    strip_width: int = STRIP_WIDTH,
    estimate: bool | None = None,
) -> Job:
    """Check the outputs (``dst``, the quicklook and the map-class outputs, which need the
    model's ``palette``, where given), inspect the input, refuse
    absurd jobs (:func:`check_job`), lay out the tile grid in strips of ``strip_width`` columns
    (or in regions of ``options.region_size`` px, see :func:`~geo_p2p.render.tiling.regions`) and
    plan it. ``rate()`` measures the model's tiles per second for the estimate where
    ``estimate`` (None: for jobs of over :data:`~geo_p2p.render.engine.SMALL_JOB_TILES`).
    ``imagery``: the card's record of the training imagery, to measure how unlike it the input
    is, on a sample of its tiles (:func:`~geo_p2p.render.adapt.raster_sample`); ``model`` names
    the model in the warning (as ``train --init`` takes it)."""
    if dst is not None:
        check_output(dst, src, options.overwrite)
        others = {"--quicklook": options.quicklook, "--classes": options.classes}
        for param, path in {**others, "--vectors": options.vectors}.items():
            if path is not None and path.resolve() == dst.resolve():
                raise RenderError(f"{param} cannot be the output GeoTIFF", param)
        if options.quicklook is not None:
            check_output(options.quicklook, src, options.overwrite, "--quicklook")
        check_class_outputs(options, palette, src)
    o = options

    def inspect(resolution: Resolution) -> tuple[Source, AreaOfInterest | None]:
        source = inspect_source(
            src, o.bands, o.scale, resolution, model_gsd, o.allow_ungeoreferenced
        )
        area = AreaOfInterest(o.aoi, source) if o.aoi else None
        check_job(source, o, layout, None if area is None else area.pixels)
        return source, area

    source, area = inspect(o.resolution)
    if o.vegetation:
        check_vegetation_palette(palette)  # refused before the domain's sample is read
    domain = domain_check(source, imagery, layout.tile)
    coarser = None
    if o.resolution == "auto" and domain.unlike and model_gsd and source.gsd:
        source, area = inspect(model_gsd * COARSER)
        coarser = COARSER
    paint = domain.paints(o.vegetation, palette)
    grid = layout.grid(source.height, source.width, None if area is None else area.pixels)
    parts = regions(grid, o.region_size) if by_regions else strips(grid, strip_width)
    tiles = sum(len(part.tiles) for part in parts)
    if estimate is None:
        estimate = tiles > SMALL_JOB_TILES
    # At the output's ground resolution; an ungeoreferenced render's pixels, as for --speckle.
    vegetation = Vegetation.at(palette, source.gsd) if paint else None
    resampled = source.resampling and f"resampled ({source.resampling.name})"
    overview = source.overview()
    if resampled and overview is not None and source.input_gsd is not None:
        resampled += f" from its {_gsd(source.input_gsd * overview[1])} overview"
    plan = RenderPlan(
        input=redact(str(src)),
        input_size=source.input_shape[::-1],
        input_gsd=source.input_gsd,
        output_size=(source.width, source.height),
        gsd=source.gsd,
        crs=None if source.crs is None else crs_name(source.crs),
        warp=source.warp or resampled or None,
        tiles=tiles,
        tile=layout.tile,
        overlap=layout.overlap,
        device=device,
        rate=rate() if estimate else None,
        model=model,
        vegetation=vegetation is not None if paints_vegetation(palette) else None,
        domain_distance=domain.distance,
        domain_threshold=domain.threshold,
        coarser=coarser,
    )
    return Job(source, area, grid, parts, plan, vegetation)


def domain_check(source: Source, imagery: dict[str, Any] | None, tile: int) -> Domain:
    """How unlike the training imagery (the card's ``imagery`` record) ``source`` looks: the
    distance of :data:`DOMAIN_SAMPLE` of its ``tile`` px tiles from the record's statistics
    (not measured without a record and threshold, or a valid pixel)."""
    if imagery is None or "threshold" not in imagery:
        return Domain()
    try:
        tiles = raster_sample(source, tile, DOMAIN_SAMPLE)
    except ValueError:  # no valid pixel to sample: nothing to say
        return Domain()
    distance = domain_distance(sample_features(tiles), imagery)
    return Domain(round(distance, 3), imagery["threshold"])


def check_job(
    source: Source,
    options: RenderOptions,
    layout: Layout,
    area: shapely.Geometry | None = None,
) -> int:
    """Refuse a render that nobody would want by accident; returns its number of grid tiles
    (those meeting the bounding box of ``area``, in pixels, if given).

    With ``resolution="auto"``, an output with more than :data:`MAX_UPSAMPLING` times the
    input's pixels per axis is refused unless ``force``. Outputs wider or higher than
    :data:`MAX_SIDE` and grids of more than ``max_tiles`` tiles are refused always.
    """
    resolution, max_tiles = options.resolution, options.max_tiles
    height, width = source.input_shape
    size = f"{_size((source.width, source.height))} px"
    if max(source.width, source.height) > MAX_SIDE:
        raise RenderError(
            f"{source.path} would become a {size} output, past GeoTIFF's limit of "
            f"{MAX_SIDE:,} px on a side: choose a coarser --resolution (in metres per pixel)",
            "--resolution",
        )
    tiles = grid_tiles(source.height, source.width, layout.tile, layout.overlap, area)
    factor = max(source.width / width, source.height / height)
    if resolution == "auto" and factor > MAX_UPSAMPLING and not options.force:
        raise RenderError(
            f"{source.path} is {_gsd(source.input_gsd)} per pixel and the model expects "
            f"{_gsd(source.gsd)}: --resolution auto would resample its {_size((width, height))} "
            f"px {factor:.0f} times to {size} ({tiles:,} tiles) of invented detail. Pass "
            "--resolution native to keep its grid, --resolution M to choose the metres per "
            "pixel, or --force to render it anyway",
            "--resolution",
        )
    if tiles > max_tiles:
        raise RenderError(
            f"{source.path} would become a {size} output of {tiles:,} tiles, more than "
            f"--max-tiles {max_tiles:,}: choose a coarser --resolution, or pass a larger "
            "--max-tiles if you mean it",
            "--max-tiles",
        )
    return tiles


def grid_tiles(
    height: int, width: int, tile: int, overlap: int, area: shapely.Geometry | None = None
) -> int:
    """How many model tiles cover ``height`` x ``width`` px (those meeting the bounding box of
    ``area``, in pixels, if given), counted without laying them out."""
    rows, cols = grid_starts(height, width, tile, overlap, area)
    return len(rows) * len(cols)


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]:,}x{size[1]:,}"


def _gsd(gsd: float | None) -> str:
    if gsd is None or not math.isfinite(gsd):
        return "an unknown resolution"
    return f"{gsd / 1000:.3g} km" if gsd >= 1000 else f"{gsd:.3g} m"
